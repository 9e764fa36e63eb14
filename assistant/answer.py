"""The offline answerer: picks the article sentences that answer the question and cites them.

No LLM, no network. Every sentence of the answer is a verbatim sentence of an article (so its
attribution, "... according to Russia's Defence Ministry", travels with it) followed by ``[n]``.

Evidence is chosen at the level users read, sentences: each sentence of the retrieved chunks is scored
by a small logistic model (selector.py) on its semantic similarity to the question (its own MiniLM
vector, stored at sync), term coverage, the answer type asked for and its chunk's rank. Sentences that
contradict what the question pins down (a year, quarter, identifier or name) are disqualified, and the
answer is refused when no sentence is likely enough, or when the question's key words are unknown to
the articles. Broad questions ("what's going on with …") get an overview: central sentences from
different articles, picked by maximal marginal relevance over the sentence vectors.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from . import selector, text
from .retrieve import Corpus
from .schema import Answer, Citation, RetrievedContext

log = logging.getLogger(__name__)

ABSTAIN_TEXT = "The articles don't cover this: I found nothing in them that answers the question."

_CAVEAT = re.compile(
    r"\b(?:could not|cannot|can't|has not|have not|not) (?:be |been )?(?:independently )?"
    r"(?:verified|confirmed)\b",
    re.IGNORECASE,
)
class Answerer(Protocol):
    """One way of answering from retrieved evidence. ``stream`` yields text pieces, then the Answer."""

    name: str

    def stream(self, question: str, query: str, evidence: Evidence) -> Iterator[str | Answer]: ...


@dataclass
class Evidence:
    """What retrieval found for one question, shared by every answerer."""

    contexts: list[RetrievedContext]
    corpus: Corpus
    query_vector: Any  # np.ndarray, the question's MiniLM vector
    retrieve: Any = None  # callable(query, k) -> list[RetrievedContext], for overviews that look wider
    embed: Any = None  # callable(text) -> its MiniLM vector


@dataclass
class Candidate:
    ctx: RetrievedContext
    rank: int
    start: int
    end: int
    text: str
    terms: set[str]
    vector: Any = None
    cos: float = 0.0
    coverage: float = 0.0
    context_terms: set[str] = field(default_factory=set)  # its own terms and its neighbours' in the chunk
    context_coverage: float = 0.0  # coverage by those: "Smirnov has also called on …" after "Acting governor …"
    kind_ok: bool = False  # holds the kind of answer asked for, next to the question's words
    kind_any: bool = False
    violations: list[str] = field(default_factory=list)
    features: list[float] = field(default_factory=list)
    p: float = 0.0  # the selector's probability that this sentence answers the question (ranks them)
    confidence: float = 0.0  # the evidence score the refusal threshold applies to

    @property
    def states(self) -> bool:
        """Whether it states something: not a heading, a headline or a sentence that asks."""
        return not self.text.rstrip().endswith("?") and not text.is_heading(self.text, self.ctx.title)


def candidates(contexts: list[RetrievedContext], corpus: Corpus, qvec: Any) -> list[Candidate]:
    """Every sentence of the retrieved chunks (once), with its similarity to the question."""
    seen: set[tuple[str, int]] = set()
    out: list[Candidate] = []
    sents = corpus.sentences
    for rank, ctx in enumerate(contexts):
        rows = sents.within(ctx.source, ctx.start, ctx.end) if len(sents) else []
        spans = [(int(sents.start[r]), int(sents.end[r])) for r in rows]
        if not spans:  # no stored sentences (an index being rebuilt): split the chunk, no vectors
            spans = [(ctx.start + s, ctx.start + e) for s, e in text.split_sentences(ctx.text)]
            rows = [-1] * len(spans)
        span_terms = [set(text.terms(ctx.text[s - ctx.start : e - ctx.start])) for s, e in spans]
        for i, ((s, e), row) in enumerate(zip(spans, rows)):
            if (ctx.source, s) in seen:
                continue
            seen.add((ctx.source, s))
            t = ctx.text[s - ctx.start : e - ctx.start]
            c = Candidate(ctx, rank, s, e, t, span_terms[i])
            c.context_terms = c.terms.union(*span_terms[max(i - 1, 0) : i + 2])
            if row >= 0 and qvec is not None:
                c.vector = sents.vectors[row].astype(np.float32)
                c.cos = float(c.vector @ qvec)
            else:
                c.cos = float(ctx.dense_score or 0.0)
            out.append(c)
    return out


class Coverage:
    """The IDF-weighted share of a question's terms (or their corpus variants) that a set of terms has."""

    def __init__(self, q_terms: list[str], corpus: Corpus) -> None:
        self.weights = {t: corpus.idf(t) for t in q_terms}
        self.total = sum(self.weights.values()) or 1.0
        self.variants = {t: corpus.variants(t) for t in q_terms}
        self.oov = sum(w for t, w in self.weights.items() if t not in corpus.df) / self.total

    def __call__(self, found: set[str]) -> float:
        return sum(w for t, w in self.weights.items() if self.variants[t] & found) / self.total


