"""Conversation follow-ups, offline: does a question depend on the conversation, and what does it ask?

Only a genuinely dependent question is rewritten; a self-contained one ("Who is Alexei Smirnov?" after a
question about missiles) is asked as typed. A question depends on the conversation when it
- continues it: "And …", "But …", "Also, …", "What about …", "How about …";
- corrects it: "I meant …", "Sorry, I meant …", "No, …", "Actually, …";
- is a bare question word or fragment: "Why?", "When?", "What else?", "How many in 2025?";
- points back: a personal pronoun (he, she, it, they, him, them; not the "it" of "is it true that …"),
  a possessive with no name before it in the question ("his name", not "Zelenskyy … his troops"), a
  demonstrative used on its own or before a noun ("that", "those soldiers"; not "this week", not
  "say that …"), or "there" as a place ("what happened there"; not "is there …").

The rewrite keeps the user's words and adds what they point back to: a fragment or a correction replaces
the slot of the same kind in the previous question (a year for a year, a name for a name); a pronoun or a
bare question word gets the previous question's topic in parentheses. The rules are scored on
eval/conversations.jsonl (`assistant eval --conversations`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .errors import QuestionError
from .text import MONTHS, STOPWORDS, years

ROLES = ("user", "assistant", "system")


def check_messages(messages: Any) -> None:
    """A conversation as chat() takes it: a list of {"role": ..., "content": text} ending with a user message.
    Raises QuestionError saying which message is wrong and how."""
    how = ('chat() needs a list of messages such as [{"role": "user", "content": "How far is Kursk from '
           'Moscow?"}], ending with a user message')
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, (list, tuple)):
        raise QuestionError(f"{how}; got a {type(messages).__name__}.")
    if not messages:
        raise QuestionError(f"{how}; got an empty list: at least one message is needed.")
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            raise QuestionError(f"messages[{i}] is a {type(m).__name__}, not a dict; {how}.")
        for key in ("role", "content"):
            if key not in m:
                raise QuestionError(f"messages[{i}] has no {key!r}; {how}.")
        if m["role"] not in ROLES:
            raise QuestionError(f"messages[{i}] has role {m['role']!r}; use 'user', 'assistant' or 'system'.")
        if not isinstance(m["content"], str):
            raise QuestionError(f"messages[{i}]['content'] is a {type(m['content']).__name__}, not text (str).")
    if messages[-1]["role"] != "user":
        raise QuestionError(f"{how}; the last one is from {messages[-1]['role']!r}.")

_CONTINUE = re.compile(r"^(?:and|but|also|plus|so|then|what about|how about|and what about|what else)\b[,\s]*",
                       re.IGNORECASE)
_CORRECT = re.compile(r"^(?:(?:sorry|no|oops|actually|wait)[,!.]?\s*)*(?:i\s+meant?|i\s+mean)\b[,:\s]*"
                      r"|^(?:sorry|no|actually)[,!.]\s*", re.IGNORECASE)
_PERSONAL = re.compile(r"\b(?:he|she|him|they|them|it)\b", re.IGNORECASE)
_EXPLETIVE_IT = re.compile(r"\b(?:is|was|isn't|wasn't)\s+it\s+(?:true|possible|likely|correct|right)\b|"
                           r"\bit\s+(?:is|was)\s+(?:true|reported|said|claimed)\s+that\b", re.IGNORECASE)
_REPORTED = re.compile(r"\b(?:say|says|said|claim|claims|claimed|think|thinks|believe|believes|deny|denies|"
                       r"denied|report|reports|reported|announce|announced)\s+(?:that\s+)?$", re.IGNORECASE)
_POSSESSIVE = re.compile(r"\b(?:his|her|its|their)\b", re.IGNORECASE)
_DEMONSTRATIVE = re.compile(r"\b(?:that|this|those|these)\b(?:\s+(\w+))?", re.IGNORECASE)
_TIME_WORDS = {"week", "year", "month", "morning", "evening", "time", "day", "weekend", "summer", "winter",
               "spring", "autumn", "fall"}
_COMPLEMENT_BEFORE = re.compile(r"\b(?:say|says|said|claim|claims|claimed|true|report|reported|reports|so|such|"
                                r"evidence|mean|means|think|believe|deny|denied|confirm|confirmed|is it|"
                                r"argue|argued|show|shows|showed|suggest|suggests)\s*$", re.IGNORECASE)
_THERE = re.compile(r"\bthere\b", re.IGNORECASE)
_EXISTENTIAL_THERE = re.compile(r"\b(?:is|are|was|were|be|been|isn't|aren't|wasn't|weren't)\s+there\b|"
                                r"^there\s+(?:is|are|was|were)\b", re.IGNORECASE)
_WH = re.compile(r"^(?:who|what|when|where|why|how|which|whom|whose)\b", re.IGNORECASE)
_BARE = re.compile(r"^(?:who|what|when|where|why|how|which)(?:\s+(?:else|exactly|so|then|not|many|much|"
                   r"long|far|often|come))?\s*\??$", re.IGNORECASE)
_NAME = re.compile(r"\b[A-Z][a-zA-Z’'-]+(?:\s+(?:(?:of|for|the|and)\s+)*[A-Z][a-zA-Z’'-]+)*")
_PREP = r"(?:in|into|from|of|near|at|to|for|on|about|over|around)"
_AFTER_PREP = re.compile(r"\b" + _PREP + r"\s+(?:the\s+)?$", re.IGNORECASE)
_STARTS_PREP = re.compile(r"^" + _PREP + r"\b", re.IGNORECASE)
_SUBJECT = re.compile(r"\b(?:did|does|do|has|have|had|is|was|were|are|will|can|could)\s+(?:the\s+)?$",
                      re.IGNORECASE)
_VERB_HINT = re.compile(r"\b(?:is|are|was|were|did|does|do|has|have|had|can|could|will|would|should|say|said|"
                        r"says|happen|happened|\w+ed)\b", re.IGNORECASE)


def _name_spans(text: str, first_word: bool = False) -> list[re.Match[str]]:
    """Names: runs of capitalised words ("Institute for the Study of War"), not a lone stopword or month,
    nor the question's first word unless first_word."""
    out = []
    for m in _NAME.finditer(text):
        w = m.group()
        if not first_word and m.start() == len(text) - len(text.lstrip()):
            rest = w.split(None, 1)
            if len(rest) == 1:
                continue
            m = _NAME.search(text, m.start() + len(rest[0]) + 1)  # type: ignore[assignment]
            if m is None:
                continue
            w = m.group()
        if w.lower() in STOPWORDS or w.lower() in MONTHS:
            continue
        out.append(m)
    return out


