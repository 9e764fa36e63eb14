"""The on-disk index trusts nothing it finds in its folder: a CURRENT that points elsewhere, a folder of
another program, a crafted cache file, a FIFO where a file should be, a full or read-only disk. Each ends
in a message that names the real cause, and nothing outside what the assistant made is written or deleted."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assistant import Assistant
from assistant import index as index_mod
from assistant.errors import IndexUnavailableError
from assistant.index import read_cache, write_cache

QUESTION = "How many North Korean troops did Russia deploy to Kursk?"


def _kb(docs: Path, index: Path, **kw: object) -> Assistant:
    return Assistant(docs_dir=docs, index_dir=index, answerer="offline", **kw)


def _forget_chroma() -> None:
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()


def _snapshot(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


def _generation(index: Path) -> Path:
    return index / (index / "CURRENT").read_text().strip()


def _split(seeds: Path, tmp_path: Path) -> tuple[Path, Path]:
    """Two documents folders: the first two seed articles and the other three."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    for i, p in enumerate(sorted(seeds.iterdir())):
        shutil.copy(p, (a if i < 2 else b) / p.name)
    return a, b


# --- (a) generation names ----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["..", ".", "/etc", "gen-0123456789ab/../..", "gen-../../x", "gen-0123456789AB",
                                  "gen-0123456789abc", "", "\x00\xff"])
def test_only_the_generation_names_the_assistant_writes_are_accepted(tmp_path: Path, name: str) -> None:
    from assistant.index import generation_dir

    with pytest.raises(IndexUnavailableError, match=r"CURRENT does not name an index generation.*--rebuild"):
        generation_dir(tmp_path, name)
    assert generation_dir(tmp_path, b"gen-0123456789ab\n") == tmp_path / "gen-0123456789ab"


@pytest.mark.parametrize("content", [b"..\n", b"\x00\xff\x89PNG\r\n\x1a\n"], ids=["dotdot", "binary"])
def test_a_current_that_leads_elsewhere_is_named_and_rebuild_recovers(
    seeds_copy: Path, tmp_path: Path, content: bytes
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "keep.txt").write_text("mine", encoding="utf-8")
    index = home / "idx"
    _kb(seeds_copy, index).sync()
    (_generation(index) / "notes.txt").write_text("also mine", encoding="utf-8")  # a file of the user's in it
    old_gen = _generation(index)
    (index / "CURRENT").write_bytes(content)
    _forget_chroma()
    home_before = sorted(p.name for p in home.iterdir())
    with pytest.raises(IndexUnavailableError, match=r"idx/CURRENT does not name an index generation.*--rebuild"):
        _kb(seeds_copy, index).ask(QUESTION)
    assert sorted(p.name for p in home.iterdir()) == home_before  # nothing written beside the index

    report = _kb(seeds_copy, index).sync(rebuild=True)  # writes a valid CURRENT again
    assert report.added == 5
    assert re.fullmatch(r"gen-[0-9a-f]{12}\n", (index / "CURRENT").read_text())
    assert (home / "keep.txt").read_text(encoding="utf-8") == "mine"
    assert sorted(p.name for p in home.iterdir()) == home_before
    # the old generation lost only what the assistant wrote there; the user's file stays
    assert sorted(p.name for p in old_gen.iterdir()) == ["notes.txt"]
    assert "12,000" in _kb(seeds_copy, index).ask(QUESTION).text


# --- (b) a folder that is not ours -------------------------------------------------------------------
def _chroma_of_another_program(folder: Path) -> None:
    import chromadb

    client = chromadb.PersistentClient(path=str(folder))
    client.create_collection("their_notes").add(ids=["n1"], embeddings=[[0.1, 0.2, 0.3]], documents=["theirs"])
    _forget_chroma()
    (folder / "README").write_text("their readme", encoding="utf-8")


def _plain_folder(folder: Path) -> None:
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes", encoding="utf-8")
    (folder / "CURRENT").write_text("MANIFEST-000001\n", encoding="utf-8")  # as LevelDB writes it


