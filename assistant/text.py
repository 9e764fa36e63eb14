"""Everything the assistant knows about text: sentences, terms, numbers, names, constraints, typos, tokens.

One module, so that ingest, retrieval, the answerers and the verifier agree on what a sentence, a
term, a number or a name is.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# --- tokens (tiktoken) ------------------------------------------------------------------------------
ENCODING_NAME = "cl100k_base"


@lru_cache(maxsize=1)
def encoding():  # type: ignore[no-untyped-def]
    """The tiktoken encoding used to count tokens (offline: see assistant/__init__)."""
    import tiktoken

    return tiktoken.get_encoding(ENCODING_NAME)


def count_tokens(text: str) -> int:
    return len(encoding().encode_ordinary(text))


# --- invisible characters ---------------------------------------------------------------------------
#: Characters that are in text but not seen (zero-width space/joiners, word joiner, soft hyphen, byte-order
#: mark) are removed with the control sequences below: inside a word they must not split it ("Kur\u200bsk").
#: Terminal control sequences (CSI such as colours, OSC such as window titles and OSC-8 links, DCS/APC/PM
#: strings, other ESC sequences), C0/C1 control characters and bidirectional overrides. Article text may
#: carry any of them; none may reach a terminal, and none is part of a word.
CONTROL_SEQUENCE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b[\]P^_X][^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, PM, APC, SOS strings
    r"|\x1b[ -/]*[0-~]?"  # other ESC sequences, or a lone ESC
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]"
)


_HIDDEN = re.compile(CONTROL_SEQUENCE.pattern + "|[\u200b\u200c\u200d\u2060\u00ad\ufeff]")


def visible(text: str) -> str:
    """The text without invisible characters and terminal control sequences (for matching words and for
    printing; offsets are never taken from it). Tabs and newlines are kept."""
    return _HIDDEN.sub("", text) if _HIDDEN.search(text) else text


# --- sentences --------------------------------------------------------------------------------------
# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace, or at a
# CJK full stop / exclamation / question mark, which needs no space after it.
_END = re.compile(r"[.!?…][\"'”’)\]]*(?=\s)|[。！？][」』”’)）\]]*")
_ABBREV = re.compile(
    r"(?:\b(?:[A-Z]\.){1,3}|\b(?:Mr|Mrs|Ms|Dr|St|Gen|Lt|Col|Maj|Capt|Sgt|No|Jr|Sr|vs|etc|approx|"
    r"Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Prof|Gov|Rep|Sen)\.)[\"'”’)\]]*$"
)
_ABBREV_REACH = 8  # an abbreviation's letters before its stop ("approx." is the longest)
_NEXT_CHAR = re.compile(r"\s*(\S)")
# A line that opens with a heading in capitals run into its first sentence ("NORTH KOREAN FORCES ATTACK It
# is reported that …", as scraped pages give them): three or more words in capitals, 15 characters or more,
# before a capitalised word that goes on in lower case. The heading is a span of its own, so that no quote
# starts with it.
_RUN_IN_HEADING = re.compile(r"(?:[A-Z][A-Z0-9'’&-]*\s+){2,}[A-Z][A-Z0-9'’&-]*(?=\s+[A-Z][a-z])")


def split_sentences(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Sentence spans (start, end) within text[start:end], whitespace-trimmed, in order."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    for line in re.finditer(r"[^\n]+", text[start:end]):
        ls, le = start + line.start(), start + line.end()
        cur = ls
        heading = _RUN_IN_HEADING.match(text, ls, le)
        if heading and heading.end() - ls >= 15:  # not a line that opens with a few acronyms ("NATO EU UN Talks")
            spans.append((ls, heading.end()))
            cur = heading.end()
        for m in _END.finditer(text, ls, le):
            cut = m.end()
            # both checks look only near the cut, so that a line of many non-ending stops ("a. b. c. …", one a
            # model may stream for megabytes) is split in time linear in its length
            if _ABBREV.search(text, max(cur, m.start() - _ABBREV_REACH), cut):
                continue
            nxt = _NEXT_CHAR.match(text, cut, le)
            if nxt and nxt.group(1).islower():
                continue
            spans.append((cur, cut))
            cur = cut
        spans.append((cur, le))
    out = []
    for s, e in spans:
        seg = text[s:e]
        lstrip = len(seg) - len(seg.lstrip())
        rstrip = len(seg) - len(seg.rstrip())
        s, e = s + lstrip, e - rstrip
        if e > s:
            out.append((s, e))
    return out


# --- terms ------------------------------------------------------------------------------------------
WORD = re.compile(r"\w+", re.UNICODE)
_STOP_TEXT = """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me more
most my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves many much said say says tell told according did does many
whose
"""
STOPWORDS = frozenset(_STOP_TEXT.split())


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def stem_words(words: list[str]) -> list[str]:
    return list(_stemmer().stemWords(words)) if words else []


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed content words (stopwords dropped)."""
    words = [w for w in WORD.findall(visible(text).lower()) if w not in STOPWORDS]
    return [sys.intern(t) for t in stem_words(words)]