def _names(text: str, first_word: bool = False) -> list[str]:
    return [m.group() for m in _name_spans(text, first_word)]


def _points_back(q: str) -> bool:
    for m in _PERSONAL.finditer(_EXPLETIVE_IT.sub(lambda x: " " * len(x.group()), q)):
        if _REPORTED.search(q[: m.start()]) and _names(q[: m.start()]):
            continue  # "did Russia say it retook …": the speaker, named in the question
        return True
    for m in _POSSESSIVE.finditer(q):
        if not _names(q[: m.start()]):
            return True
    for m in _DEMONSTRATIVE.finditer(q):
        nxt = (m.group(1) or "").lower()
        if nxt in _TIME_WORDS or _COMPLEMENT_BEFORE.search(q[: m.start()]):
            continue
        if m.group().lower().startswith("this") and nxt and nxt not in STOPWORDS and not _VERB_HINT.match(nxt):
            continue  # "this war", "this region": the topic at hand, not the previous answer
        if m.group().lower().startswith("that") and nxt and nxt in STOPWORDS and nxt not in ("was", "is"):
            continue  # "that the …": a clause, not a pointer
        return True
    return bool(_THERE.search(q)) and not _EXISTENTIAL_THERE.search(q)


def needs_rewrite(question: str) -> bool:
    """True when the question cannot be understood without the conversation before it."""
    q = question.strip()
    if _CONTINUE.match(q) or _CORRECT.match(q) or _BARE.match(q):
        return True
    words = re.findall(r"[\w’'-]+", q)
    content = [w for w in words if w.lower() not in STOPWORDS and not _WH.match(w)]
    if len(words) <= 4 and _WH.match(q) and not _names(q) and not _VERB_HINT.search(q):
        return True  # "How many in 2025?"
    if len(words) <= 3 and not _WH.match(q) and content and not _VERB_HINT.search(q):
        return True  # "The wounded?"
    return _points_back(q)


def _topic(previous: str) -> str:
    """The previous question's content words, in order, without question words and stopwords."""
    words = re.findall(r"[\w’'-]+", previous)
    return " ".join(w for w in words if w.lower() not in STOPWORDS and not _WH.match(w) and len(w) > 1)


def _substitute(previous: str, fragment: str) -> str | None:
    """The previous question with the fragment's year or name put in place of its own; None if the fragment
    has no slot of a kind the previous question has."""
    prev = previous.strip().rstrip("?.! ")
    new_years, old_years = years(fragment), sorted(years(prev))
    if new_years and old_years:
        out = prev
        for year in old_years:
            out = out.replace(year, sorted(new_years)[0])
        return out + "?"
    new_names, old = _names(fragment, first_word=True), _name_spans(prev)
    if new_names and old:
        # "in Belgorod": the name after a preposition; otherwise the subject ("What did <Putin> say …") if
        # the question has one; else the last name
        if _STARTS_PREP.match(fragment):
            placed = [m for m in old if _AFTER_PREP.search(prev[: m.start()])]
            slot = placed[-1] if placed else old[-1]
            new_names = _names(_STARTS_PREP.sub("", fragment).strip(), first_word=True) or new_names
        else:
            slot = next((m for m in old if _SUBJECT.search(prev[: m.start()])), old[-1])
        return prev[: slot.start()] + " ".join(new_names) + prev[slot.end():] + "?"
    return None


def rewrite_followup(question: str, previous: str) -> str:
    """The question as one that stands alone, given the previous (standalone) question."""
    q = " ".join(question.split())
    if not previous or not needs_rewrite(q):
        return question
    corrected = _CORRECT.match(q)
    cont = _CONTINUE.match(q)
    rest = q[corrected.end():] if corrected else q[cont.end():] if cont else q
    rest = rest.strip(" ,.?!")
    fragment = rest and not _WH.match(rest) and not _VERB_HINT.search(rest)
    if (corrected or cont) and fragment:
        swapped = _substitute(previous, rest)
        if swapped and swapped.rstrip("?") != previous.strip().rstrip("?.! "):
            return swapped
        if corrected:
            return f"{previous.strip().rstrip('?.! ')} ({rest})?"
        return f"{previous.strip().rstrip('?.! ')}, {rest}?"
    base = rest if (cont or corrected) and rest else q
    if base and not base.endswith("?"):
        base = base.rstrip(".!") + "?"
    base = base[:1].upper() + base[1:]
    return f"{base[:-1]} ({_topic(previous)})?"


def standalone(questions: list[str]) -> str:
    """The last of a conversation's user questions as a standalone question (each earlier one resolved
    first, so a chain of follow-ups keeps its topic)."""
    resolved = ""
    for q in questions:
        resolved = rewrite_followup(q, resolved) if resolved else q
    return resolved
