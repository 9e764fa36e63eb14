"""Does what a source sentence says support a claim? The verifier every LLM sentence must pass.

Lexical coverage (the claim's content words found in the source), semantic similarity (the bundled
MiniLM) and hard checks that a small model gets wrong and word overlap cannot see: every number and
name, negation ("has not confirmed" vs "confirmed"), who said it (a claim the source attributes
must be attributed too), refusal phrases mixed into an answer, and garbled joins. Measured on
eval/verifier_cases.jsonl (`assistant eval --verifier`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import text

# tuned on the even-numbered cases of eval/verifier_cases.jsonl, reported on the odd ones
COVERAGE_MIN = 0.6  # supported on words alone
SIMILAR_MIN = 0.7  # or meaning close enough ...
SIMILAR_COVERAGE_MIN = 0.34  # ... with at least this much of the wording and a figure both state: MiniLM
#                              cannot see who does what ("the forces fighting alongside Russian troops are
#                              Ukrainian forces" is close in meaning to "Ukraine resists Russian advances in Kursk")
SIMILAR_FLOOR = 0.5  # and never when the meaning is this far off ("France is the capital of Europe" vs a
#                      sentence that names France and European officials covers the words, not the claim)
SPEAKER_COVERAGE = 0.6  # a claim this much about how the source describes its speaker needs no attribution

REFUSAL = re.compile(
    r"not in the articles|(?:do not|don't|does not|doesn't|did not|didn't) (?:cover|answer|say|mention|"
    r"contain|provide)|no information|not mentioned|cannot answer|can't answer|unable to answer|"
    r"no (?:relevant )?(?:answer|mention)",
    re.IGNORECASE,
)
_NEGATION = re.compile(
    r"\b(?:not|no|never|without|neither|nor|none|yet to|denied|denies|deny|refused|refuses|failed to)\b|n['’]t\b",
    re.IGNORECASE,
)
# who says so: a source sentence framed by one of these reports the whole claim, which must keep a reporting
# word too; the weaker cues only count in the clause the claim comes from ("announced a missile, which has
# a range of 1,000 km": the range is the article's own statement)
_FRAME = re.compile(
    r"\b(?:according to|said|says|say|saying|claimed|claims|claiming|reported|reportedly|allegedly|told|tells|"
    r"unverified|could not be verified)\b",
    re.IGNORECASE,
)
_ATTRIBUTION = re.compile(
    _FRAME.pattern[:-3] + r"|stated|states|announced|announces|warned|warns|insisted|insists|noted|notes|"
    r"estimated|suggested|suggest|indicated|indicates|admitted)\b",
    re.IGNORECASE,
)
# a claim keeps the attribution with any reporting word, the weaker ones included
_ATTRIBUTED = re.compile(_ATTRIBUTION.pattern[:-3] + r"|alleged|reports|claim|confirmed|confirm|described|"
                         r"dismissed|accused|expressed|believes|believed|argued|added|announcement|statement|"
                         r"assessment)\b", re.IGNORECASE)
# a plan, expectation or possibility ("will visit", "could be"); a claim about it must keep one
_MODAL = re.compile(
    r"\b(?:will|would|could|may|might|shall|plans?|planned|planning|expects?|expected|intends?|intended|aims?|"
    r"hopes?|set to|going to|likely|possibl[ey]|potential(?:ly)?|vowed|pledged|promised|threatened|warned)\b",
    re.IGNORECASE,
)
# the words that open a noun phrase ("the Kursk region", "of Russian soldiers"), and those that cannot qualify it
_OPENS = frozenset("the a an its their his her our this that these those of in on at for from with by over during "
                   "into across since after before about".split())
_NOT_QUALIFIER = _OPENS | frozenset("some any all each every no other such same more most many much few several "
                                    "and or but as than to be is are was were has have had not also only very "
                                    "it they he she we".split())
_TOKEN = re.compile(r"[A-Za-z][\w-]*(?:['’]s)?|\S")
_GARBLED = re.compile(r"according to\s*(?:[,.;:\[]|$)|\b(\w{3,}) \1\b", re.IGNORECASE)
_LOWER_START = re.compile(r"^\s*[a-z]|[.!?]\s+[a-z]")
_CLAUSE = re.compile(r",\s+|;\s+|\s+(?:but|while|whereas|although)\s+", re.IGNORECASE)


@dataclass
class Verdict:
    supported: bool
    reason: str
    coverage: float = 0.0
    similarity: float = 0.0


def _variants(terms: set[str]) -> set[str]:
    return terms | {t[:5] for t in terms if len(t) > 5}


def coverage(claim: str, evidence: str) -> float:
    """Share of the claim's content words found in the evidence (stems, 5-letter prefixes for variants)."""
    c = set(text.terms(claim))
    if not c:
        return 0.0
    e = _variants(set(text.terms(evidence)))
    return sum(1 for t in c if t in e or (len(t) > 5 and t[:5] in e)) / len(c)