@lru_cache(maxsize=1)
def english_words() -> frozenset[str]:
    """Whole words of the embedding model's WordPiece vocabulary: ordinary English (and common names)."""
    from .embed import MODELS, _package_file

    spec = next(iter(MODELS.values()))
    try:
        vocab = json.loads(_package_file(spec.tokenizer_package, spec.tokenizer_file).read_text("utf-8"))
        words = vocab["model"]["vocab"]
    except Exception:  # without it typo correction is only more cautious
        return frozenset()
    return frozenset(w for w in words if w.isalpha() and w.islower() and len(w) > 1)


# --- numbers ----------------------------------------------------------------------------------------
NUMBER = re.compile(
    r"\b\d[\d,.]*(?:\b|(?=[a-zA-Z]))|\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|"
    r"thirty|forty|fifty|hundred|hundreds|thousand|thousands|dozens?|half|million)\b",
    re.IGNORECASE,
)
MONTHS = ("january february march april may june july august september october november december").split()
DATE = re.compile(
    r"\b(?:January|February|March|April|May|June|July|August|September|October|November|"
    r"December|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|yesterday|"
    r"(?:19|20)\d\d)\b"
)
_WORD_NUMBERS = {
    "one": "1", "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7",
    "eight": "8", "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "twenty": "20",
    "hundred": "100", "thousand": "1000", "half": "0.5", "dozens": "dozens", "hundreds": "hundreds",
    "thousands": "thousands", "millions": "millions",
}
_FRACTION = re.compile(r"\b(?:a|one|two) (third|thirds|quarter|fifth|tenth)s?\b", re.IGNORECASE)
_TOKEN = re.compile(r"\d[\d,.]*\d|\d|[^\W\d_]+", re.UNICODE)
_YEAR = re.compile(r"(?:19|20)\d\d")


def numbers(text: str, near: set[str] | None = None, window: int = 5) -> set[str]:
    """Numeric values in a sentence (digits and number words), years excluded.

    With ``near`` (stemmed question terms), only numbers within ``window`` words of one of them
    count: "12,000 North Korean troops" does, "the two nations" does not.
    """
    fractions = {f"fraction:{m.group(0).lower()}" for m in _FRACTION.finditer(text)}
    tokens = _TOKEN.findall(text)
    values: list[tuple[int, str]] = []
    for i, tok in enumerate(tokens):
        low = tok.lower()
        value = low.replace(",", "").rstrip(".") if low[0].isdigit() else _WORD_NUMBERS.get(low, "")
        if value and not (_YEAR.fullmatch(value) and "," not in low):
            values.append((i, value))
    if fractions and near is None:
        return {v for _, v in values} | fractions
    if near is None or not values:
        return {v for _, v in values}
    words = [t.lower() for t in tokens]
    idx = [j for j, w in enumerate(words) if not w[0].isdigit() and w not in STOPWORDS]
    by_pos: list[set[str]] = [set() for _ in tokens]
    for j, stem in zip(idx, stem_words([words[j] for j in idx])):
        by_pos[j] = {stem}
    return {v for i, v in values
            if any(by_pos[j] & near for j in range(max(0, i - window), min(len(tokens), i + window + 1)))}