def near_terms(q_terms: list[str], corpus: Corpus) -> set[str]:
    """Question terms (and variants) specific enough to anchor a number: not in most chunks."""
    out: set[str] = set()
    for t in q_terms:
        if corpus.df.get(t, 0) / corpus.n < 0.5:
            out |= corpus.variants(t)
    return out


#: Why a heading, a headline or a sentence that asks is never an answer by itself.
NOT_A_STATEMENT = "a heading or question, not a statement"


@dataclass
class Scored:
    """The candidates of one question, scored; what the selector and the eval's fitting share."""

    question: str
    kind: str
    cands: list[Candidate]
    unknown: list[str]
    near: set[str]


def score(question: str, evidence: Evidence, model: selector.Model | None = None) -> Scored:
    """Score every retrieved sentence for the question (best first)."""
    corpus = evidence.corpus
    model = model or selector.load()
    q_terms = list(dict.fromkeys(text.terms(question)))
    unknown = text.unknown_terms(question, corpus.words, corpus.df)
    kind = text.question_kind(question)
    near = near_terms(q_terms, corpus)
    cands = candidates(evidence.contexts, corpus, evidence.query_vector)
    if not cands:
        return Scored(question, kind, [], unknown, near)
    cover = Coverage(q_terms, corpus)
    article_coverage: dict[str, float] = {}
    cons = text.constraints(question)
    for c in cands:
        c.coverage = cover(c.terms)
        c.context_coverage = cover(c.context_terms)
        c.kind_any = kind != "other" and text.kind_match(kind, c.text)
        c.kind_ok = c.kind_any and text.kind_match(kind, c.text, near)
        if cons:
            c.violations = text.violations(cons, c.text, corpus.article_text(c.ctx.source))
        if not c.states:
            c.violations.append(NOT_A_STATEMENT)
        if kind in ("number", "date") and not c.kind_any:  # "how many …" is not answered without a figure
            c.violations.append(f"no {kind}")
    top_cos = max(c.cos for c in cands)
    top_dense = max((ctx.dense_score or 0.0) for ctx in evidence.contexts)
    top_cov = max(c.coverage for c in cands)
    for c in cands:
        src = c.ctx.source
        if src not in article_coverage:
            article_coverage[src] = cover(corpus.article_terms(src))
        c.features = selector.features(c.cos, c.coverage, c.kind_any, c.kind_ok, kind, c.rank, c.text, top_cos,
                                       top_cov, cover.oov, article_coverage[src], c.ctx.dense_score or 0.0, top_dense,
                                       c.context_coverage)
        c.p = -1.0 if c.violations else model.predict(c.features)
        c.confidence = 0.0 if c.violations else selector.confidence(
            c.cos, c.coverage, top_dense, kind != "other" and not c.kind_any, c.context_coverage)
    cands.sort(key=lambda c: -c.p)
    return Scored(question, kind, cands, unknown, near)


def _near_duplicate(a: Candidate, chosen: list[Candidate]) -> bool:
    for c in chosen:
        inter = len(a.terms & c.terms)
        union = len(a.terms | c.terms) or 1
        if inter / union > 0.6:
            return True
    return False