@pytest.mark.parametrize("make", [_chroma_of_another_program, _plain_folder], ids=["chroma", "files"])
def test_a_folder_of_another_program_is_refused_not_written_or_deleted(
    seeds_copy: Path, tmp_path: Path, make: Callable[[Path], None]
) -> None:
    other = tmp_path / "other"
    make(other)
    before = _snapshot(other)
    actions: list[Callable[[Assistant], object]] = [
        lambda kb: kb.sync(rebuild=True), lambda kb: kb.sync(), lambda kb: kb.ask(QUESTION)
    ]
    for action in actions:
        with pytest.raises(IndexUnavailableError, match=r"is not an index folder of this assistant.*--index"):
            action(_kb(seeds_copy, other))
    assert _snapshot(other) == before
    if make is _chroma_of_another_program:
        import chromadb

        assert chromadb.PersistentClient(path=str(other)).get_collection("their_notes").count() == 1
        _forget_chroma()


def test_an_index_made_before_generations_is_used_and_rebuilt_deleting_only_its_own_files(
    seeds_copy: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    _kb(seeds_copy, index).sync()
    gen = _generation(index)
    _forget_chroma()
    for p in gen.iterdir():  # the layout before generations: Chroma's files in the index folder itself
        if p.name != ".assistant-generation":
            p.rename(index / p.name)
    shutil.rmtree(gen)
    for name in ("CURRENT", ".assistant-index"):
        (index / name).unlink(missing_ok=True)
    (index / "notes.txt").write_text("mine", encoding="utf-8")
    assert "12,000" in _kb(seeds_copy, index).ask(QUESTION).text

    assert _kb(seeds_copy, index).sync(rebuild=True).added == 5
    assert (index / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert not (index / "chroma.sqlite3").exists()
    assert "12,000" in _kb(seeds_copy, index).ask(QUESTION).text


def test_rebuilding_one_folder_keeps_the_other_folders_of_a_shared_index(seeds_copy: Path, tmp_path: Path) -> None:
    a, b = _split(seeds_copy, tmp_path)
    index = tmp_path / "shared"
    _kb(a, index).sync()
    _kb(b, index).sync()
    assert _kb(a, index).sync(rebuild=True).added == 2
    again = _kb(b, index).sync()
    assert (again.unchanged, again.added, again.chunks_embedded) == (3, 0, 0)
    assert _kb(a, index).sync().unchanged == 2


def test_a_namespace_that_ends_like_another_does_not_drop_its_collections(seeds_copy: Path, tmp_path: Path) -> None:
    a, b = _split(seeds_copy, tmp_path)
    index = tmp_path / "shared"
    _kb(a, index, chroma_namespace="x_abc").sync()
    _kb(b, index, chroma_namespace="abc").sync()
    again = _kb(a, index, chroma_namespace="x_abc").sync()
    assert (again.unchanged, again.chunks_embedded) == (2, 0)


# --- (c) caches are data ------------------------------------------------------------------------------
class _Payload:
    """Unpickling this creates the marker file: what a crafted cache would do with pickle."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (open, (str(self.marker), "w"))


def _pickle_cache(marker: Path) -> bytes:
    """A cache file in the layout the pickle-based format used (header, then the pickle)."""
    import pickle

    data = pickle.dumps(("rev", _Payload(marker)), protocol=5)
    return struct.pack("<8sQQQ", b"ASTCACHE", 5, 0, len(data)) + data


def test_a_crafted_cache_never_runs_and_is_rebuilt(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    kb.sync()
    expected = kb.ask(QUESTION).text
    caches = sorted(index.rglob("retrieval-cache/*.cache"))
    assert {p.name.split(".")[-2] for p in caches} == {"manifest", "corpus"}
    marker = tmp_path / "pwned"
    for p in caches:
        p.write_bytes(_pickle_cache(marker))
    assert _kb(seeds_copy, index).sync().unchanged == 5
    assert _kb(seeds_copy, index).ask(QUESTION).text == expected
    assert not marker.exists()
    for p in caches:
        assert read_cache(p)[1] is not None  # written again, in the data format


def test_a_cache_naming_a_type_that_is_not_a_cache_type_is_a_miss(tmp_path: Path) -> None:
    path = tmp_path / "x.corpus.cache"
    write_cache(path, "r", {"names": ["a"]})
    raw = path.read_bytes()
    head = struct.Struct("<8sQQ32s")
    magic, fmt, n, _ = head.unpack_from(raw)
    doc = json.loads(raw[head.size : head.size + n])
    doc["value"] = {"O": "Popen", "s": {"args": {"F": ["touch", str(tmp_path / "pwned")]}}}
    body = json.dumps(doc).encode()
    path.write_bytes(head.pack(magic, fmt, len(body), hashlib.sha256(body).digest()) + body)
    assert read_cache(path) == ("", None)
    assert not (tmp_path / "pwned").exists()


# --- FIFOs where the assistant keeps files --------------------------------------------------------------
def _in_thread(fn: Callable[[], object], seconds: float = 30) -> object:
    """fn's result or exception; fails the test if it is still running after `seconds`."""
    out: list[object] = []

    def run() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # noqa: BLE001  (handed to the test)
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    return out[0]


def test_a_fifo_as_the_lock_file_is_refused_instead_of_waited_on(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    index.mkdir()
    os.mkfifo(index / ".sync.lock")
    err = _in_thread(lambda: _kb(seeds_copy, index).sync())
    assert isinstance(err, IndexUnavailableError), err
    assert ".sync.lock is a FIFO" in str(err) and "Remove it" in str(err)


def test_fifos_as_current_or_cache_never_block(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    kb.sync()
    kb.prepare()  # saves the retrieval cache
    (cache,) = index.rglob("retrieval-cache/*.corpus.cache")
    cache.unlink()
    os.mkfifo(cache)
    _forget_chroma()
    answer = _in_thread(lambda: _kb(seeds_copy, index).ask(QUESTION))
    assert not isinstance(answer, BaseException) and "12,000" in answer.text  # type: ignore[attr-defined]

    (index / "CURRENT").unlink()
    os.mkfifo(index / "CURRENT")
    err = _in_thread(lambda: _kb(seeds_copy, index).ask(QUESTION))
    assert isinstance(err, IndexUnavailableError) and "CURRENT is a FIFO" in str(err), err
    assert _kb(seeds_copy, index).sync(rebuild=True).added == 5


# --- a full or read-only disk ---------------------------------------------------------------------------
@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 1,000 KB file system (tmpfs): needs root and mount(8), else the test is skipped."""
    if os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("needs root to mount a small file system")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1000k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small file system here ({r.stderr.strip()})")
    try:
        yield mnt
    finally:
        _forget_chroma()
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _ask_in_a_process(docs: Path, index: Path) -> subprocess.CompletedProcess[str]:
    code = ("from assistant import Assistant; "
            f"print(Assistant(docs_dir={str(docs)!r}, index_dir={str(index)!r}, answerer='offline')"
            f".ask({QUESTION!r}).text)")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_a_full_disk_is_named_and_asking_ends_instead_of_hanging(seeds_copy: Path, small_disk: Path) -> None:
    index = small_disk / "index"
    with pytest.raises(IndexUnavailableError) as err:
        _kb(seeds_copy, index).sync()
    message = str(err.value)
    assert f"The disk holding the index {index}" in message and "is full" in message and "Free space" in message
    assert "corrupt" not in message and "--rebuild" not in message
    r = _ask_in_a_process(seeds_copy, index)  # Chroma hung in its first read here
    assert r.returncode != 0 and "is full" in r.stderr, r.stderr[-2000:]

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    _forget_chroma()
    assert _kb(seeds_copy, index).sync().files_total == 5
    assert "12,000" in _kb(seeds_copy, index).ask(QUESTION).text


def test_a_disk_that_fills_during_the_sync_is_named(
    seeds_copy: Path, small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index_mod, "_MIN_FREE", 0, raising=False)  # start anyway, to fail on the full disk half way
    with pytest.raises(IndexUnavailableError, match=r"The disk holding the index .* is full") as err:
        _kb(seeds_copy, small_disk / "index").sync()
    assert "corrupt" not in str(err.value) and "--rebuild" not in str(err.value)


def test_a_read_only_index_is_named(seeds_copy: Path, small_disk: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=8m", str(small_disk)], check=True)
    index = small_disk / "index"
    code = f"from assistant import Assistant; Assistant(docs_dir={str(seeds_copy)!r}, index_dir={str(index)!r}).sync()"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)  # in this process Chroma keeps files open
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for action in ("ask", "sync"):
        kb = _kb(seeds_copy, index)
        with pytest.raises(IndexUnavailableError) as err:
            kb.ask(QUESTION) if action == "ask" else kb.sync()
        message = str(err.value)
        assert "is read-only (its file system is mounted read-only)" in message, message
        assert "corrupt" not in message and "--rebuild" not in message


def test_no_room_is_said_before_anything_is_started(
    seeds_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.statvfs

    def full(path: object) -> os.statvfs_result:
        st = real(path)  # type: ignore[arg-type]
        return os.statvfs_result((st.f_bsize, st.f_frsize, st.f_blocks, 0, 10, st.f_files, st.f_ffree,
                                  st.f_favail, st.f_flag, st.f_namemax))

    monkeypatch.setattr(index_mod.os, "statvfs", full)
    with pytest.raises(IndexUnavailableError, match=r"The disk holding the index .* is full \(.* free\)"):
        _kb(seeds_copy, tmp_path / "index").ask(QUESTION)


# --- what a sync says -------------------------------------------------------------------------------------
def test_files_over_the_size_limit_are_said_to_be_kept_not_an_empty_index(seeds_copy: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    env.update(ASSISTANT_INDEX_DIR=str(tmp_path / "index"), ASSISTANT_DOCS_DIR=str(seeds_copy))

    def cli(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True,
                              env={**env, **extra}, timeout=300)

    assert cli("ingest").returncode == 0
    r = cli("ingest", ASSISTANT_MAX_FILE_BYTES="10")
    assert "over the" in r.stdout and "index is empty" not in r.stdout
    assert "keeps their previous versions" in r.stdout and "answers from them" in r.stdout
    r = cli("ask", QUESTION, ASSISTANT_MAX_FILE_BYTES="10")
    assert r.returncode == 0 and "12,000" in r.stdout  # as the message said


def test_the_data_format_gives_back_what_was_saved(tmp_path: Path) -> None:
    from collections import Counter

    import numpy as np

    value = {
        "strings": ["a", "b\x7fc", "", "ünï", "a"], "empty": [], "ints": list(range(-5, 40)), "big": [2**70] * 20,
        "bools": [True, False] * 10, "floats": [0.5, float("inf")], "nested": [[1, "x"], {"k": (1, 2)}],
        "sets": [set(), {"x", "y"}] * 10, "lists": [["p"], []] * 10, "counter": Counter({"w": 3, "v": 1}),
        "pairs": {("src", "sha"): 2, (1, None): 3}, "scalar": np.float32(1.5), "matrix": np.eye(3, dtype=np.float16),
        "none": None, "frozen": ("t",),
    }
    path = tmp_path / "v.cache"
    write_cache(path, "rev", value)
    raw = path.read_bytes()
    head = struct.Struct("<8sQQ32s")
    _, _, n, digest = head.unpack_from(raw)
    assert hashlib.sha256(raw[head.size : head.size + n]).digest() == digest
    assert json.loads(raw[head.size : head.size + n])["revision"] == "rev"  # data a person can read, not a pickle
    rev, loaded = read_cache(path)
    assert rev == "rev"
    for key in value:
        if key in ("scalar", "matrix"):
            assert np.array_equal(loaded[key], value[key]) and loaded[key].dtype == value[key].dtype
        else:
            assert loaded[key] == value[key] and type(loaded[key]) is type(value[key]), key
    assert [type(x) for x in loaded["sets"][:2]] == [set, set] and type(loaded["counter"]) is Counter


# --- the caches' folder, generations of other folders, crafted caches -------------------------------------
@pytest.mark.server
def test_an_index_folder_used_with_a_chroma_server_is_still_ours_on_disk(
    chroma_server: int, seeds_copy: Path, tmp_path: Path
) -> None:
    index = tmp_path / "index"
    server = _kb(seeds_copy, index, chroma_host="127.0.0.1", chroma_port=chroma_server)
    server.sync()
    server.prepare()  # its caches go to the index folder's retrieval-cache
    assert any((index / "retrieval-cache").iterdir())
    assert _kb(seeds_copy, index).sync().added == 5  # the same folder, on disk: not refused as another program's
    assert "12,000" in _kb(seeds_copy, index).ask(QUESTION).text


def test_a_rebuild_with_a_damaged_current_keeps_the_other_folders_of_a_shared_index(
    seeds_copy: Path, tmp_path: Path
) -> None:
    a, b = _split(seeds_copy, tmp_path)
    index = tmp_path / "shared"
    _kb(a, index).sync()
    _kb(b, index).sync()
    (index / "CURRENT").write_bytes(b"..\n")
    _forget_chroma()
    assert _kb(a, index).sync(rebuild=True).added == 2
    again = _kb(b, index).sync()
    assert (again.unchanged, again.added, again.chunks_embedded) == (3, 0, 0)  # b's index was not deleted
    assert _kb(a, index).sync().unchanged == 2


def test_a_rebuild_never_drops_a_generation_holding_other_folders_collections(
    seeds_copy: Path, tmp_path: Path
) -> None:
    a, b = _split(seeds_copy, tmp_path)
    index, elsewhere = tmp_path / "index", tmp_path / "elsewhere"
    _kb(a, index).sync()
    _kb(b, elsewhere).sync()
    _forget_chroma()
    theirs = _generation(elsewhere)
    moved = index / "gen-0123456789ab"  # a marked generation beside the one in use, holding b's collections
    theirs.rename(moved)
    collections = index_mod._collections_in(moved / "chroma.sqlite3")
    assert collections
    assert _kb(a, index).sync(rebuild=True).added == 2
    assert index_mod._collections_in(moved / "chroma.sqlite3") == collections  # kept, with its database


def test_a_cache_of_only_an_empty_string_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "v.cache"
    write_cache(path, "r", [""])
    assert read_cache(path) == ("r", [""])


def _rewrite_cache(path: Path, change: Callable[[dict[str, object]], None]) -> None:
    """Change a cache's JSON and give it a matching checksum: a crafted cache that decodes cleanly."""
    raw = path.read_bytes()
    head = struct.Struct("<8sQQ32s")
    magic, fmt, n, _ = head.unpack_from(raw)
    doc = json.loads(raw[head.size : head.size + n])
    change(doc)
    body = json.dumps(doc, ensure_ascii=False).encode()
    arrays = raw[head.size + n + -(head.size + n) % 64 :]
    start = head.size + len(body)
    path.write_bytes(head.pack(magic, fmt, len(body), hashlib.sha256(body).digest()) + body
                     + b"\0" * (-start % 64) + arrays)


@pytest.mark.parametrize("attrs", [{"bm25_top": "shadowed"}, {"correct": 1}], ids=["method", "another-method"])
def test_a_cache_setting_attributes_its_class_does_not_keep_is_a_miss(
    seeds_copy: Path, tmp_path: Path, attrs: dict[str, object]
) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    kb.sync()
    kb.prepare()
    (cache,) = index.rglob("retrieval-cache/*.corpus.cache")
    assert read_cache(cache)[1] is not None

    def add(doc: dict[str, object]) -> None:
        value = doc["value"]
        assert isinstance(value, dict) and value["O"] == "Corpus"
        value["s"].update(attrs)

    _rewrite_cache(cache, add)
    assert read_cache(cache) == ("", None)
    _forget_chroma()
    assert "12,000" in _kb(seeds_copy, index).ask(QUESTION).text  # a cache miss, rebuilt: not a TypeError


def test_a_cache_missing_an_attribute_of_its_class_is_a_miss(tmp_path: Path) -> None:
    from assistant.index import StoredChunks

    path = tmp_path / "x.manifest.cache"
    write_cache(path, "r", StoredChunks())
    assert isinstance(read_cache(path)[1], StoredChunks)
    _rewrite_cache(path, lambda doc: doc["value"]["s"].pop("ids_by_sha"))  # type: ignore[index]
    assert read_cache(path) == ("", None)


def test_a_generation_swapped_for_a_link_is_not_followed_when_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "index"
    root.mkdir()
    victim = tmp_path / "victim"  # a folder of someone else's, with files named as Chroma names its own
    (victim / "0123abcd-0123-0123-0123-0123456789ab").mkdir(parents=True)
    (victim / "0123abcd-0123-0123-0123-0123456789ab" / "data.bin").write_bytes(b"theirs")
    (victim / "chroma.sqlite3").write_bytes(b"theirs")
    (victim / ".assistant-generation").write_bytes(b"theirs")
    before = _snapshot(victim)
    gen = root / "gen-0123456789ab"
    gen.symlink_to(victim)  # swapped in after the check that it is a folder
    monkeypatch.setattr(index_mod, "_is_dir", lambda path: True)
    index_mod._drop_generation(root, gen)
    assert _snapshot(victim) == before


def test_a_cache_folder_that_is_a_link_is_not_written_through(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    gen = tmp_path / "index" / "gen-0123456789ab"
    gen.mkdir(parents=True)
    (gen / "retrieval-cache").symlink_to(outside)
    write_cache(gen / "retrieval-cache" / "x.corpus.cache", "r", {"a": 1})
    assert list(outside.iterdir()) == []
    assert "retrieval-cache" in caplog.text and "link" in caplog.text