# --- names ------------------------------------------------------------------------------------------
_CAPITAL = re.compile(r"\b[A-Z][a-zA-Z’'-]+\b")
NAME_SPAN = re.compile(r"(?<!^)(?<![.!?]\s)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
OPENERS = frozenset(
    """
    however meanwhile according despite although while after before since during earlier later today
    yesterday overall instead still also yet thus therefore moreover furthermore additionally finally
    first second third then now here there this these those that it its they he she we i you our their
    his her in on at as by for from with of to and but or so if when where who what which why how a an
    the some many most more several both each all no not one two three russian ukrainian sources source
    articles article answer
    """.split()
)


def mentions(name: str, lowered: str) -> bool:
    """Does the (lower-cased) text mention the name, as a word or a word starting with its first five
    letters (Zelensky ~ Zelenskyy), never inside another word (China is not in Rubanshchina)?"""
    return re.search(r"\b" + re.escape(name[:5] if len(name) > 5 else name), lowered) is not None


def names(text: str, first_word: bool = False) -> set[str]:
    """Capitalised words: names a sentence states, lower-cased. A sentence's first word counts unless
    it is a common opener ("However", "The", "According")."""
    words = _CAPITAL.findall(text)
    if not first_word and words and text.lstrip().startswith(words[0]) and words[0].lower() in OPENERS:
        words = words[1:]
    return {re.sub(r"[’']s$", "", w).lower().strip("’'") for w in words}


# --- what a question asks for -----------------------------------------------------------------------
def question_kind(question: str) -> str:
    """The answer type asked for: number, date, name, place or other."""
    q = question.lower()
    if re.search(r"\bhow (many|much|far|long|large|big|old)\b|\bwhat (number|percentage|share|size|range|"
                 r"distance|budget|revenue|price|amount|figure|score)\b|\bnumber of\b", q):
        return "number"
    if re.search(r"\bwhen\b|\bwhat (year|month|day|date)\b|\bsince when\b|\bin which (year|month)\b", q):
        return "date"
    if re.search(r"\bwhere\b|\bwhich (?:[a-z]+ )?(?:town|city|village|villages|region|country|nation|place)\b", q):
        return "place"
    if re.search(r"\bwho\b|\bwhich (?:[a-z]+ )?(?:organi[sz]ation|official|group|think tank|ministry|outlet|company|"
                 r"team)\b", q):
        return "name"
    return "other"


def kind_match(kind: str, sentence: str, near: set[str] | None = None) -> bool:
    """Does the sentence hold the kind of answer asked for?"""
    if kind == "number":
        return bool(numbers(sentence, near)) if near is not None else bool(NUMBER.search(sentence))
    if kind == "date":
        return bool(DATE.search(sentence))
    if kind in ("name", "place"):
        return bool(NAME_SPAN.search(sentence))
    return False


_BROAD = re.compile(
    r"\b(?:overview|summar(?:y|ise|ize)|background|the gist|big picture|what(?:'s| is| has been) "
    r"(?:going on|happening)|what(?:'s| is) the (?:situation|story|latest)|what happened (?:in|with|to)\b(?!.*\b"
    r"(?:on|in) (?:\w+ )?(?:\d|monday|tuesday|wednesday|thursday|friday|saturday|sunday))|tell me (?:about|"
    r"more about)|what do (?:the|these) (?:articles|reports|sources) say|brief me|catch me up|explain the "
    r"situation)\b",
    re.IGNORECASE,
)
_BROAD_WORDS = re.compile(
    r"\b(?:give me|can you|could you|please|an|a|overview|summar(?:y|ise|ize)|of|on|about|background|what(?:'s|"
    r" is| has been)?|going on|happening|with|in|the|gist|big picture|situation|story|latest|what happened|"
    r"tell me(?: more)?|what do (?:the|these) (?:articles|reports|sources) say|brief me|catch me up|explain|"
    r"articles?|reports?|sources?|say|so far|is|me|to)\b",
    re.IGNORECASE,
)


def is_broad(question: str) -> bool:
    """An overview question ("what's going on with …", "summarize …") rather than one fact."""
    return bool(_BROAD.search(question))


def topic_of(question: str) -> str:
    """The topic of a broad question: its words once the overview phrasing is removed."""
    topic = " ".join(_BROAD_WORDS.sub(" ", question).replace("?", " ").split()).strip(" .!")
    return topic or question


# --- constraints ------------------------------------------------------------------------------------
_QUARTER = re.compile(
    r"\b(?:q([1-4])|(first|second|third|fourth|1st|2nd|3rd|4th)[ -]quarter)\b", re.IGNORECASE
)
_QUARTER_WORD = {"first": "1", "second": "2", "third": "3", "fourth": "4", "1st": "1", "2nd": "2",
                 "3rd": "3", "4th": "4"}
_IDENT = re.compile(r"\b(?=[A-Za-z0-9-]*[A-Za-z])(?=[A-Za-z0-9-]*\d)[A-Za-z0-9][A-Za-z0-9-]*[A-Za-z0-9]\b")


@dataclass
class Constraints:
    """Values a question pins down; an answer sentence must not contradict them."""

    years: set[str] = field(default_factory=set)
    quarters: set[str] = field(default_factory=set)
    months: set[str] = field(default_factory=set)
    identifiers: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    qualifiers: set[tuple[str, str, str]] = field(default_factory=set)  # (class, modifier, head stem)
    #: a first name and the surname that follows it ("donald" → "trump"): news often gives the surname alone
    surnames: dict[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.years or self.quarters or self.months or self.identifiers or self.names or self.qualifiers)


def quarters(text: str) -> set[str]:
    out = set()
    for m in _QUARTER.finditer(text):
        out.add(m.group(1) or _QUARTER_WORD[m.group(2).lower()])
    return out


def years(text: str) -> set[str]:
    return set(re.findall(r"(?<![\d,.])(?:19|20)\d\d(?!\d|,\d)", text))


def months(text: str) -> set[str]:
    return {w.lower() for w in re.findall(r"\b[A-Z][a-z]+\b", text) if w.lower() in MONTHS}


def identifiers(text: str) -> set[str]:
    """Tokens mixing letters and digits ("Project0040", "F-16", "Q3"), lower-cased; years and quarters excluded."""
    out = set()
    for m in _IDENT.finditer(text):
        tok = m.group(0).lower()
        if re.fullmatch(r"q[1-4]|\d+(?:st|nd|rd|th|km|kg|m|s)|\d+-\w+|\w+-\d+-\w+", tok):
            continue
        out.add(tok)
    return out


#: Modifiers that exclude one another: "short Neptune" is not the "long Neptune".
_CONTRASTS = {w: k for k, ws in {
    "length": "short long", "direction": "north south east west northern southern eastern western",
    "level": "upper lower", "side": "inner outer", "extent": "minimum maximum", "origin": "domestic foreign",
    "status": "civilian military", "age": "old new", "size": "small large",
}.items() for w in ws.split()}
_DEMONYM = re.compile(r"^[A-Z][a-z]+(?:an|ian|ean|ese|ish|i)$")
_TOKEN = re.compile(r"[A-Za-z][\w-]*|\d[\d,.]*")


def _contrast_class(word: str) -> str | None:
    """The class of a modifier that excludes others of its class: a nationality ("Russian"), or a word of
    _CONTRASTS."""
    if _DEMONYM.match(word) and word.lower() not in STOPWORDS:
        return "nationality"
    return _CONTRASTS.get(word.lower())


def qualifiers(question: str) -> set[tuple[str, str, str]]:
    """(class, modifier, head stem) for each word of the question that qualifies the next one with a value
    that excludes others: "Russian soldiers", "short Neptune"."""
    words = _TOKEN.findall(visible(question))
    out = set()
    for i, (m, h) in enumerate(zip(words, words[1:])):
        k = _contrast_class(m)
        if k is None or h.lower() in STOPWORDS or _contrast_class(h) == k:
            continue
        if k != "nationality" and m[0].isupper() and h[0].isupper() and i:  # part of a name: "North Korean"
            continue
        out.add((k, m.lower(), stem_words([h.lower()])[0]))
    return out


def _qualifier_clash(q: tuple[str, str, str], words: list[str], stems: list[str]) -> bool:
    """Does the sentence (its ``words`` and their ``stems``) qualify the question's head word only by other
    values of its class ("Ukrainian soldiers" for "Russian soldiers")?"""
    kind, wanted, head = q
    others = False
    for i, stem in enumerate(stems):
        if stem != head:
            continue
        before = [b.lower() for b in words[max(0, i - 3) : i]]
        if wanted in before:
            return False
        if i and words[i - 1].lower() != wanted and _contrast_class(words[i - 1]) == kind:
            others = True
    return others


_FULL_NAME = re.compile(r"\b([A-Z][a-z]+) ([A-Z][a-z]+(?:[’']s)?)\b(?! [A-Z])")


def constraints(question: str) -> Constraints:
    """What the question pins down. Names are capitalised words after the first word."""
    found_names: set[str] = set()
    words = _CAPITAL.findall(question)
    first = re.match(r"\s*([A-Za-z’'-]+)", question)
    for w in words:
        if first and w == first.group(1) and question.lstrip().startswith(w):
            continue
        for part in re.sub(r"[’']s$", "", w).split("-"):
            low = part.lower().strip("’'")
            if not part[:1].isupper() or len(low) < 2 or low in STOPWORDS or low in OPENERS or low in MONTHS:
                continue
            found_names.add(low)
    surnames: dict[str, str] = {}
    for full in _FULL_NAME.finditer(question):
        given, last = (re.sub(r"[’']s$", "", w).lower() for w in full.groups())
        if given in found_names and last in found_names and _contrast_class(full.group(1)) is None:
            surnames[given] = last
    return Constraints(years=years(question), quarters=quarters(question), months=months(question),
                       identifiers=identifiers(question), names=found_names, qualifiers=qualifiers(question),
                       surnames=surnames)


def violations(c: Constraints, sentence: str, article: str) -> list[str]:
    """The question's constraints the sentence contradicts: a year, quarter, month or identifier that the
    sentence replaces by another value of the same kind, or that neither the sentence nor its article has;
    a name neither mentions."""
    out: list[str] = []
    for label, wanted, find in (("year", c.years, years), ("quarter", c.quarters, quarters),
                                ("month", c.months, months), ("identifier", c.identifiers, identifiers)):
        if not wanted:
            continue
        in_sentence = find(visible(sentence))
        if wanted & in_sentence:
            continue
        if in_sentence or not (wanted & find(article)):
            out.append(f"{label} {', '.join(sorted(wanted))}")
    if c.names:
        low_s, low_a = visible(sentence).lower(), visible(article).lower()
        out += [f"name {n}" for n in sorted(c.names) if not mentions(n, low_s) and not mentions(n, low_a)
                and not (n in c.surnames and (mentions(c.surnames[n], low_s) or mentions(c.surnames[n], low_a)))]
    if c.qualifiers:
        words = _TOKEN.findall(visible(sentence))
        stems = stem_words([w.lower() for w in words])  # once per sentence, not once per word and qualifier
        out += [f"qualifier {q[1]}" for q in sorted(c.qualifiers) if _qualifier_clash(q, words, stems)]
    return out


# --- typo correction --------------------------------------------------------------------------------
def correct(text: str, vocabulary: set[str], by_initial: dict[str, list[str]]) -> str:
    """Replace misspelt words by the closest word of the vocabulary ('governer' -> 'governor').

    Never touches a word with digits (an identifier is never turned into another one), a word the
    vocabulary has, a stopword, or an ordinary English word; never produces a word with digits.
    """
    import difflib

    english = english_words()

    def fix(m: re.Match[str]) -> str:
        w = m.group(0)
        low = w.lower()
        if (len(low) < 4 or low in vocabulary or low in STOPWORDS or any(ch.isdigit() for ch in low)
                or low in english):
            return w
        pool = [v for v in by_initial.get(low[0], []) if not any(ch.isdigit() for ch in v)]
        close = difflib.get_close_matches(low, pool, n=1, cutoff=0.85)
        return close[0] if close else w

    return WORD.sub(fix, text)


@lru_cache(maxsize=1)
def _english_stems() -> frozenset[str]:
    return frozenset(stem_words(sorted(english_words())))


def _inflected(stem: str, stems: Any) -> bool:
    """Is the word (its ``stem``) an inflection of an English word ("ambushes") or of a corpus word
    ("evacuees" ~ "evacuated": their stems differ by at most two final letters)?"""
    if stem in _english_stems():
        return True
    return any(stem[:k] in stems for k in range(max(5, len(stem) - 2), len(stem)))


def unknown_terms(question: str, vocabulary: set[str], stems: Any = ()) -> list[str]:
    """Words of the question that neither the corpus (its words or their stems: ``stems``) nor ordinary
    English has: made-up or misspelt past recognition ("Kurskxqzvbnm"), or identifiers the corpus never
    mentions."""
    english = english_words()
    out = []
    for w in WORD.findall(question):
        low = w.lower()
        if low in STOPWORDS or low in vocabulary or len(low) < 3:
            continue
        if any(ch.isdigit() for ch in low):
            if low.isdigit():
                continue  # a bare number is a value, checked by the answer
            out.append(w)
            continue
        stem = stem_words([low])[0]
        if stem in stems:
            continue
        if low in english or low.rstrip("s") in english or low.rstrip("s") in vocabulary or _inflected(stem, stems):
            continue
        out.append(w)
    return out


# --- titles and dates --------------------------------------------------------------------------------
#: Lines that are page furniture, not a headline or content.
BOILERPLATE = re.compile(
    r"^(?:featured|source link|related posts?|related articles?|read more|load more|advertisement|sponsored|"
    r"comments are closed|subscribe\b.*|sign up\b.*|discover more\b.*|share(?: this)?(?: article| story)?|"
    r"listen to (?:this )?article\b.*|skip to (?:main )?content|(?:photo|image|video)(?: credit)?:.*|"
    r"(?:updated|published|posted|last updated)\b.*|\d+ min(?:ute)? read)\W*$",
    re.IGNORECASE,
)
_BYLINE = re.compile(r"^(?:by|written by|reporting by|posted by|story by)\s+\S", re.IGNORECASE)
_FRONT = re.compile(r"\A\s*---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_MON = {m[:3]: i + 1 for i, m in enumerate(MONTHS)}
_MONTH_RE = r"(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?"
_DATES = (
    (re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b"), ("y", "m", "d")),
    (re.compile(r"\b" + _MONTH_RE + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+(\d{4})\b", re.I), ("mon", "d", "y")),
    (re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+" + _MONTH_RE + r",?\s+(\d{4})\b", re.I), ("d", "mon", "y")),
)


def front_matter(text: str) -> dict[str, str]:
    """`key: value` lines of a leading --- … --- block (Markdown front matter), lower-cased keys."""
    m = _FRONT.match(text[:4000])
    if not m:
        return {}
    out = {}
    for line in m.group(1).splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip():
            out[key.strip().lower()] = value.strip().strip("\"'")
    return out


def _full_date(line: str) -> str:
    """The first full date (day, month and year) in a line as yyyy-mm-dd, or ""."""
    import datetime

    for pattern, order in _DATES:
        m = pattern.search(line)
        if not m:
            continue
        parts = dict(zip(order, m.groups()))
        month = int(parts["m"]) if "m" in parts else _MON[parts["mon"].lower()[:3]]
        try:
            return datetime.date(int(parts["y"]), month, int(parts["d"])).isoformat()
        except ValueError:
            continue
    return ""


def _header_lines(text: str, n: int = 8) -> list[str]:
    """The first n non-empty lines after any front matter, invisible characters and Markdown marks removed."""
    m = _FRONT.match(text[:4000])
    body = text[m.end():] if m else text
    out = []
    for line in body[:6000].splitlines():
        line = visible(line).strip().lstrip("#>").strip().strip("*_").strip()
        if line:
            out.append(line)
            if len(out) >= n:
                break
    return out


_TERMINAL = (".", "!", "?", "…", "。", "！", "？", ":", ";")


def is_heading(span: str, title: str = "") -> bool:
    """A span that labels rather than states, so it never answers by itself: one without a closing full
    stop that is the article's headline, a heading in capitals, a Markdown heading or front matter line, page
    furniture, or fewer than eight words. An unpunctuated line of prose ("Elsewhere, Russia is continuing its
    advance towards Pokrovsk, a key strategic hub for Ukraine's army") still states."""
    s = span.strip()
    if not s or s.rstrip("\"'”’)]」』）").endswith(_TERMINAL):
        return False
    letters = [ch for ch in s if ch.isalpha()]
    return (s == title.strip() or s.startswith(("#", "---")) or bool(BOILERPLATE.match(s))
            or bool(re.match(r"^[A-Za-z_]+:\s", s)) or (bool(letters) and all(ch.isupper() for ch in letters))
            or len(s.split()) < 8)


def title_of(text: str) -> str:
    """The article's headline: front matter's `title:`, else the first line that is not page furniture
    ("Featured", "Source link", bylines, date lines). A first line that is a whole paragraph (no headline)
    gives its first sentence, shortened at a word boundary."""
    fm = front_matter(text).get("title", "")
    if fm:
        return fm[:200]
    for line in _header_lines(text):
        if BOILERPLATE.match(line) or _BYLINE.match(line) or (_full_date(line) and len(line) <= 40):
            continue
        spans = split_sentences(line)
        if len(line) <= 150 and len(spans) <= 1:
            return line
        first = line[spans[0][0] : spans[0][1]] if spans else line
        if len(first) <= 110:
            return first
        return first[:100].rsplit(" ", 1)[0].rstrip(",;:–—-") + "…"
    return ""


def date_of(text: str) -> str:
    """The article's date (ISO yyyy-mm-dd): front matter's `date:`, or a dateline near the top (a short line
    with a full date, such as "March 3, 2025" or "Published: 2025-03-03"); "" when it states none. A date is
    never guessed: a month and year in the text ("entered in August 2024") is not the article's date."""
    fm = front_matter(text)
    for key in ("date", "published", "dateline"):
        if fm.get(key):
            found = _full_date(fm[key])
            if found:
                return found
    for line in _header_lines(text, 6):
        low = line.lower()
        if len(line) <= 100 or low.startswith(("published", "updated", "date", "posted")):
            found = _full_date(line)
            if found:
                return found
    return ""