def select(sc: Scored, threshold: float, max_sentences: int = 3) -> tuple[list[Candidate], bool]:
    """The sentences to answer with (none: refuse), and whether they disagree across articles."""
    if sc.unknown or not sc.cands or sc.cands[0].violations or sc.cands[0].confidence < threshold:
        return [], False
    best = sc.cands[0]
    chosen = [best]
    for c in sc.cands[1:]:
        if len(chosen) >= max_sentences or c.violations:
            break
        if c.confidence < threshold:
            continue
        if all(c.ctx.source != o.ctx.source for o in chosen):
            # a second article may corroborate or disagree: a lower bar, on coverage alone
            if c.coverage < max(0.4, 0.45 * best.coverage):
                continue
        elif c.coverage < 0.75 * best.coverage or c.p < 0.5 * best.p:
            continue
        if _near_duplicate(c, chosen):
            continue
        if sc.kind in ("number", "date") and not c.kind_any:
            continue
        chosen.append(c)
    conflict = False
    if sc.kind == "number":
        nums = [(c.ctx.source, text.numbers(c.text, sc.near)) for c in chosen]
        for i, (src_a, na) in enumerate(nums):
            for src_b, nb in nums[i + 1 :]:
                if src_a != src_b and na and nb and not (na & nb):
                    conflict = True
    return chosen, conflict


def _with_caveat(c: Candidate) -> tuple[int, int, str]:
    """Extend a sentence by an immediately following 'could not be verified' caveat."""
    rest = c.ctx.text[c.end - c.ctx.start :]
    for s, e in text.split_sentences(rest)[:1]:
        nxt = rest[s:e]
        if _CAVEAT.search(nxt) and len(nxt) < 160:
            end = c.end + e
            return c.start, end, c.ctx.text[c.start - c.ctx.start : end - c.ctx.start]
    return c.start, c.end, c.text


def _label(c: Candidate) -> str:
    """How an answer names a source: its title and date, never a file name."""
    title = text.display_text(c.ctx.title) or "an article"
    if len(title) > 70:
        title = title[:70].rsplit(" ", 1)[0] + "…"
    return f"“{title}”" + (f" ({c.ctx.date})" if c.ctx.date else "")


def _cite(chosen: list[Candidate], caveats: bool = True) -> tuple[list[Citation], list[str]]:
    citations: list[Citation] = []
    parts: list[str] = []
    for n, c in enumerate(chosen, start=1):
        start, end, quote = _with_caveat(c) if caveats else (c.start, c.end, c.text)
        citations.append(Citation(source=c.ctx.source, quote=quote, start=start, end=end, title=c.ctx.title,
                                  date=c.ctx.date, score=c.ctx.score))
        # every sentence of the quote carries the marker (a kept caveat is a sentence of its own); the prose
        # shows the quote without the article's own [n] markers and invisible characters (the quote keeps them)
        shown = [text.display_text(quote[s:e]) for s, e in text.split_sentences(quote)]
        parts.append(" ".join(f"{t} [{n}]" for t in shown if t))
    return citations, parts


def refusal(question: str, sc: Scored | None, evidence: Evidence, confidence: float = 0.0) -> Answer:
    notes = []
    # what disqualified the closest statements (a heading or a question in the text explains nothing)
    closest = [] if sc is None else [c for c in sc.cands if NOT_A_STATEMENT not in c.violations][:3]
    if sc is not None and sc.unknown:
        notes.append("The articles never mention " + ", ".join(f"“{w}”" for w in sc.unknown) + ".")
    elif closest and all(c.violations for c in closest):
        why = closest[0].violations[0]
        notes.append(f"None of the closest sentences gives a {why[3:]}, which the question asks for."
                     if why.startswith("no ") else "The closest sentences do not match the question's " + why + ".")
    return Answer(question=question, text=ABSTAIN_TEXT, abstained=True, confidence=round(confidence, 4),
                  contexts=evidence.contexts, notes=notes)


