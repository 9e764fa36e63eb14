from __future__ import annotations

from pathlib import Path

import pytest

from assistant import ingest
from assistant.ingest import Document, chunk, count_tokens, split_sentences

SEEDS = Path(__file__).resolve().parent.parent / "seeds"


def _doc(text: str) -> Document:
    return Document(source="x.txt", path=Path("x.txt"), text=text, sha256="0", title=ingest.title_of(text))


@pytest.mark.parametrize("path", sorted(SEEDS.glob("*.txt")), ids=lambda p: p.name)
def test_seed_chunks_round_trip_and_respect_the_budget(path: Path) -> None:
    doc = ingest.load(path, SEEDS, 10_000_000)
    chunks = chunk(doc, 160, 32)
    assert chunks
    text = ingest.read_text(path)
    for c in chunks:
        assert text[c.start : c.end] == c.text
        assert c.tokens <= 160
        assert count_tokens(c.text) <= 160 + 8  # joining sentences may merge a token or two
    # every sentence of the article is inside some chunk
    for s, e in split_sentences(text):
        assert any(c.start <= s and e <= c.end for c in chunks)
    # neighbours overlap a little or touch; they never skip text
    for a, b in zip(chunks, chunks[1:]):
        assert b.start <= a.end + 2 or text[a.end : b.start].strip() == ""


def test_chunks_end_on_sentence_boundaries() -> None:
    text = " ".join(f"Sentence number {i} says something about Kursk." for i in range(60))
    chunks = chunk(_doc(text), 64, 16)
    assert len(chunks) > 3
    for c in chunks:
        assert c.text.startswith("Sentence number")
        assert c.text.endswith(".")
    assert chunks[1].start < chunks[0].end  # overlap by whole sentences


def test_over_long_sentence_is_split_at_words() -> None:
    text = "word " * 2000
    chunks = chunk(_doc(text.strip()), 100, 10)
    assert len(chunks) > 10
    assert all(c.tokens <= 100 for c in chunks)
    assert all(text[c.start : c.end] == c.text for c in chunks)


def test_sentence_splitter_keeps_abbreviations() -> None:
    text = "U.S. President Donald Trump spoke. The U.K. said so on Monday. Then it ended."
    spans = [text[s:e] for s, e in split_sentences(text)]
    assert spans == ["U.S. President Donald Trump spoke.", "The U.K. said so on Monday.", "Then it ended."]


def test_title_is_first_non_empty_line() -> None:
    assert ingest.title_of("\n\n  Headline here \nbody") == "Headline here"


def test_a_heading_in_capitals_run_into_its_sentence_is_a_span_of_its_own() -> None:
    text = ("RUSSIAN AND NORTH KOREAN FORCES ATTACK It is reported that they are constantly attacking.\n"
            "NATO EU UN Talks stalled on Monday. US-based analysts disagreed.")
    spans = [text[s:e] for s, e in split_sentences(text)]
    assert spans == ["RUSSIAN AND NORTH KOREAN FORCES ATTACK", "It is reported that they are constantly attacking.",
                     "NATO EU UN Talks stalled on Monday.", "US-based analysts disagreed."]


def test_headings_and_page_furniture_never_state_but_unpunctuated_prose_does() -> None:
    from assistant.text import is_heading

    title = "Kremlin accelerates push to drive Ukrainian forces from Kursk region"
    for span in [title, "KIEV LOSES HALF OF KURSK", "# Calder Rail results for Q4 2021", "date: 2022-01-30", "---",
                 "Source link", "Council approves Project0003"]:
        assert is_heading(span, title), span
    for span in ["Elsewhere, Russia is continuing its advance towards Pokrovsk, a key strategic hub for Ukraine's army",
                 "NATO said so.", "Kursk fell?", title + "."]:
        assert not is_heading(span, title), span
