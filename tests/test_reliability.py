"""Hostile and broken inputs: each ends in a clear message and a consistent index (see README table)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from assistant import Assistant
from assistant import ingest as ingest_mod
from assistant.errors import DocumentsError, IndexUnavailableError, QuestionError
from assistant.ui import save_upload

REPO = Path(__file__).resolve().parent.parent


def _kb(docs: Path, tmp_path: Path, **kw: object) -> Assistant:
    return Assistant(docs_dir=docs, index_dir=tmp_path / "index", answerer="offline", **kw)


# --- questions -----------------------------------------------------------------------------------------
def test_huge_question_is_refused_clearly(seeded: Assistant) -> None:
    with pytest.raises(QuestionError, match="100,000 characters long; the limit is 2,000"):
        seeded.ask("x" * 100_000)


@pytest.mark.parametrize("q", ["?!?...", "Сколько северокорейских солдат отправила Россия?", "坦克有多少?", "🙂🙂"])
def test_odd_questions_abstain_instead_of_crashing(seeded: Assistant, q: str) -> None:
    a = seeded.ask(q)
    assert a.abstained and a.citations == []


# --- documents -----------------------------------------------------------------------------------------
def test_fifty_megabyte_file_is_skipped_and_named(seeds_copy: Path, tmp_path: Path) -> None:
    with open(seeds_copy / "huge.txt", "wb") as fh:
        fh.write(b"Kursk. " * (50 * 1024 * 1024 // 7))
    report = _kb(seeds_copy, tmp_path).sync()
    assert report.files_total == 5
    assert any("huge.txt" in s and "over the" in s for s in report.skipped)


def test_symlink_loops_and_dangling_links_are_harmless(seeds_copy: Path, tmp_path: Path) -> None:
    (seeds_copy / "loop").mkdir()
    os.symlink(seeds_copy / "loop", seeds_copy / "loop" / "again")  # directory loop: not followed
    os.symlink(seeds_copy / "self.txt", seeds_copy / "self.txt")  # a link to itself
    os.symlink(tmp_path / "nowhere.txt", seeds_copy / "dangling.md")
    report = _kb(seeds_copy, tmp_path).sync()
    assert report.files_total == 5
    assert {Path(s.split(":")[0]).name for s in report.skipped} >= {"self.txt", "dangling.md"}


def test_file_that_disappears_mid_sync(seeds_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = ingest_mod.load

    def vanish(path: Path, docs_dir: Path, *args: Any) -> ingest_mod.Document:
        if path.name.startswith("003"):
            path.unlink()
        return real(path, docs_dir, *args)

    monkeypatch.setattr(ingest_mod, "load", vanish)
    report = _kb(seeds_copy, tmp_path).sync()
    assert report.files_total == 4 and any("disappeared" in s for s in report.skipped)


def test_thousands_of_tiny_files(tmp_path: Path) -> None:
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(2000):
        (docs / f"n{i:04d}.txt").write_text(f"Note {i}: village number {i} was shelled.\n", encoding="utf-8")
    kb = _kb(docs, tmp_path)
    first = kb.sync()
    assert (first.added, first.chunks_total) == (2000, 2000)
    again = kb.sync()
    assert again.unchanged == 2000 and again.chunks_embedded == 0
    a = kb.ask("Which village number 1234 was shelled?")
    assert a.citations and a.citations[0].source == "n1234.txt"


def test_unreadable_file_keeps_its_previous_version(seeds_copy: Path, tmp_path: Path) -> None:
    kb = _kb(seeds_copy, tmp_path)
    kb.sync()
    p = seeds_copy / "002_5fe3474391e77e48.txt"
    good = p.read_bytes()
    p.write_bytes(b"\x80\x81 not utf-8 any more")
    report = kb.sync()
    assert report.removed == 0 and any("002_" in s for s in report.skipped)
    assert any(r.source == p.name for r in kb.corpus.records)  # its previous version is kept in the index ...
    a = kb.ask("How many North Korean troops did Russia deploy to Kursk?")
    assert all(c.source != p.name for c in a.citations)  # ... but never cited while the file says otherwise
    assert any(p.name in n and "ingest" in n for n in a.notes)
    p.write_bytes(good)
    again = kb.sync()
    assert (again.unchanged, again.chunks_embedded) == (5, 0)
    assert "12,000" in kb.ask("How many North Korean troops did Russia deploy to Kursk?").text


# --- index ---------------------------------------------------------------------------------------------
def test_deleted_index_is_rebuilt_on_next_use(seeds_copy: Path, tmp_path: Path) -> None:
    _kb(seeds_copy, tmp_path).sync()
    shutil.rmtree(tmp_path / "index")
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    a = _kb(seeds_copy, tmp_path).ask("How many North Korean troops did Russia deploy to Kursk?")
    assert "12,000" in a.text


def _sync_cmd(docs: Path, index: Path) -> list[str]:
    code = ("import sys; from assistant import Assistant; "
            f"r = Assistant(docs_dir={str(docs)!r}, index_dir={str(index)!r}).sync(); print(r.chunks_total)")
    return [sys.executable, "-c", code]


def _state(docs: Path, index: Path) -> tuple[int, set[str]]:
    kb = Assistant(docs_dir=docs, index_dir=index, answerer="offline")
    kb.sync()
    recs = kb.corpus.records
    ids = [r.id for r in recs]
    assert len(ids) == len(set(ids))
    return len(recs), {r.source for r in recs}


def _corpus(tmp_path: Path, n: int) -> Path:
    from bench.run import generate

    docs = tmp_path / "gen"
    generate(n, docs, seed=7)
    return docs


def test_sync_killed_half_way_is_repaired_by_the_next(tmp_path: Path) -> None:
    docs = _corpus(tmp_path, 400)
    index = tmp_path / "killed"
    proc = subprocess.Popen(_sync_cmd(docs, index), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(index.rglob("chroma.sqlite3")):
        time.sleep(0.2)
    time.sleep(6)  # part-way through embedding
    assert proc.poll() is None, "the sync finished before it could be killed; use a bigger corpus"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()
    repaired = _state(docs, index)
    clean = _state(docs, tmp_path / "clean")
    assert repaired == clean  # same chunk count, same articles, no duplicates, nothing lost


def test_two_processes_syncing_at_once(tmp_path: Path) -> None:
    docs = _corpus(tmp_path, 150)
    index = tmp_path / "shared"
    procs = [subprocess.Popen(_sync_cmd(docs, index), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    counts = {int(o[0].strip().splitlines()[-1]) for o in outs}
    clean = _state(docs, tmp_path / "clean")
    assert counts == {clean[0]}
    assert _state(docs, index) == clean


@pytest.mark.server
def test_chroma_server_restarted_during_use(seeds_copy: Path, tmp_path: Path) -> None:
    from .helpers import free_port, start_chroma, stop

    port = free_port()
    proc, _ = start_chroma(tmp_path / "data", port)
    kb = Assistant(docs_dir=seeds_copy, chroma_host="127.0.0.1", chroma_port=port, answerer="offline")
    try:
        kb.sync()
        assert "12,000" in kb.ask("How many North Korean troops did Russia deploy to Kursk?").text
    finally:
        stop(proc)
    with pytest.raises(IndexUnavailableError, match="stopped answering"):
        kb.ask("How many North Korean troops did Russia deploy to Kursk?")
    proc, _ = start_chroma(tmp_path / "data", port)
    try:
        assert "12,000" in kb.ask("How many North Korean troops did Russia deploy to Kursk?").text
    finally:
        stop(proc)


# --- page uploads --------------------------------------------------------------------------------------
def test_uploads_are_confined_limited_and_never_clobber(seeds_copy: Path, tmp_path: Path) -> None:
    kb = _kb(seeds_copy, tmp_path, max_upload_bytes=1000)
    up = tmp_path / "up.txt"
    up.write_text("A small article about Kursk.\n", encoding="utf-8")
    assert save_upload(kb, up, "../../../etc/evil.txt") == "evil.txt"
    assert (seeds_copy / "evil.txt").exists() and not (tmp_path / "etc").exists()
    assert save_upload(kb, up, "/abs/evil.txt") == "evil.txt"  # same content: same file
    up.write_text("Different content.\n", encoding="utf-8")
    assert save_upload(kb, up, "evil.txt") == "evil-1.txt"  # different content: new name
    up.write_bytes(b"x" * 2000)
    with pytest.raises(DocumentsError, match="over the 1,000-byte limit"):
        save_upload(kb, up, "big.txt")
    with pytest.raises(DocumentsError, match="only .txt and .md"):
        save_upload(kb, up, "run.sh")
