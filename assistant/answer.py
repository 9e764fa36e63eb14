"""The offline answerer: picks the retrieved sentences that answer the question and cites them.

No LLM, no network. Every sentence of the answer is a verbatim sentence of an article (so its
attribution, "... according to Russia's Defence Ministry", travels with it) followed by ``[n]``.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from .ingest import split_sentences
from .retrieve import STOPWORDS, Corpus, stem_words, terms
from .schema import Answer, Citation, RetrievedContext

ABSTAIN_TEXT = "The articles don't cover this: I found nothing in them that answers the question."

_NUMBER = re.compile(
    r"\b\d[\d,.]*\b|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
    r"thirty|forty|fifty|hundred|hundreds|thousand|thousands|dozens?|half|million)\b",
    re.IGNORECASE,
)
_DIGITS = re.compile(r"\d[\d,.]*\d|\d")
_DATE = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|"
    r"(?:19|20)\d\d)\b"
)
_NAME = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_CAVEAT = re.compile(
    r"\b(?:could not|cannot|can't|has not|have not|not) (?:be |been )?(?:independently )?"
    r"(?:verified|confirmed)\b",
    re.IGNORECASE,
)


def question_kind(question: str) -> str:
    q = question.lower()
    if re.search(r"\bhow (many|much|far|long|large|big)\b|\bwhat (number|percentage|share|size)\b|\bnumber of\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|month|day|date)\b|\bsince when\b", q):
        return "date"
    if re.search(r"\bwho\b|\bwhich (country|countries|organi[sz]ation|official|group|think tank)\b", q):
        return "name"
    return "other"


def _kind_match(kind: str, sentence: str, near: set[str] | None = None) -> bool:
    if kind == "number":
        return bool(_numbers(sentence, near)) if near is not None else bool(_NUMBER.search(sentence))
    if kind == "date":
        return bool(_DATE.search(sentence))
    if kind == "name":
        return bool(_NAME.search(sentence))
    return False


@dataclass
class Candidate:
    ctx: RetrievedContext
    rank: int
    start: int
    end: int
    text: str
    terms: set[str]
    coverage: float = 0.0
    score: float = 0.0


def _resolve_terms(question: str, corpus: Corpus) -> list[str]:
    """Question terms, with misspellings mapped to the closest word the corpus knows."""
    out: list[str] = []
    vocab = list(corpus.df)
    for t in dict.fromkeys(terms(question)):
        if t in corpus.df or len(t) < 4:
            out.append(t)
            continue
        close = difflib.get_close_matches(t, vocab, n=1, cutoff=0.8)
        out.append(close[0] if close else t)
    return out


def candidates(contexts: list[RetrievedContext]) -> list[Candidate]:
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    for rank, ctx in enumerate(contexts):
        for s, e in split_sentences(ctx.text):
            key = (ctx.source, ctx.start + s)
            if key in seen:
                continue
            seen.add(key)
            text = ctx.text[s:e]
            out.append(Candidate(ctx, rank, ctx.start + s, ctx.start + e, text, set(terms(text))))
    return out


_WORD_NUMBERS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
    "hundred": "100", "thousand": "1000", "half": "0.5",
}


_TOKEN = re.compile(r"\d[\d,.]*\d|\d|[^\W\d_]+", re.UNICODE)


def _numbers(text: str, near: set[str] | None = None, window: int = 5) -> set[str]:
    """Numeric values in a sentence (digits and number words), years excluded.

    With ``near`` (stemmed question terms), only numbers within ``window`` words of one of them
    count: "12,000 North Korean troops" does, "the two nations" does not.
    """
    tokens = _TOKEN.findall(text)
    values: list[tuple[int, str]] = []
    for i, tok in enumerate(tokens):
        low = tok.lower()
        value = low.replace(",", "").rstrip(".") if low[0].isdigit() else _WORD_NUMBERS.get(low, "")
        if value and not re.fullmatch(r"(?:19|20)\d\d", value):
            values.append((i, value))
    if near is None or not values:
        return {v for _, v in values}
    words = [t.lower() for t in tokens]
    idx = [j for j, w in enumerate(words) if not w[0].isdigit() and w not in STOPWORDS]
    by_pos: list[set[str]] = [set() for _ in tokens]
    for j, stem in zip(idx, stem_words([words[j] for j in idx])):
        by_pos[j] = {stem}
    return {v for i, v in values
            if any(by_pos[j] & near for j in range(max(0, i - window), min(len(tokens), i + window + 1)))}


def near_terms(q_terms: list[str], corpus: Corpus) -> set[str]:
    """Question terms (and variants) specific enough to anchor a number: not in most chunks."""
    out: set[str] = set()
    for t in q_terms:
        if corpus.df.get(t, 0) / corpus.n < 0.5:
            out |= corpus.variants(t)
    return out


def evidence(question: str, contexts: list[RetrievedContext], corpus: Corpus) -> tuple[list[Candidate], float]:
    """Score every retrieved sentence; return them best first with the overall evidence score."""
    q_terms = _resolve_terms(question, corpus)
    if not q_terms or not contexts:
        return [], 0.0
    weights = {t: corpus.idf(t) for t in q_terms}
    total = sum(weights.values()) or 1.0
    variants = {t: corpus.variants(t) for t in q_terms}
    near = near_terms(q_terms, corpus)
    kind = question_kind(question)
    cands = candidates(contexts)
    for c in cands:
        c.coverage = sum(w for t, w in weights.items() if variants[t] & c.terms) / total
        dense = c.ctx.dense_score or 0.0
        c.score = (
            c.coverage
            + (0.15 if _kind_match(kind, c.text, near) else 0.0)
            + 0.2 * dense
            - 0.01 * c.rank
            - (0.1 if len(c.text) < 25 else 0.0)
            - (0.4 if c.text.rstrip().endswith("?") else 0.0)  # headings that ask, not answer
        )
    cands.sort(key=lambda c: -c.score)
    if not cands:
        return [], 0.0
    best = cands[0]
    top_dense = max((c.dense_score or 0.0) for c in contexts)
    confidence = 0.65 * best.coverage + 0.35 * max(top_dense, 0.0)
    if kind != "other" and not _kind_match(kind, best.text, near):
        confidence *= 0.85
    return cands, round(min(confidence, 1.0), 4)


def _near_duplicate(a: Candidate, chosen: list[Candidate]) -> bool:
    for c in chosen:
        inter = len(a.terms & c.terms)
        union = len(a.terms | c.terms) or 1
        if inter / union > 0.6:
            return True
    return False


def select(cands: list[Candidate], question: str, corpus: Corpus, max_sentences: int = 3) -> tuple[
        list[Candidate], bool]:
    """The sentences to answer with, and whether they disagree across articles."""
    if not cands:
        return [], False
    best = cands[0]
    chosen = [best]
    kind = question_kind(question)
    near = near_terms(_resolve_terms(question, corpus), corpus)
    for c in cands[1:]:
        if len(chosen) >= max_sentences:
            break
        if c.text.rstrip().endswith("?"):
            continue
        if all(c.ctx.source != o.ctx.source for o in chosen):
            # a second article may corroborate or disagree: a lower bar, on coverage alone
            if c.coverage < max(0.4, 0.45 * best.coverage):
                continue
        elif c.score < 0.75 * best.score or c.coverage < 0.75 * best.coverage:
            continue
        if _near_duplicate(c, chosen):
            continue
        if kind in ("number", "date") and not _kind_match(kind, c.text, near):
            continue
        chosen.append(c)
    conflict = False
    if kind == "number":
        nums = [(c.ctx.source, _numbers(c.text, near)) for c in chosen]
        for i, (src_a, na) in enumerate(nums):
            for src_b, nb in nums[i + 1 :]:
                if src_a != src_b and na and nb and not (na & nb):
                    conflict = True
    return chosen, conflict


def _with_caveat(c: Candidate) -> tuple[int, int, str]:
    """Extend a sentence by an immediately following 'could not be verified' caveat."""
    rest = c.ctx.text[c.end - c.ctx.start :]
    for s, e in split_sentences(rest)[:1]:
        nxt = rest[s:e]
        if _CAVEAT.search(nxt) and len(nxt) < 160:
            end = c.end + e
            return c.start, end, c.ctx.text[c.start - c.ctx.start : end - c.ctx.start]
    return c.start, c.end, c.text


def compose(question: str, contexts: list[RetrievedContext], corpus: Corpus, threshold: float) -> Answer:
    cands, confidence = evidence(question, contexts, corpus)
    if not cands or confidence < threshold:
        return Answer(
            question=question, text=ABSTAIN_TEXT, abstained=True, confidence=confidence, contexts=contexts
        )
    chosen, conflict = select(cands, question, corpus)
    citations: list[Citation] = []
    parts: list[str] = []
    for n, c in enumerate(chosen, start=1):
        start, end, quote = _with_caveat(c)
        citations.append(
            Citation(source=c.ctx.source, quote=quote, start=start, end=end, title=c.ctx.title, score=c.ctx.score)
        )
        # every sentence of the quote carries the marker (a kept caveat is a sentence of its own)
        sentence = " ".join(f"{quote[s:e]} [{n}]" for s, e in split_sentences(quote))
        if conflict:
            sentence = f"{c.ctx.source} ({c.ctx.title[:60]}): {sentence}"
        parts.append(" ".join(sentence.split()))
    if conflict:
        markers = " ".join(f"[{n}]" for n in range(1, len(citations) + 1))
        parts.insert(0, f"The articles give different figures on this {markers}.")
    return Answer(
        question=question,
        text=" ".join(parts),
        citations=citations,
        conflict=conflict,
        confidence=confidence,
        contexts=contexts,
    )