def _numbers(s: str) -> set[str]:
    return text.numbers(s) | text.years(s)


def _missing_names(claim: str, evidence: str) -> list[str]:
    low = evidence.lower()
    return [n for n in sorted(text.names(claim)) if not text.mentions(n, low)]


def _negations(s: str) -> int:
    return len(_NEGATION.findall(s))


def _closest_clause(claim: str, evidence: str) -> str:
    """The clause of the evidence that carries most of the claim (negation is judged there, not in a
    clause about something else)."""
    clauses = [c for c in _CLAUSE.split(evidence) if c and c.strip()]
    return max(clauses, key=lambda c: coverage(claim, c)) if clauses else evidence


def _speaker_phrases(evidence: str) -> list[tuple[str, bool]]:
    """Who is speaking, as the source words it, and whether the phrase follows "according to": "Acting governor
    Alexei Smirnov" of "Acting governor Alexei Smirnov said …", "Russia's Defence Ministry and the area's
    governor, Alexei Smirnov" of "… according to Russia's Defence Ministry and the area's governor, Alexei
    Smirnov". "Reportedly" and "allegedly" name no speaker: what comes before them is the claim itself."""
    out = []
    for m in _FRAME.finditer(evidence):
        word = m.group(0).lower()
        if word in ("reportedly", "allegedly", "unverified", "could not be verified"):
            continue
        if word == "according to":
            out.append((re.split(r"[.;:]", evidence[m.end():], maxsplit=1)[0], True))
        else:
            out.append((re.split(r"[,.;:“\"]", evidence[: m.start()].rstrip(" ,"))[-1], False))
    return out


def _speakers(evidence: str) -> set[str]:
    """The head word of each speaker ("ministry", "smirnov", "war" of "the Institute for the Study of War")."""
    heads: set[str] = set()
    for phrase, after in _speaker_phrases(evidence):
        if after:
            phrase = phrase.split(",")[0]
        words = [w for w in text.WORD.findall(phrase.lower()) if w not in text.STOPWORDS]
        words = words[:6] if after else words[-6:]
        if words:
            heads.add(words[-1][:5])
    return heads


def _about_speaker(claim: str, evidence: str) -> str:
    """A claim about who the speaker is ("The Kursk governor is Alexei Smirnov") restates the source's own
    description of its speaker, not what the speaker said: it needs no attribution, and its meaning is
    judged against that description. Returns the description ('' when the claim is not about a speaker)."""
    for phrase, _ in _speaker_phrases(evidence):
        if coverage(claim, phrase) >= SPEAKER_COVERAGE:
            return phrase
    return ""


def _noun_phrases(s: str) -> list[tuple[str, str]]:
    """(qualifier stem, noun stem) of each noun phrase the sentence opens with, or opens with a determiner or
    preposition: "Foreign minister …", "of the Sumy region", "the area’s governor"."""
    tokens = _TOKEN.findall(s)
    out: list[tuple[str, str]] = []
    for i in range(len(tokens) - 1):
        if i and tokens[i - 1].lower() not in _OPENS:
            continue
        mod, head = re.sub(r"['’]s$", "", tokens[i]).lower(), tokens[i + 1].lower()
        if (mod in _NOT_QUALIFIER or head in _NOT_QUALIFIER or not mod[:1].isalpha() or not head[:1].isalpha()
                or len(head) < 3):
            continue
        stems = text.stem_words([mod, head])
        out.append((stems[0], stems[1]))
    return out


def _qualifier_swap(claim: str, evidence: list[str]) -> str:
    """A noun the claim qualifies otherwise than a source sentence does: that sentence qualifies the same noun
    with a word the claim does not use, and has neither the claim's two words together nor its qualifier
    anywhere: "the defence minister" from "Foreign minister …" (even when another cited sentence speaks of
    "defense officials"), "the Sumy region" from "the Kursk region"; but "the Kursk governor" from "the Kursk
    region … the area's governor". Words match on their first five letters ("Russia's" and "Russian").
    Returns the source's phrase ('' when there is none)."""
    claim_words = {w[:5] for w in text.stem_words(text.WORD.findall(claim.lower()))}
    phrases = _noun_phrases(claim)
    if not phrases:
        return ""
    for e in evidence:
        stems = [w[:5] for w in text.stem_words([re.sub(r"['’]s$", "", t).lower() for t in _TOKEN.findall(e)])]
        pairs, words = set(zip(stems, stems[1:])), set(stems)
        e_phrases = _noun_phrases(e)
        for mod, head in phrases:
            if (mod[:5], head[:5]) in pairs or mod[:5] in words:
                continue
            for other, h in e_phrases:
                if h == head and other[:5] not in claim_words:
                    return f"{other} {head}"
    return ""