def compose(question: str, evidence: Evidence, threshold: float, model: selector.Model | None = None,
            scored: Scored | None = None) -> Answer:
    """The offline answer to one question (``scored``: the question's candidates, when already scored)."""
    if text.is_broad(question):
        return overview(question, evidence)
    sc = scored or score(question, evidence, model)
    chosen, conflict = select(sc, threshold)
    confidence = sc.cands[0].confidence if sc.cands else 0.0
    if not chosen:
        return refusal(question, sc, evidence, confidence)
    citations, parts = _cite(chosen)
    if conflict:
        parts = [f"{_label(c)}: {p}" for c, p in zip(chosen, parts)]
        markers = " ".join(f"[{n}]" for n in range(1, len(citations) + 1))
        parts.insert(0, f"The articles give different figures on this {markers}.")
    return Answer(question=question, text=" ".join(parts), citations=citations, conflict=conflict,
                  confidence=round(confidence, 4), contexts=evidence.contexts)


def overview(question: str, evidence: Evidence, max_sentences: int = 5, min_cos: float = 0.35) -> Answer:
    """3–5 central sentences on the question's topic from different articles, without repeats (MMR over
    the sentence vectors), each cited, in article-date order where dates are known."""
    corpus = evidence.corpus
    topic = text.topic_of(question)
    unknown = text.unknown_terms(topic, corpus.words, corpus.df)
    sc = Scored(question, "other", [], unknown, set())
    contexts = evidence.retrieve(topic, 12) if evidence.retrieve is not None else evidence.contexts
    if unknown or not contexts:
        return refusal(question, sc, evidence)
    qvec = evidence.embed(topic) if evidence.embed is not None else evidence.query_vector
    cover = Coverage(list(dict.fromkeys(text.terms(topic))), corpus)
    cons = text.constraints(topic)
    cands = []
    for c in candidates(contexts, corpus, qvec):
        if c.vector is None or len(c.text) < 40 or not c.states:
            continue
        if cons and text.violations(cons, c.text, corpus.article_text(c.ctx.source)):
            continue
        c.coverage = cover(c.terms)
        if c.coverage >= 0.5 or c.cos >= 0.5:  # about the topic, by its words or its meaning
            cands.append(c)
    if not cands or max(c.cos for c in cands) < min_cos:
        return refusal(question, sc, evidence, max((c.cos for c in cands), default=0.0))
    vecs = np.stack([c.vector for c in cands])
    relevance = np.array([0.7 * c.cos + 0.3 * c.coverage for c in cands])
    chosen: list[int] = []
    while len(chosen) < max_sentences:
        best, best_val = -1, -1e9
        used_sources = {cands[i].ctx.source for i in chosen}
        all_used = {c.ctx.source for c in cands} <= used_sources
        for i, c in enumerate(cands):
            if i in chosen or (c.ctx.source in used_sources and not all_used):
                continue
            redundancy = max((float(vecs[i] @ vecs[j]) for j in chosen), default=0.0)
            if redundancy > 0.8:
                continue
            val = 0.7 * float(relevance[i]) - 0.3 * redundancy
            if val > best_val:
                best, best_val = i, val
        if best < 0:
            break
        chosen.append(best)
    picked = sorted((cands[i] for i in chosen), key=lambda c: (c.ctx.date or "9999", c.ctx.source, c.start))
    citations, parts = _cite(picked, caveats=False)
    return Answer(question=question, text=" ".join(parts), citations=citations,
                  confidence=round(float(max(relevance[i] for i in chosen)), 4), contexts=contexts,
                  notes=[f"An overview of what the articles report on {topic}: the most central sentences from "
                         "different articles."])


class OfflineAnswerer:
    """Extractive answers from the articles' own sentences; no LLM."""

    name = "offline"

    def __init__(self, threshold: float | None = None) -> None:
        self.model = selector.load()
        self.threshold = self.model.threshold if threshold is None else threshold

    def answer(self, question: str, evidence: Evidence, scored: Scored | None = None) -> Answer:
        return compose(question, evidence, self.threshold, self.model, scored)

    def stream(self, question: str, query: str, evidence: Evidence) -> Iterator[str | Answer]:
        answer = self.answer(query, evidence)
        answer.question = question
        yield from re.findall(r"\S+\s*", answer.text)
        yield answer
