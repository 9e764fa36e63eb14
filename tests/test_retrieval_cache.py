"""The retrieval state (chunk texts, term statistics, BM25) is kept on disk per index revision:
a new process answers without re-reading every chunk, a sync elsewhere is picked up, and a
damaged cache is rebuilt rather than trusted."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from assistant import Assistant
from assistant import retrieve as retrieve_mod
from assistant.index import Index, read_cache, write_cache
from assistant.retrieve import ChunkRecord, Corpus, terms

QUESTION = "How many North Korean troops did Russia deploy to Kursk?"


def _kb(docs: Path, index: Path) -> Assistant:
    return Assistant(docs_dir=docs, index_dir=index, answerer="offline")


def _synced(docs: Path, tmp_path: Path) -> tuple[Path, Assistant]:
    index = tmp_path / "index"
    kb = _kb(docs, index)
    kb.sync()
    return index, kb


def _no_full_read(*args: object, **kwargs: object) -> None:
    raise AssertionError("read every chunk from Chroma although the cache matches")


def test_new_process_answers_from_the_cache_and_picks_up_another_sync(
    seeds_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, first = _synced(seeds_copy, tmp_path)
    expected = first.ask(QUESTION)
    assert "12,000" in expected.text
    assert list(index.rglob("retrieval-cache/*.corpus.cache"))

    # A second Assistant (as in a new process) must not page through the whole collection.
    monkeypatch.setattr(retrieve_mod, "get_all", _no_full_read)
    second = _kb(seeds_copy, index)
    again = second.ask(QUESTION)
    assert again.text == expected.text and again.citations == expected.citations

    # Another writer changes one article: the next reader sees the new text, reading only new chunks.
    p = next(seeds_copy.glob("002_*.txt"))
    p.write_text(p.read_text(encoding="utf-8") + "\nThe Zorblax brigade reached Sudzha on Tuesday.\n", encoding="utf-8")
    report = _kb(seeds_copy, index).sync()
    assert report.updated == 1
    third = _kb(seeds_copy, index)
    answer = third.ask("Which brigade reached Sudzha on Tuesday?")
    assert "Zorblax" in answer.text
    assert answer.citations[0].source == p.name
    assert len(third.corpus.records) == report.chunks_total


def test_damaged_cache_is_rebuilt_with_a_warning(
    seeds_copy: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    index, kb = _synced(seeds_copy, tmp_path)
    expected = kb.ask(QUESTION).text
    (cache,) = index.rglob("retrieval-cache/*.corpus.cache")
    cache.write_bytes(b"not a cache at all")
    with caplog.at_level(logging.WARNING):
        assert _kb(seeds_copy, index).ask(QUESTION).text == expected
    assert "rebuilding it from the index" in caplog.text
    assert read_cache(cache)[1] is not None  # rewritten as a valid cache


def test_unchanged_resync_reads_the_cached_manifest_and_a_killed_sync_invalidates_it(
    seeds_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    total = kb.sync().chunks_total

    def no_read(self: Index) -> None:
        raise AssertionError("paged through the collection although nothing changed")

    with monkeypatch.context() as m:
        m.setattr(Index, "_read_stored", no_read)
        again = _kb(seeds_copy, index).sync()
    assert (again.unchanged, again.chunks_embedded) == (5, 0)

    # A sync killed after its first write: the cached manifest must not be trusted afterwards.
    p = next(seeds_copy.glob("002_*.txt"))
    p.write_text(p.read_text(encoding="utf-8") + "\nDrones hit a depot near Sudzha.\n", encoding="utf-8")
    (seeds_copy / "new.txt").write_text("Brand new article.\n\nIt mentions Kursk and a new bridge.\n", encoding="utf-8")
    victim = _kb(seeds_copy, index)
    rev_before = victim.index.revision()
    calls = {"n": 0}
    real_upsert = victim.index.collection.upsert

    def upsert_then_die(**kw: object) -> None:
        real_upsert(**kw)
        calls["n"] += 1
        raise KeyboardInterrupt

    monkeypatch.setattr(victim.index.collection, "upsert", upsert_then_die)
    with pytest.raises(KeyboardInterrupt):
        victim.sync()
    assert calls["n"] == 1
    assert victim.index.revision() != rev_before  # caches made before the crash are no longer trusted
    after = _kb(seeds_copy, index).sync()
    assert after.files_total == 6 and after.unchanged >= 4
    fresh = _kb(seeds_copy, index)
    assert "bridge" in fresh.ask("What new structure does the article about Kursk mention?").text
    by_source: dict[str, set[str]] = {}
    for r in fresh.corpus.records:
        by_source.setdefault(r.source, set()).add(r.id.split("-")[0])
    assert all(len(shas) == 1 for shas in by_source.values())  # no article kept two versions
    assert fresh.index.count() >= total


def _records(texts: list[str], source: str = "a.txt") -> list[ChunkRecord]:
    out, pos = [], 0
    for i, t in enumerate(texts):
        out.append(ChunkRecord(id=f"{source}-{i}", source=source, title="t", text=t, start=pos, end=pos + len(t)))
        pos += len(t) + 1
    return out


def test_updated_corpus_ranks_like_one_built_from_scratch() -> None:
    old = _records(["Drones struck Sudzha overnight.", "The governor spoke about Kursk.", "Troops crossed the border."])
    new = _records(["North Korean troops arrived in Kursk.", "Sudzha was recaptured in March."], source="b.txt")
    updated = Corpus(old).updated(new, removed={old[1].id})
    fresh = Corpus(sorted([old[0], old[2], *new], key=lambda r: (r.source, r.start)))
    assert [r.id for r in updated.records] == [r.id for r in fresh.records]
    assert updated.df == fresh.df
    for q in ("Sudzha drones", "troops Kursk", "governor"):
        assert updated.bm25_top(terms(q), 5) == fresh.bm25_top(terms(q), 5)
    assert updated.bm25_top(terms("governor"), 5) == []  # the removed chunk is really gone
    assert updated.bm25_top(terms("Sudzha"), 5)[0][1] > 0


def test_index_from_an_older_version_without_a_revision_gets_one_and_is_cached(
    seeds_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index, kb = _synced(seeds_copy, tmp_path)
    col = kb.index.collection
    col.modify(metadata={k: v for k, v in (col.metadata or {}).items() if k not in ("revision", "complete")})
    assert kb.index.revision() == ""
    first = _kb(seeds_copy, index)
    text = first.ask(QUESTION).text
    assert first.index.revision() != ""
    monkeypatch.setattr(retrieve_mod, "get_all", _no_full_read)
    assert _kb(seeds_copy, index).ask(QUESTION).text == text


def test_unchanged_sync_keeps_the_loaded_state_and_a_change_reloads_it(seeds_copy: Path, tmp_path: Path) -> None:
    _, kb = _synced(seeds_copy, tmp_path)
    before = kb.corpus
    assert kb.sync().unchanged == 5 and kb.corpus is before
    extra = "# Extra\n\nA ferry crossed the Seym river near Glushkovo.\n"
    (seeds_copy / "extra.md").write_text(extra, encoding="utf-8")
    kb.sync()
    assert kb.corpus is not before and "extra.md" in kb.corpus.sources


def test_cache_maps_its_arrays_from_the_file_and_rejects_a_truncated_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import numpy as np

    path = tmp_path / "x.corpus.cache"
    vectors = np.arange(12, dtype=np.float16).reshape(3, 4)
    write_cache(path, "rev-1", {"vectors": vectors, "names": ["a", "b"]})
    rev, value = read_cache(path)
    assert rev == "rev-1" and value["names"] == ["a", "b"]
    assert np.array_equal(value["vectors"], vectors)
    assert not value["vectors"].flags.writeable  # a view of the mapped file, not a copy

    # Saving again replaces the file: a process still holding the old mapping keeps reading the old values.
    write_cache(path, "rev-2", {"vectors": vectors * 2, "names": []})
    assert np.array_equal(value["vectors"], vectors)
    assert read_cache(path)[0] == "rev-2"

    path.write_bytes(path.read_bytes()[:-10])
    with caplog.at_level(logging.WARNING):
        assert read_cache(path) == ("", None)
    assert "shorter than its header says" in caplog.text


def test_a_cached_corpus_gives_back_the_same_chunks(tmp_path: Path) -> None:
    records = [ChunkRecord("a-0", "a.txt", "A", "Kyiv’s troops — 12,000 of them.", 0, 32, "2024-08-06"),
               ChunkRecord("b-0", "b.txt", "B", "Sudzha was retaken.", 0, 19)]
    corpus = Corpus(records)
    path = tmp_path / "c.corpus.cache"
    write_cache(path, "r", corpus)
    _, loaded = read_cache(path)
    assert list(loaded.records) == records
    assert loaded.by_id["b-0"] == records[1] and "zz" not in loaded.by_id
    assert loaded.article_text("a.txt") == records[0].text
    assert loaded.bm25_top(terms("Sudzha retaken"), 2)[0][0] == 1
