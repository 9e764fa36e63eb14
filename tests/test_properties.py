"""Property tests: the chunker, the marker parser and the verifier hold for any input."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.citations import parse_markers, split_answer_sentences, verify_answer
from assistant.ingest import Document, chunk, split_sentences
from assistant.schema import RetrievedContext

TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=3000
) | st.lists(st.sampled_from(["Kursk.", "U.S. troops", "12,000", "\n", " ", "«Да».", "é", "?", "[1]", "…"]),
             max_size=300).map(" ".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TEXT, st.integers(min_value=32, max_value=120), st.integers(min_value=0, max_value=31))
def test_chunks_round_trip_and_cover_every_sentence(text: str, size: int, overlap: int) -> None:
    doc = Document(source="x.txt", path=Path("x.txt"), text=text, sha256="0", title="")
    chunks = chunk(doc, size, overlap)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.text == c.text.strip() and c.text
        assert c.tokens <= size
    covered = [False] * len(text)
    for c in chunks:
        for i in range(c.start, c.end):
            covered[i] = True
    for i, ch in enumerate(text):  # every non-space character is in some chunk
        assert covered[i] or ch.isspace()
    starts = [c.start for c in chunks]
    assert starts == sorted(starts)


@given(TEXT)
def test_sentence_spans_are_ordered_trimmed_and_disjoint(text: str) -> None:
    prev = 0
    for s, e in split_sentences(text):
        assert prev <= s < e <= len(text)
        assert text[s:e] == text[s:e].strip()
        prev = e


@given(st.text(max_size=60))
def test_marker_parser_never_crashes_and_stays_bounded(group: str) -> None:
    out = parse_markers(group)
    assert len(out) == len(set(out)) and len(out) <= 40 and all(n >= 0 for n in out)


@given(TEXT)
def test_answer_splitter_never_crashes(text: str) -> None:
    for sentence, markers in split_answer_sentences(text):
        assert "[" not in sentence or not any(f"[{m}]" in sentence for m in markers)


SOURCE = ("Russia later deployed about 12,000 North Korean troops in October 2024 to assist in repelling the "
          "incursion. The fighting is about 320 miles (500km) from Moscow.")
CTX = [RetrievedContext(source="a.txt", title="t", text=SOURCE, start=100, end=100 + len(SOURCE), score=1.0)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["Russia", "deployed", "12,000", "50,000", "troops", "[1]", "[2]", "[1-3]", ".",
                                 "Moscow", "320", "miles", "Paris", "[0]", "[1, 1]", "North", "Korean"]),
                max_size=40).map(" ".join), st.booleans())
def test_verifier_only_ever_cites_verbatim_round_tripping_quotes(reply: str, attribute: bool) -> None:
    text, cites, checks = verify_answer(reply, CTX, attribute_uncited=attribute)
    file_text = " " * 100 + SOURCE
    for c in cites:
        assert file_text[c.start : c.end] == c.quote
    for check in checks:
        if check.supported:
            assert "50,000" not in check.text and "Paris" not in check.text
    assert ("[" in text) == bool(cites)
