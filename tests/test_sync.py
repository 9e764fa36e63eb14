"""Incremental sync against a real on-disk Chroma with real embeddings."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from assistant import Assistant, AssistantError
from assistant.errors import DocumentsError, IndexUnavailableError

N002 = "002_5fe3474391e77e48.txt"


def _kb(docs: Path, tmp_path: Path, **kw: object) -> Assistant:
    return Assistant(docs_dir=docs, index_dir=tmp_path / "index", answerer="offline", **kw)


def test_incremental_sync_cases(seeds_copy: Path, tmp_path: Path) -> None:
    kb = _kb(seeds_copy, tmp_path)
    first = kb.sync()
    assert (first.added, first.files_total) == (5, 5)
    total = first.chunks_total
    assert first.chunks_embedded == total > 5

    # unchanged corpus: nothing embedded
    again = kb.sync()
    assert (again.unchanged, again.chunks_embedded, again.added, again.updated) == (5, 0, 0, 0)

    # modified file: only its changed chunks are embedded
    p = seeds_copy / N002
    p.write_text(p.read_text(encoding="utf-8") + "\nA new closing sentence about drones in Kursk.\n", encoding="utf-8")
    mod = kb.sync()
    assert (mod.updated, mod.unchanged) == (1, 4)
    assert 1 <= mod.chunks_embedded <= 2
    assert mod.chunks_reused >= 1 or mod.chunks_embedded == mod.chunks_total - total + 1

    # renamed file: not re-embedded, old name gone from results
    p.rename(seeds_copy / "renamed.txt")
    ren = kb.sync()
    assert (ren.renamed, ren.chunks_embedded, ren.removed, ren.added) == (1, 0, 0, 0)
    sources = {r.source for r in kb.corpus.records}
    assert "renamed.txt" in sources and N002 not in sources

    # deleted file: its chunks disappear
    before = ren.chunks_total
    n_renamed = sum(1 for r in kb.corpus.records if r.source == "renamed.txt")
    (seeds_copy / "renamed.txt").unlink()
    rem = kb.sync()
    assert (rem.removed, rem.chunks_embedded) == (1, 0)
    assert rem.chunks_total == before - n_renamed
    assert all(r.source != "renamed.txt" for r in kb.corpus.records)

    # duplicate under another name: reuses vectors
    shutil.copy(seeds_copy / "000_b6f1711b44fb3f20.txt", seeds_copy / "copy.txt")
    dup = kb.sync()
    assert (dup.added, dup.chunks_embedded) == (1, 0)


def test_new_answers_after_a_change(seeds_copy: Path, tmp_path: Path) -> None:
    kb = _kb(seeds_copy, tmp_path)
    kb.sync()
    (seeds_copy / "new.md").write_text(
        "# Bridge destroyed\n\nThe Glushkovo bridge over the Seym river was destroyed by HIMARS strikes, "
        "according to the regional governor.\n",
        encoding="utf-8",
    )
    kb.sync()
    a = kb.ask("What happened to the Glushkovo bridge?")
    assert not a.abstained
    assert a.citations[0].source == "new.md"


def test_bad_files_are_skipped_and_the_rest_indexed(seeds_copy: Path, tmp_path: Path) -> None:
    (seeds_copy / "binary.txt").write_bytes(b"\x00\x01\x02PNG\x00" * 50)
    (seeds_copy / "latin1.txt").write_bytes("Caf\xe9 in Kursk".encode("latin-1"))
    (seeds_copy / "empty.md").write_bytes(b"")
    (seeds_copy / "notes.pdf").write_bytes(b"%PDF")  # not an article type: named once, with why
    report = _kb(seeds_copy, tmp_path).sync()
    assert report.files_total == 5
    joined = " ".join(report.skipped)
    for name in ("binary.txt", "latin1.txt", "empty.md"):
        assert name in joined
    assert "notes.pdf: skipped, .pdf is not an article type" in joined
    assert "UTF-8" in joined and "binary" in joined and "empty" in joined


def test_missing_and_empty_folders_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DocumentsError, match="does not exist"):
        _kb(tmp_path / "nope", tmp_path).sync()
    (tmp_path / "empty").mkdir()
    kb = _kb(tmp_path / "empty", tmp_path)
    assert kb.sync().files_total == 0
    with pytest.raises(DocumentsError, match="No articles are indexed.*Add some"):
        kb.ask("How many North Korean troops did Russia deploy to Kursk?")


def test_corrupted_index_says_how_to_rebuild(seeds_copy: Path, tmp_path: Path) -> None:
    kb = _kb(seeds_copy, tmp_path)
    kb.sync()
    del kb
    (db,) = (tmp_path / "index").rglob("chroma.sqlite3")
    db.write_bytes(b"this is not a database" * 100)
    broken = _kb(seeds_copy, tmp_path)
    with pytest.raises(IndexUnavailableError, match="--rebuild") as err:
        broken.sync()
    assert isinstance(err.value, AssistantError)
    rebuilt = _kb(seeds_copy, tmp_path).sync(rebuild=True)
    assert rebuilt.added == 5 and rebuilt.chunks_total > 5


def test_changing_chunking_rebuilds_instead_of_mixing(seeds_copy: Path, tmp_path: Path) -> None:
    a = _kb(seeds_copy, tmp_path).sync()
    b = _kb(seeds_copy, tmp_path, chunk_tokens=100, chunk_overlap_tokens=20).sync()
    assert b.added == 5 and b.chunks_embedded == b.chunks_total > a.chunks_total