_NAME_WORD = re.compile(r"[A-Z][\w-]*(?:['’]s)?")


def _subject_swap(claim: str, evidence: list[str]) -> str:
    """A name the claim puts before words that a source sentence puts after another name, and never after it:
    "Kyiv became the second African country to cut ties" from "… for Kyiv …, as Niger became the second
    African country to cut ties". Returns the source's words ('' when there is none)."""
    tokens = _TOKEN.findall(claim)
    low = [t.lower() for t in tokens]
    sources = [(e_tokens, [t.lower() for t in e_tokens]) for e_tokens in map(_TOKEN.findall, evidence)]
    for i, tok in enumerate(tokens[:-3]):
        follow = low[i + 1 : i + 4]
        if (not _NAME_WORD.fullmatch(tok) or tok.lower() in text.OPENERS or _NAME_WORD.fullmatch(tokens[i + 1])
                or not any(w[:1].isalpha() and w not in text.STOPWORDS for w in follow)):
            continue
        name = re.sub(r"['’]s$", "", tok).lower()
        for e_tokens, e_low in sources:
            before = [e_tokens[j - 1] for j in range(1, len(e_low) - 2) if e_low[j : j + 3] == follow]
            if not before or any(text.mentions(name, b.lower()) for b in before):
                continue
            other = before[0]
            if _NAME_WORD.fullmatch(other) and other.lower() not in text.OPENERS:
                return f"{other} {' '.join(follow)}"
    return ""


def _attributed(claim: str, evidence: str) -> bool:
    """Does the claim keep who said it: a reporting word, or the speaker as its own subject ("ISW said they
    had geolocated …" → "ISW geolocated …")?"""
    if _ATTRIBUTED.search(claim):
        return True
    words = {w[:5] for w in text.WORD.findall(claim.lower())}
    return bool(_speakers(evidence) & words)


def is_refusal(sentence: str) -> bool:
    return bool(REFUSAL.search(sentence))


def verify(claim: str, evidence: list[str], embed: Callable[[list[str]], np.ndarray] | None = None,
           context: str = "") -> Verdict:
    """Judge a claim against the source sentences it cites. ``context`` (the cited articles' titles) may
    supply a name the sentence leaves implicit: "The fighting is about 320 miles from Moscow" in an article
    about Kursk supports "The fighting in Kursk is about 320 miles from Moscow"."""
    claim = " ".join(text.visible(claim).split())
    sentences = [" ".join(text.visible(e).split()) for e in evidence]
    ev = " ".join(sentences)
    context = text.visible(context)
    if not claim or not ev:
        return Verdict(False, "cites nothing")
    if is_refusal(claim):
        return Verdict(False, "a refusal phrase mixed into an answer")
    if _GARBLED.search(claim) or _LOWER_START.match(claim):
        return Verdict(False, "garbled: a broken or joined sentence")
    cov = coverage(claim, ev)
    extra = _numbers(claim) - _numbers(ev)
    if extra:
        return Verdict(False, f"numbers not in the cited sources: {', '.join(sorted(extra))}", cov)
    names = _missing_names(claim, ev + " " + context)
    if names:
        return Verdict(False, f"names not in the cited sources: {', '.join(names)}", cov)
    clause = _closest_clause(claim, ev)
    if _negations(claim) not in (_negations(clause), _negations(ev)) or (_negations(claim) and not _negations(ev)):
        return Verdict(False, "negation differs from the source", cov)
    if _MODAL.search(clause) and not _MODAL.search(claim):
        return Verdict(False, "states as done what the source gives as a plan or possibility", cov)
    swap = _qualifier_swap(claim, sentences)
    if swap:
        return Verdict(False, f"qualifies a noun differently from the source (“{swap}”)", cov)
    swapped = _subject_swap(claim, sentences)
    if swapped:
        return Verdict(False, f"puts another name where the source has “{swapped}”", cov)
    attributed = _FRAME.search(ev) or _ATTRIBUTION.search(clause)
    speaker = _about_speaker(claim, ev) if attributed else ""
    if attributed and not speaker and not _attributed(claim, ev):
        return Verdict(False, "states as fact what the source attributes to someone", cov)
    sim = 1.0
    if embed is not None:
        vecs = embed([claim, ev, speaker] if speaker else [claim, ev])
        sim = max(float(vecs[0] @ v) for v in vecs[1:])
        if sim < SIMILAR_FLOOR:
            return Verdict(False, f"the cited source means something else (meaning {sim:.2f})", cov, sim)
    anchored = bool(_numbers(claim) & _numbers(ev))
    if cov >= COVERAGE_MIN or (sim >= SIMILAR_MIN and cov >= SIMILAR_COVERAGE_MIN and anchored):
        return Verdict(True, "supported", cov, sim)
    return Verdict(False, f"the cited source does not carry this (word overlap {cov:.0%}, meaning {sim:.2f})",
                   cov, sim)
