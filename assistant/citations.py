"""Citation markers and cited answers: parse ``[n]`` markers, verify and repair what each sentence cites.

Used on LLM replies, which misquote and mis-cite. The model is shown numbered sources (sentences of
the articles, see llm.py); each sentence of its reply is judged against the sources it cites by the
verifier (verify.py). A sentence the cited source does not support, but another given source does, is
re-cited to that source (its check says so); a sentence nothing supports is dropped. Kept sentences cite
verbatim quotes with file offsets.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .schema import Citation, RetrievedContext, SentenceCheck
from .text import display_text, numbers, split_sentences
from .verify import coverage, is_refusal, verify

MAX_RANGE = 20
_GROUP = re.compile(r"\[\s*([0-9]+(?:\s*(?:[-–,;]|and)\s*[0-9]+)*)\s*\]")
_CLUSTER = r"(?:\s*\[\s*[0-9]+(?:\s*(?:[-–,;]|and)\s*[0-9]+)*\s*\])+"
_MOVE = re.compile(rf"([.!?…])({_CLUSTER})")

Embed = Callable[[list[str]], np.ndarray]
REFUSED = "the model said the articles do not answer this"  # the check of a refusal sentence
QUOTED = "quoted from the article: the model's overview left it out"  # an overview sentence added as it stands
TOO_LONG = "longer than twice all the sources together: it says more than they do"
_HEADER = re.compile(r"^(?:#+\s*|(?:article|answer|sources?)\s*\d*\s*[:—-]\s*)+", re.IGNORECASE)


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


def move_markers(text: str) -> str:
    """Markers written after the full stop ("… Moscow. [1]") go before it, where they belong."""
    return _MOVE.sub(lambda m: f"{m.group(2)}{m.group(1)}", text)


def split_answer_sentences(text: str) -> list[tuple[str, list[int]]]:
    """Sentences of an answer with the markers each carries, markers removed from the text."""
    moved = move_markers(text)
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


def complete_prefix(buffer: str) -> tuple[str, str]:
    """Split streamed text into the sentences that are complete (the next one has begun) and the rest."""
    moved = move_markers(buffer)
    spans = split_sentences(moved)
    if len(spans) < 2:
        return "", moved
    start = spans[-1][0]
    if not re.match(r"[\w\"“‘'(]", moved[start:]):  # markers of the last sentence may still be coming
        return "", moved
    return moved[:start], moved[start:]


_STOPS = ".!?…。！？\n"  # where a sentence can end (a line break ends one too)
_BOUNDARY = re.compile(f"[{_STOPS}]")
# what may follow a sentence's stop while it is not yet known whether the next sentence has begun: closing
# quotes and brackets, space, and the markers of the sentence (which may still be coming)
_UNDECIDED = re.compile(r"""(?:[\s"'”’)\]\[\d,;–-]|and)*""")


class SentenceStream:
    """The complete sentences of streamed text (see complete_prefix), each as soon as the next one has begun.

    Only the new text and a short stretch before it are looked at for a sentence end, so that text that never
    ends a sentence (a model streaming one huge word) is split in time linear in its length, not its square.
    """

    REACH = 16  # characters before a stop that decide it (an abbreviation such as "approx.")
    OPEN = 64  # the longest run of markers and space after a stop that leaves it undecided

    def __init__(self) -> None:
        self._parts: list[str] = []  # the unfinished sentence
        self._scan = ""  # its end, in which a sentence may still end
        self._before = ""  # the characters before _scan that its stops are decided with
        self._cut = False  # text before _before was left out

    def feed(self, piece: str) -> list[tuple[str, list[int]]]:
        """The sentences completed by this piece of text, with their markers."""
        if not piece:
            return []
        self._parts.append(piece)
        scan = self._scan + piece
        if not _BOUNDARY.search(scan):
            self._keep(scan)
            return []
        # a cut only counts in scan; the "x" keeps the middle of a line from being taken for a line start
        context = "x" + self._before if self._cut else self._before
        head, _ = complete_prefix(context + scan)
        cut = len(head) - len(context)
        if cut <= 0:
            self._keep(scan)
            return []
        text = "".join(self._parts)
        cut += len(text) - len(scan)
        rest = text[cut:]
        self._parts, self._scan, self._before, self._cut = [rest], "", "", False
        self._keep(rest)
        return split_answer_sentences(text[:cut])

    def finish(self) -> list[tuple[str, list[int]]]:
        """The last sentences, once the text has ended."""
        text = "".join(self._parts)
        self._parts, self._scan, self._before, self._cut = [], "", "", False
        return split_answer_sentences(text)

    def _keep(self, scan: str) -> None:
        """Keep the end of scan that can still hold a sentence end: from the last stop when what follows it
        leaves it undecided, else only the last characters (a stop among them is looked at again)."""
        stop = max(scan.rfind(c) for c in _STOPS)
        start = len(scan) - self.REACH
        if stop >= 0 and len(scan) - stop <= self.OPEN and _UNDECIDED.fullmatch(scan, stop + 1):
            start = stop - self.REACH
        if start > 0:
            before = self._before + scan[max(0, start - self.REACH):start]
            self._cut = self._cut or len(before) > self.REACH or start > self.REACH
            self._before, self._scan = before[-self.REACH:], scan[start:]
        else:
            self._scan = scan


@dataclass(frozen=True)
class Source:
    """One numbered source the model saw: a passage of an article with its file offsets."""

    n: int
    source: str
    title: str
    date: str
    start: int
    end: int
    text: str
    score: float = 0.0


def sources_from_contexts(contexts: list[RetrievedContext]) -> list[Source]:
    """One source per retrieved chunk (numbered from 1)."""
    return [Source(i, c.source, c.title, c.date, c.start, c.end, c.text, c.score)
            for i, c in enumerate(contexts, start=1)]


def best_window(claim: str, src: Source) -> tuple[int, int, str]:
    """The 1–2 consecutive sentences of a source that carry most of the claim: (file start, end, text)."""
    spans = split_sentences(src.text)
    if len(spans) <= 1:
        return src.start, src.end, src.text
    best = (-1.0, 0, len(src.text))
    for i in range(len(spans)):
        for j in (i, i + 1):
            if j >= len(spans):
                continue
            a, b = spans[i][0], spans[j][1]
            cov = coverage(claim, src.text[a:b]) - (0.1 if j > i else 0.0)  # a pair must add real coverage
            if cov > best[0]:
                best = (cov, a, b)
    _, a, b = best
    return src.start + a, src.start + b, src.text[a:b]


class CitedAnswer:
    """Builds a verified answer one reply sentence at a time (so a stream shows only what is verified)."""

    def __init__(self, sources: list[Source], embed: Embed | None = None, repair: bool = True,
                 attribute_uncited: bool = True, keep_unsupported: bool = False) -> None:
        self.sources = sources
        self.repair = repair
        self.attribute_uncited = attribute_uncited
        self.keep_unsupported = keep_unsupported
        self.citations: list[Citation] = []
        self.checks: list[SentenceCheck] = []
        self.parts: list[str] = []
        self.refused = False
        self._index: dict[tuple[str, int, int], int] = {}
        self._vectors: dict[str, np.ndarray] = {}
        self._embed = embed
        self._figures: set[str] | None = None  # every figure the sources give
        # a sentence longer than twice all the sources together says more than they do: dropped unread (a
        # reply of one huge word or sentence would otherwise cost the verifier minutes)
        self._longest = 2 * sum(len(s.text) for s in sources) + 200

    def embed(self, texts: list[str]) -> np.ndarray:
        """Cached MiniLM vectors (the same claim is checked against many sources during repair)."""
        assert self._embed is not None
        missing = [t for t in dict.fromkeys(texts) if t not in self._vectors]
        if missing:
            for t, v in zip(missing, self._embed(missing)):
                self._vectors[t] = v
        return np.stack([self._vectors[t] for t in texts])

    def _judge(self, sentence: str, cited: list[Source]) -> tuple[bool, str, list[tuple[Source, int, int, str]]]:
        windows = [(s, *best_window(sentence, s)) for s in cited]
        # a name the sentence leaves implicit may come from the cited article's title ("… Russia's Kursk
        # region"), not from its other sentences: those mention Sumy too, which is not where Smirnov governs
        context = " ".join(dict.fromkeys(s.title for s in cited))
        v = verify(sentence, [w[3] for w in windows], self.embed if self._embed else None, context)
        return v.supported, v.reason, windows

    def _prune(self, sentence: str, windows: list[tuple[Source, int, int, str]]
               ) -> list[tuple[Source, int, int, str]]:
        """The cited sources without those the sentence is supported without and that add under a fifth of its
        words (the least covering first): a sentence citing [3][7] where only [3] says it cites [3] alone, but
        "Smirnov said civilians were evacuated, and he called on residents to donate blood" keeps both sources."""
        for w in sorted(windows, key=lambda w: coverage(sentence, w[3])):
            rest = [o for o in windows if o is not w]
            if not rest:
                break
            joined, without = " ".join(o[3] for o in windows), " ".join(o[3] for o in rest)
            if coverage(sentence, joined) - coverage(sentence, without) >= 0.2:
                continue
            context = " ".join(dict.fromkeys(o[0].title for o in rest))
            # the meaning check was passed by all of them together; the rest must pass every other check
            if verify(sentence, [o[3] for o in rest], None, context).supported:
                windows = rest
        return windows

    def _find_support(self, sentence: str) -> tuple[list[tuple[Source, int, int, str]], str] | None:
        """The given source (or two sentences that follow each other in one article) that supports the sentence
        best. Two sentences far apart are never joined: "defense officials" in one and "Foreign minister Dmytro
        Kuleba" in another do not make "the defence minister Dmytro Kuleba"."""
        best: tuple[float, list[tuple[Source, int, int, str]]] | None = None
        candidates: list[list[Source]] = [[s] for s in self.sources]
        for a, b in zip(self.sources, self.sources[1:]):
            if a.source == b.source and 0 <= b.start - a.end <= 3:  # only whitespace between them
                candidates.append([a, b])
        ranked = sorted(candidates, key=lambda c: -coverage(sentence, " ".join(s.text for s in c)))[:8]
        for group in ranked:
            ok, _, windows = self._judge(sentence, group)
            if ok:
                cov = coverage(sentence, " ".join(w[3] for w in windows)) - 0.05 * (len(group) - 1)
                if best is None or cov > best[0]:
                    best = (cov, windows)
        return (best[1], "") if best else None

    def _support(self, sentence: str, valid: list[int], may_recite: bool
                 ) -> tuple[list[tuple[Source, int, int, str]], str, bool]:
        """The windows that support the sentence: its cited sources' ([] when they do not), else, when it may be
        re-cited, the best other source's; the verifier's reason about the cited ones; and whether it was
        re-cited."""
        reason = ""
        if valid:
            ok, reason, windows = self._judge(sentence, [self.sources[m - 1] for m in valid])
            if ok:
                return windows, reason, False
        found = self._find_support(sentence) if may_recite else None
        return (found[0], reason, True) if found else ([], reason, False)

    def _without_unsupported_asides(self, sentence: str) -> str:
        """The sentence without the parenthetical asides that give a figure no source gives (a small model's
        unit conversion, "(294 km²)"). Only such asides: one that hedges or attributes ("(according to Kyiv)")
        is part of the claim and stays."""
        if "(" not in sentence:
            return sentence
        if self._figures is None:
            self._figures = numbers(" ".join(s.text for s in self.sources))
        figures = self._figures

        def drop(m: re.Match[str]) -> str:
            return "" if numbers(m.group(1)) - figures else m.group(0)

        return re.sub(r"\s*\(([^()]*)\)", drop, sentence)

    def add(self, sentence: str, markers: list[int]) -> str | None:
        """Judge one reply sentence; the text to show (with renumbered markers), or None when dropped."""
        # small models copy the article headers they were shown; an article's own [n] markers and invisible
        # characters (a right-to-left override, NUL) are not shown in an answer
        sentence = _HEADER.sub("", sentence)
        if len(sentence) > self._longest:
            self.checks.append(SentenceCheck(text=sentence[:200] + f"… ({len(sentence):,} characters)",
                                             model_markers=markers, supported=False, reason=TOO_LONG))
            return None
        sentence = display_text(sentence)
        if not re.search(r"[^\W\d_]{2}", sentence):
            self.checks.append(SentenceCheck(text=sentence, model_markers=markers, supported=False,
                                             reason="not a sentence"))
            return None
        if is_refusal(sentence) and len(sentence) < 160 and not re.search(r"\d", sentence):
            self.refused = True
            self.checks.append(SentenceCheck(text=sentence, markers=[], supported=False, reason=REFUSED))
            return None
        valid = [m for m in markers if 1 <= m <= len(self.sources)]
        dropped = [m for m in markers if m not in valid]
        check = SentenceCheck(text=sentence, markers=[], model_markers=markers, supported=False)
        may_recite = self.repair if valid or dropped else self.attribute_uncited
        windows, reason, recited = self._support(sentence, valid, may_recite)
        check.reason = reason if valid else (
            "cites nothing" + (f" (out-of-range markers {dropped} dropped)" if dropped else ""))
        if recited:
            check.repaired = True
            was = f"[{', '.join(map(str, markers))}]" if markers else "no source"
            check.reason = f"re-cited: the model cited {was}, which does not support it ({check.reason})"
        if not windows and (trimmed := self._without_unsupported_asides(sentence)) != sentence:
            # "… is 115 square miles (294 km²)." where no source says 294: the aside goes, the claim stays
            windows, _, recited = self._support(trimmed, valid, may_recite)
            if windows:
                check.repaired = True
                check.reason = (f"trimmed: an aside giving a figure no source gives was removed ({check.reason})"
                                + ("; re-cited" if recited else ""))
                sentence = check.text = trimmed
        if len(windows) > 1:
            windows = self._prune(sentence, windows)
        if not windows:
            self.checks.append(check)
            if self.keep_unsupported:
                self.parts.append(f"{sentence} [unsupported]")
                return self.parts[-1]
            return None
        nums = []
        for src, a, b, quote in windows:
            key = (src.source, a, b)
            if key not in self._index:
                self.citations.append(Citation(source=src.source, quote=quote, start=a, end=b, title=src.title,
                                               date=src.date, score=src.score))
                self._index[key] = len(self.citations)
            nums.append(self._index[key])
        check.supported = True
        check.markers = list(dict.fromkeys(nums))
        if not check.repaired:
            check.reason = "supported"
        self.checks.append(check)
        if not re.search(r"[.!?…][\"'”’)]?$", sentence):  # a small model's sentence may lack its full stop
            sentence += "."
        shown = sentence + " " + "".join(f"[{n}]" for n in check.markers)
        self.parts.append(shown)
        return shown

    @property
    def text(self) -> str:
        return " ".join(self.parts)


def verify_answer(text: str, sources: list[Source] | list[RetrievedContext], keep_unsupported: bool = False,
                  attribute_uncited: bool = False, embed: Embed | None = None,
                  repair: bool = True) -> tuple[str, list[Citation], list[SentenceCheck]]:
    """Rebuild a reply from its supported sentences, each citing verbatim quotes.

    Returns the new text (markers renumbered to the returned citations), the citations, and a check per
    sentence. Unsupported sentences are dropped unless keep_unsupported."""
    srcs = [s for s in sources if isinstance(s, Source)]
    if len(srcs) != len(sources):
        srcs = sources_from_contexts([c for c in sources if isinstance(c, RetrievedContext)])
    built = CitedAnswer(srcs, embed, repair=repair, attribute_uncited=attribute_uncited,
                        keep_unsupported=keep_unsupported)
    for sentence, markers in split_answer_sentences(text):
        built.add(sentence, markers)
    return built.text, built.citations, built.checks
