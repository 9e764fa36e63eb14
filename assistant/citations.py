"""Citation markers and verification: parse ``[n]`` markers and check each cited sentence.

Used on LLM replies (which misquote and mis-cite) and by the eval. A sentence is *supported* when
the sources it cites contain a passage that carries its content words, and every number and
name it states appears in what it cites. Supported sentences get a verbatim quote with offsets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .schema import Citation, RetrievedContext, SentenceCheck
from .text import digit_numbers, names, split_sentences, terms

MAX_RANGE = 20
_GROUP = re.compile(r"\[\s*([0-9]+(?:\s*(?:[-–,;]|and)\s*[0-9]+)*)\s*\]")
_CLUSTER = r"(?:\s*\[\s*[0-9]+(?:\s*(?:[-–,;]|and)\s*[0-9]+)*\s*\])+"
_MOVE = re.compile(rf"([.!?…])({_CLUSTER})")
_SUPPORT_MIN = 0.5
ATTRIBUTE_MIN = 0.7


def parse_markers(group: str) -> list[int]:
    """'1, 2' → [1, 2]; '1-3' → [1, 2, 3]; '2 and 4' → [2, 4]. Silly ranges are cut."""
    out: list[int] = []
    for part in re.split(r"\s*(?:,|;|and)\s*", group):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"([0-9]+)\s*[-–]\s*([0-9]+)", part)
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            if a <= b and b - a < MAX_RANGE:
                out.extend(range(a, b + 1))
            continue
        if re.fullmatch(r"[0-9]+", part):
            out.append(int(part))
    return list(dict.fromkeys(out))


def split_answer_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of an answer with the markers each carries, markers removed from the text."""
    moved = _MOVE.sub(lambda m: f"{m.group(2)}{m.group(1)}", text)
    out: list[tuple[str, list[int]]] = []
    for s, e in split_sentences(moved):
        raw = moved[s:e]
        markers: list[int] = []
        for g in _GROUP.finditer(raw):
            markers.extend(parse_markers(g.group(1)))
        clean = " ".join(_GROUP.sub(" ", raw).split())
        clean = re.sub(r"\s+([.,;:!?])", r"\1", clean)
        if not re.search(r"\w", clean):  # a stray marker or dot belongs to the sentence before
            if out and markers:
                out[-1] = (out[-1][0], list(dict.fromkeys(out[-1][1] + markers)))
            continue
        out.append((clean, list(dict.fromkeys(markers))))
    return out


_numbers = digit_numbers
_names = names


@dataclass
class Support:
    context: RetrievedContext
    start: int  # file offsets
    end: int
    overlap: float


def best_passage(sentence: str, ctx: RetrievedContext) -> Support | None:
    """The window of 1–2 consecutive sentences of ctx that best covers the sentence's terms."""
    s_terms = set(terms(sentence))
    if not s_terms:
        return None
    spans = split_sentences(ctx.text)
    best: Support | None = None
    for i in range(len(spans)):
        for j in (i, i + 1):
            if j >= len(spans):
                continue
            a, b = spans[i][0], spans[j][1]
            shared = len(s_terms & set(terms(ctx.text[a:b])))
            overlap = shared / len(s_terms) if shared >= min(2, len(s_terms)) else 0.0
            # prefer the single sentence unless the pair adds real coverage
            if best is None or overlap > best.overlap + (0.1 if j > i else 0.0):
                best = Support(ctx, ctx.start + a, ctx.start + b, overlap)
    return best


def verify_sentence(sentence: str, markers: list[int], contexts: list[RetrievedContext],
                    attribute_uncited: bool = False) -> tuple[SentenceCheck, list[Support]]:
    """Judge one answer sentence against the contexts it cites (markers are 1-based)."""
    valid = [m for m in markers if 1 <= m <= len(contexts)]
    dropped = [m for m in markers if m not in valid]
    check = SentenceCheck(text=sentence, markers=valid, supported=False)
    if not valid:
        check.reason = "cites nothing" + (f" (out-of-range markers {dropped} dropped)" if dropped else "")
        if attribute_uncited and contexts:
            for m in range(1, len(contexts) + 1):
                found, sup = verify_sentence(sentence, [m], contexts)
                if found.supported and sup and sup[0].overlap >= ATTRIBUTE_MIN:
                    found.reason = "supported; the model cited nothing, the verifier found this source"
                    return found, sup
        return check, []
    supports = [s for s in (best_passage(sentence, contexts[m - 1]) for m in valid) if s is not None]
    cited_text = " ".join(contexts[m - 1].text for m in valid)
    missing_numbers = _numbers(sentence) - _numbers(cited_text)
    cited_words = set(re.findall(r"\w+", cited_text.lower()))
    missing_names = _names(sentence) - _names(cited_text, first_word=True) - cited_words - set(terms(cited_text))
    good = [s for s in supports if s.overlap >= _SUPPORT_MIN]
    if missing_numbers:
        check.reason = f"numbers not in the cited sources: {', '.join(sorted(missing_numbers))}"
    elif missing_names:
        check.reason = f"names not in the cited sources: {', '.join(sorted(missing_names))}"
    elif not good:
        best = max((s.overlap for s in supports), default=0.0)
        check.reason = f"no cited passage carries this sentence (best word overlap {best:.0%})"
    else:
        check.supported = True
        check.reason = "supported"
    return check, sorted(good, key=lambda s: -s.overlap)[:2] if check.supported else []


def quote_for(support: Support) -> Citation:
    ctx = support.context
    a, b = support.start - ctx.start, support.end - ctx.start
    return Citation(
        source=ctx.source, quote=ctx.text[a:b], start=support.start, end=support.end, title=ctx.title,
        score=ctx.score,
    )


def verify_answer(text: str, contexts: list[RetrievedContext], keep_unsupported: bool = False,
                  attribute_uncited: bool = False) -> tuple[str, list[Citation], list[SentenceCheck]]:
    """Rebuild an LLM reply from its supported sentences, each citing verbatim quotes.

    Returns the new text (markers renumbered to the returned citations), the citations, and a
    check per sentence. Unsupported sentences are dropped unless keep_unsupported.
    """
    citations: list[Citation] = []
    index: dict[tuple[str, int, int], int] = {}
    parts: list[str] = []
    checks: list[SentenceCheck] = []
    for sentence, markers in split_answer_sentences(text):
        check, supports = verify_sentence(sentence, markers, contexts, attribute_uncited)
        checks.append(check)
        if not check.supported:
            if keep_unsupported:
                parts.append(f"{sentence} [unsupported]")
            continue
        nums = []
        for sup in supports:
            key = (sup.context.source, sup.start, sup.end)
            if key not in index:
                citations.append(quote_for(sup))
                index[key] = len(citations)
            nums.append(index[key])
        parts.append(sentence + " " + "".join(f"[{n}]" for n in dict.fromkeys(nums)))
    return " ".join(parts), citations, checks
