"""The Chroma index: opening it (on disk or a server) and syncing a documents folder into it.

The collection itself is the manifest: every chunk carries its article's path and content hash,
so a sync compares the folder against what is stored and embeds only what is new.

An on-disk index folder holds generations: ``CURRENT`` names the folder (``gen-<hex>``) with the Chroma
database in use. ``--rebuild`` builds a new generation beside the working one and switches ``CURRENT`` only
when it is complete, so a failed rebuild loses nothing; other processes notice the switch on their next
question and reopen. Readers never take the writers' lock.

Nothing a folder holds is trusted: CURRENT must name a generation exactly as this assistant writes it, a
folder that holds other programs' files is refused rather than written to, only what this assistant (or
Chroma for it) created is ever deleted, and the caches are data (JSON and raw arrays), never code.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import gc
import hashlib
import importlib
import json
import logging
import mmap
import os
import re
import shutil
import sqlite3
import stat
import struct
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ingest
from .embed import OnnxEmbedder
from .errors import AssistantError, DocumentsError, IndexUnavailableError
from .schema import SyncReport
from .settings import Settings
from .text import split_sentences

log = logging.getLogger(__name__)

_GET_PAGE = 5000
_WRITE_BATCH = 512  # chunks embedded together: long enough for length-sorted batches to pay off
_UPSERT_PAGE = 4000


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


class CollectionGone(IndexUnavailableError):
    """The collection was deleted (by another process's sync with other settings, or a rebuild)."""


# --- what an index folder holds, and what may be deleted there -------------------------------------------
INDEX_MARKER = ".assistant-index"  # in every index folder this assistant uses
GENERATION_MARKER = ".assistant-generation"  # in every generation folder it makes
_GENERATION = re.compile(r"gen-[0-9a-f]{12}")  # exactly the names _new_generation gives
_OUR_COLLECTION = re.compile(r"(?:articles|sentences)_[0-9a-f]{12}(?:_([A-Za-z0-9][A-Za-z0-9_-]*))?")
_REBUILD_TAG = re.compile(r"-rebuild-[0-9a-f]{8}$")
_CHROMA_SEGMENT = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")  # Chroma's folders
_CHROMA_FILES = ("chroma.sqlite3", "chroma.sqlite3-wal", "chroma.sqlite3-shm", "chroma.sqlite3-journal")
_CACHE_DIR = "retrieval-cache"
_CACHE_FILE = re.compile(r".+\.(?:cache|pickle|tmp\d+)")  # caches, their temporary files, the format before 4
_UNCLAIMED = re.compile(r"\.sync\.lock|CURRENT\.tmp\d+")  # what an older version left before the first index
_MIN_FREE = 1 << 20  # with less room than this nothing is started: Chroma fails there, or hangs reading
_LOW_FREE = 64 << 20  # a write that failed with less room than this failed for want of room
_FULL = re.compile(r"disk is full|no space left|os error 28\b|quota exceeded|os error 122\b", re.IGNORECASE)
_READ_ONLY = re.compile(r"readonly database|read-only file system|os error 30\b|permission denied|os error 13\b",
                        re.IGNORECASE)
_KINDS = {stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFDIR: "a folder", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device", stat.S_IFSOCK: "a socket"}


def _not_a_file(path: Path, what: str) -> str:
    return (f"{path} is {what}, not the file the assistant keeps there (something other than the assistant "
            "made it). Remove it and run the command again.")


def _open_regular(path: Path, flags: int = os.O_RDONLY) -> int:
    """A descriptor of path, which must be a regular file: a FIFO would block forever and a link could lead
    anywhere, so either is refused with a message naming it. FileNotFoundError when it is missing."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EISDIR):
            raise IndexUnavailableError(_not_a_file(path, "a symbolic link" if exc.errno == errno.ELOOP
                                                    else "a folder")) from None
        raise
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise IndexUnavailableError(_not_a_file(path, _KINDS.get(kind, "not a regular file")))
    return fd


def _write_new(path: Path, data: bytes) -> None:
    """Create path (it must not exist: never written through a link someone left there) holding data."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _read_small(path: Path, limit: int = 4096) -> bytes | None:
    """The first bytes of a small file the assistant keeps (CURRENT), None when it is missing."""
    try:
        fd = _open_regular(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise IndexUnavailableError(f"Cannot read {path} ({exc.strerror or exc}).") from None
    with os.fdopen(fd, "rb") as fh:
        return fh.read(limit)


def _is_file(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _is_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def storage_problem(path: Path, exc: BaseException | None = None) -> str | None:
    """The disk under path as the cause of a failure (exc) or of one to come (no exc): a read-only folder or
    a full disk, said as such, since rebuilding cannot help there. None when the disk is not the problem.
    Chroma does not always say why a write failed ("Failed to apply logs"), so the disk itself is asked."""
    texts: list[str] = []
    codes: set[int] = set()
    seen = exc
    while seen is not None and len(texts) < 8:
        texts.append(str(seen))
        if isinstance(seen, OSError) and seen.errno:
            codes.add(seen.errno)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(texts)
    where = Path(path)
    while not where.exists() and where.parent != where:
        where = where.parent
    try:
        fs: os.statvfs_result | None = os.statvfs(where)
    except OSError:
        fs = None
    if fs is not None and fs.f_flag & os.ST_RDONLY:
        why = " (its file system is mounted read-only)"
    elif not os.access(where, os.W_OK):
        why = " (you have no permission to write there)"
    elif codes & {errno.EROFS, errno.EACCES, errno.EPERM} or _READ_ONLY.search(text):
        why = ""
    else:
        why = None
    if why is not None:
        return (f"The index folder {path} is read-only{why}: the assistant writes there to open the index and "
                "to sync it. Make it writable, or point --index (ASSISTANT_INDEX_DIR) at a folder you can "
                "write to.")
    free = fs.f_bavail * fs.f_frsize if fs is not None and fs.f_blocks else None
    low = _LOW_FREE if exc is not None else _MIN_FREE
    if codes & {errno.ENOSPC, errno.EDQUOT} or _FULL.search(text) or (free is not None and free < low):
        room = f" ({_size(free)} free)" if free is not None else ""
        return (f"The disk holding the index {path} is full{room}. Free space on it, or point --index "
                "(ASSISTANT_INDEX_DIR) at a folder on a disk with room, and run the command again (a rebuild "
                "would need more room, not less).")
    return None


def _writable_dir(path: Path) -> Path:
    """Create path if needed; a folder that cannot be made says which setting to change."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise IndexUnavailableError(
            f"Cannot create the index folder {path} ({exc.strerror or exc}). Set ASSISTANT_INDEX_DIR "
            "(or --index) to a folder you can write to."
        ) from None
    return path


def _namespace_of(name: str) -> str | None:
    """The folder namespace of one of this assistant's collection names ("" for the unnamespaced ones of
    older versions); None for a name this assistant does not give."""
    m = _OUR_COLLECTION.fullmatch(_REBUILD_TAG.sub("", name))
    return None if m is None else (m.group(1) or "")


def _not_this_folders(names: list[str], namespace: str) -> list[str]:
    """The collections of other documents folders (or other programs) among names."""
    return [n for n in names if _namespace_of(n) not in ("", namespace)]


def _collections_in(db: Path) -> list[str] | None:
    """The collection names in a Chroma database, read without Chroma (which would migrate a database that
    is not its own) and without changing it; None when there is no database there that can be read."""
    if not _is_file(db):
        return None
    try:
        uri = f"{db.resolve().as_uri()}?mode=ro&immutable=1"
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as con:
            return [str(row[0]) for row in con.execute("SELECT name FROM collections")]
    except (sqlite3.Error, OSError, ValueError):
        return None


def _old_layout(root: Path) -> bool:
    """Whether root is an index made before generations: Chroma's files in root itself, with our collections."""
    if not _is_file(root / "chroma.sqlite3"):
        return False
    if _is_file(root / INDEX_MARKER):
        return True
    return any(_namespace_of(n) is not None for n in _collections_in(root / "chroma.sqlite3") or [])


def _only_caches(folder: Path) -> bool:
    """Whether folder is a real folder (not a link) holding nothing but the assistant's cache files: the
    retrieval-cache a Chroma-server setup keeps in the index folder, with no marker beside it."""
    if not _is_dir(folder):
        return False
    try:
        return all(_CACHE_FILE.fullmatch(e.name) and not e.is_dir(follow_symlinks=False) for e in os.scandir(folder))
    except OSError:
        return False


def _foreign_files(root: Path) -> list[str]:
    """What root holds that shows it is not an index folder of this assistant: empty when it is one (or
    new, or empty)."""
    try:
        entries = list(os.scandir(root))
    except OSError:  # missing (it will be made) or unreadable (making it says why)
        return []
    names = sorted(e.name for e in entries if not _UNCLAIMED.fullmatch(e.name)
                   and not (e.name == _CACHE_DIR and _only_caches(Path(e.path))))
    if not names or _is_file(root / INDEX_MARKER) or _old_layout(root):
        return []
    with contextlib.suppress(AssistantError):
        if _GENERATION.fullmatch((_read_small(root / "CURRENT", 256) or b"").decode("ascii", "replace").strip()):
            return []  # an index made before the markers existed (its generation may be gone)
    for e in entries:  # generations made before the markers existed
        gen = Path(e.path)
        if _GENERATION.fullmatch(e.name) and _is_dir(gen) and (
            _is_file(gen / GENERATION_MARKER) or _is_file(gen / "chroma.sqlite3")
        ):
            return []
    return names


def claim_index_dir(settings: Settings) -> Path:
    """The on-disk index folder, made (or checked) before anything is written there: a new or empty folder
    becomes an index folder of this assistant (marked with INDEX_MARKER), one it made before is used, and one
    that holds anything else is refused, so no other program's files are ever written among or deleted."""
    root = settings.resolved_index_dir()
    foreign = _foreign_files(root)
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise IndexUnavailableError(
            f"{root} is not an index folder of this assistant: it already holds other files ({shown}), which "
            "the assistant will neither write among nor delete. Point --index (ASSISTANT_INDEX_DIR) at a new "
            "or empty folder, or at an index folder the assistant made."
        )
    _writable_dir(root)
    if not os.path.lexists(root / INDEX_MARKER):
        with contextlib.suppress(OSError):  # a read-only folder is refused, saying so, by open_client
            _write_new(root / INDEX_MARKER, b"An index folder of the assistant: rebuilt from the articles when "
                       b"deleted (assistant ingest). It deletes nothing here that it did not write.\n")
    return root


def generation_dir(root: Path, name: str | bytes) -> Path:
    """The generation folder a CURRENT file names, strictly inside root: only the exact names the assistant
    gives (gen-<12 hex digits>) are accepted, so CURRENT can never lead to '..', '/' or anywhere else."""
    text = (name.decode("ascii", "replace") if isinstance(name, bytes) else name).strip()
    if not _GENERATION.fullmatch(text):
        raise IndexUnavailableError(
            f"{root / 'CURRENT'} does not name an index generation (it should hold one line like "
            f"gen-0123456789ab; it holds {text[:40]!r}). Run assistant ingest --rebuild: it builds the index "
            "again and writes a new CURRENT."
        )
    return root / text


def current_generation(settings: Settings) -> Path | None:
    """The folder of the on-disk index in use: the one CURRENT names, the index folder itself for an index
    made before generations existed, or None when there is no index yet."""
    root = settings.resolved_index_dir()
    name = _read_small(root / "CURRENT", 256)
    if name is not None:
        gen = generation_dir(root, name)
        if _is_dir(gen):
            return gen
    if _old_layout(root):
        return root
    return None


def _set_current(root: Path, gen: Path) -> None:
    tmp = root / f"CURRENT.tmp{os.getpid()}"
    tmp.unlink(missing_ok=True)
    _write_new(tmp, f"{gen.name}\n".encode())
    os.replace(tmp, root / "CURRENT")


def _new_generation(root: Path) -> Path:
    gen = root / f"gen-{uuid.uuid4().hex[:12]}"
    try:
        gen.mkdir()
        _write_new(gen / GENERATION_MARKER, b"A generation of the assistant's index (see CURRENT beside it).\n")
    except OSError as exc:
        raise IndexUnavailableError(
            storage_problem(root, exc) or f"Cannot create {gen} ({exc.strerror or exc}). Set "
            "ASSISTANT_INDEX_DIR (or --index) to a folder you can write to."
        ) from None
    return gen


def _drop_generation(root: Path, gen: Path) -> None:
    """Delete an index generation that is no longer in use: only what the assistant and Chroma wrote there
    (Chroma's database and segment folders, the caches, the marker), then the folder if nothing else is
    left in it. For an index made before generations, gen is root itself, and root stays."""
    if gen != root and (gen.parent != root or not _GENERATION.fullmatch(gen.name)):
        raise ValueError(f"{gen} is not a generation of the index {root}")
    try:  # the folder itself, never a link put in its place: everything below is deleted relative to it
        fd = os.open(gen, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | (os.O_NOFOLLOW if gen != root else 0))
    except OSError as exc:
        if exc.errno == errno.ELOOP or exc.errno == errno.ENOTDIR:
            log.warning("kept %s: it is not a folder the assistant made (a link or a file)", gen)
        return
    try:
        _drop_in(fd, gen)
        if gen != root:
            try:
                gen.rmdir()
            except OSError:
                left = ", ".join(sorted(os.listdir(fd))[:3])
                log.warning("kept %s: it holds files the assistant did not write (%s)", gen, left)
    finally:
        os.close(fd)


def _drop_in(fd: int, gen: Path) -> None:
    """Delete what the assistant and Chroma wrote in the generation folder open as fd (see _drop_generation)."""
    with os.scandir(fd) as entries:
        names = [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]
    for name, is_dir in names:
        try:
            if name in (*_CHROMA_FILES, GENERATION_MARKER) and not is_dir:
                os.unlink(name, dir_fd=fd)
            elif _CHROMA_SEGMENT.fullmatch(name) and is_dir:
                shutil.rmtree(name, dir_fd=fd)  # follows no link (nor one swapped in while it runs)
            elif name == _CACHE_DIR and is_dir:
                sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=fd)
                try:
                    with os.scandir(sub) as caches:
                        for cache in [c.name for c in caches if not c.is_dir(follow_symlinks=False)]:
                            if _CACHE_FILE.fullmatch(cache):
                                os.unlink(cache, dir_fd=sub)
                finally:
                    os.close(sub)
                os.rmdir(name, dir_fd=fd)
        except OSError as exc:
            log.warning("could not delete %s (%s)", gen / name, exc)


def _forget_client(path: Path) -> None:
    """Make the next PersistentClient for path load the database again. Chroma keeps one system per path
    in a process, whose vector index does not see other processes' writes; clients made before keep
    working on the old one."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient._identifier_to_system.pop(str(path), None)
    SharedSystemClient._identifier_to_refcount.pop(str(path), None)


def open_client(settings: Settings, path: Path | None = None) -> Any:
    """A Chroma client: HTTP when chroma_host is set, otherwise persistent on disk at path."""
    import chromadb

    if settings.chroma_host:
        try:
            client = chromadb.HttpClient(
                host=settings.chroma_host, port=settings.chroma_port, settings=_chroma_settings()
            )
            client.heartbeat()
        except Exception as exc:
            raise IndexUnavailableError(
                f"Cannot reach the Chroma server at {settings.chroma_host}:{settings.chroma_port} "
                f"({type(exc).__name__}: {exc}). Start it (chroma run --host {settings.chroma_host} "
                f"--port {settings.chroma_port} --path DIR) or unset ASSISTANT_CHROMA_HOST to use "
                "the on-disk index."
            ) from None
        return client
    assert path is not None
    _writable_dir(path)
    problem = storage_problem(path)  # on a full disk Chroma can hang in its first read: say so before
    if problem:
        raise IndexUnavailableError(problem)
    try:
        client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        client.list_collections()
    except Exception as exc:
        raise IndexUnavailableError(
            storage_problem(path, exc) or f"The index at {path} cannot be opened ({type(exc).__name__}: {exc}). "
            "It may be corrupted. Rebuild it from the articles with: assistant ingest --rebuild "
            "(the damaged copy is kept until the new one is complete)."
        ) from None
    return client


_held: dict[str, int] = {}
_held_lock = threading.Lock()
_path_locks: dict[str, threading.RLock] = {}


@contextlib.contextmanager
def sync_lock(settings: Settings) -> Iterator[None]:
    """Serialise syncs of one on-disk index across processes (and threads); re-entrant in a thread.
    Only writers take it: asking never waits for a sync."""
    if settings.chroma_host:
        yield
        return
    root = claim_index_dir(settings)
    key = str(root.resolve())
    with _held_lock:
        rlock = _path_locks.setdefault(key, threading.RLock())
    with rlock:
        if _held.get(key):
            _held[key] += 1
            try:
                yield
            finally:
                _held[key] -= 1
            return
        try:
            fd = _open_regular(root / ".sync.lock", os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise IndexUnavailableError(
                storage_problem(root, exc) or f"Cannot write the lock file in {root} ({exc.strerror}). Set "
                "ASSISTANT_INDEX_DIR to a folder you can write to."
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            _held[key] = 1
            try:
                yield
            finally:
                _held[key] = 0
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


# --- caches: data only ---------------------------------------------------------------------------------
# A cache file is a header, JSON for the structure and raw NumPy arrays, aligned, that read_cache maps from
# the file. Decoding builds only plain data, NumPy arrays of numbers and the classes named in _CACHE_TYPES
# (their attributes set from the data), so a cache from a copied or shared index folder can never run code.
_CACHE_FORMAT = 6  # 6: data only; 5 and before were pickles, which are never read again
_CACHE_MAGIC = b"ASTCACHE"
_CACHE_HEAD = struct.Struct("<8sQQ32s")  # magic, format, length of the JSON, its SHA-256
_ALIGN = 64
_CACHE_TYPES = {  # name in the file: (module, class); nothing else is ever made from a cache
    "StoredChunks": ("assistant.index", "StoredChunks"),
    "Corpus": ("assistant.retrieve", "Corpus"),
    "ChunkTable": ("assistant.retrieve", "ChunkTable"),
    "Strings": ("assistant.retrieve", "Strings"),
    "Sentences": ("assistant.retrieve", "Sentences"),
    "BM25": ("bm25s", "BM25"),
}
_PLAIN = (str, int, float, bool, type(None))
_SEP = "\x7f"  # joins the cache's strings into one JSON string (JSON leaves it unescaped; text never holds it)


def _cache_type(name: str) -> type[Any]:
    module, attr = _CACHE_TYPES[name]
    cls = getattr(importlib.import_module(module), attr)
    assert isinstance(cls, type)
    return cls


@functools.cache
def _cache_attributes(name: str) -> frozenset[str]:
    """The attributes a cached object of this type has: those its class's own state holds (a new instance's;
    a BM25 index's once it has indexed something). A cache that sets any other (a string in place of a
    method) or leaves one out is not one this assistant wrote."""
    if name == "BM25":
        from .retrieve import _bm25_index  # the one place that builds a BM25 index, and quiets bm25s's logger

        sample = _bm25_index([["a"]])
    else:
        sample = _cache_type(name)()
    return frozenset(sample.__getstate__())


class _Encoder:
    """A value as JSON-ready data, its NumPy arrays set aside (see _decode for the tags). The strings of
    lists of strings (a dict's keys included) are kept once each, in one table, and the lists as arrays of
    their numbers; lists of integers are arrays too: loading 100k strings from one string is several times
    faster than from 100k JSON strings, and a term kept in several structures is one string again."""

    def __init__(self) -> None:
        self.arrays: list[Any] = []
        self.strings: dict[str, int] = {}
        self._names = {_cache_type(name): name for name in _CACHE_TYPES}

    def _array(self, a: Any) -> int:
        self.arrays.append(a)
        return len(self.arrays) - 1

    def _list(self, items: list[Any]) -> Any:
        import numpy as np

        if items and all(type(x) is str and _SEP not in x for x in items):
            numbers = [self.strings.setdefault(x, len(self.strings)) for x in items]
            return {"J": self._array(np.array(numbers, dtype=np.int64))}
        if len(items) > 16 and all(type(x) is int for x in items):
            with contextlib.suppress(OverflowError):
                return {"I": self._array(np.array(items, dtype=np.int64))}
        if all(isinstance(x, _PLAIN) for x in items):
            return {"F": items}
        for kind, tag in ((set, "GS"), (list, "GL")):  # many small sets or lists of strings: one list
            if len(items) > 16 and all(type(x) is kind and all(type(y) is str for y in x) for x in items):
                return {tag: [self._list([y for x in items for y in x]), self._list([len(x) for x in items])]}
        return [self(x) for x in items]

    def __call__(self, v: Any) -> Any:
        import numpy as np

        if isinstance(v, _PLAIN):
            return v
        if isinstance(v, list):
            return self._list(v)
        if isinstance(v, tuple):
            return {"T": self._list(list(v))}
        if isinstance(v, set | frozenset):
            return {"S": self._list(list(v))}
        if type(v) in (dict, Counter):
            tag = "C" if isinstance(v, Counter) else "D"
            return {tag: {"k": self._list(list(v)), "v": self._list(list(v.values()))}}
        if isinstance(v, np.ndarray | np.generic):
            a = np.asarray(v)
            if a.dtype.kind not in "biuf":
                raise TypeError(f"cannot cache an array of {a.dtype}")
            a = a if a.flags.c_contiguous else a.copy(order="C")  # (np.ascontiguousarray makes a number 1-d)
            return {"A" if isinstance(v, np.ndarray) else "N": self._array(a)}
        name = self._names.get(type(v))
        if name is None:
            raise TypeError(f"cannot cache a {type(v).__name__}")
        state = v.__getstate__()
        if not isinstance(state, dict):
            raise TypeError(f"cannot cache a {type(v).__name__} (its state is not a dict)")
        return {"O": name, "s": {k: self(x) for k, x in state.items()}}


def _decode(v: Any, arrays: list[Any], strings: list[str]) -> Any:
    """The value _Encoder wrote. A list holds values; {"J": i} is a list of strings (their numbers in the
    string table are array i), {"I": i}
    a list of integers (array i), {"F": list} a list of plain values, {"GS"/"GL": [all, sizes]} a list of sets
    or lists of strings, {"T": list} a tuple, {"S": list} a set,
    {"D"/"C": {"k": keys, "v": values}} a dict or Counter, {"A": i} array i, {"N": i} its one number, and
    {"O": name, "s": attributes} an object of one of the _CACHE_TYPES, with exactly the attributes its class
    keeps (_cache_attributes). Anything else is an error."""
    if isinstance(v, _PLAIN):
        return v
    if isinstance(v, list):
        return [_decode(x, arrays, strings) for x in v]
    if not isinstance(v, dict) or not v:
        raise ValueError("not a cache value")
    tag, body = next(iter(v.items()))
    if len(v) != (2 if tag == "O" else 1):
        raise ValueError("not a cache value")
    if tag == "F" and isinstance(body, list) and all(isinstance(x, _PLAIN) for x in body):
        return body
    if tag in ("J", "I", "A", "N") and type(body) is int and 0 <= body < len(arrays):
        a = arrays[body]
        if tag in ("J", "I"):
            if a.ndim != 1 or a.dtype.kind not in "iu":
                raise ValueError("not a list of integers")
            return a.tolist() if tag == "I" else list(map(strings.__getitem__, a.tolist()))
        return a if tag == "A" else a[()]
    if tag in ("GS", "GL") and isinstance(body, list) and len(body) == 2:
        flat, sizes = _decode(body[0], arrays, strings), _decode(body[1], arrays, strings)
        if (not isinstance(flat, list) or not isinstance(sizes, list) or not all(type(n) is int and n >= 0
                                                                                 for n in sizes)
                or sum(sizes) != len(flat)):
            raise ValueError("not a cache group")
        make = set if tag == "GS" else list
        out, at = [], 0
        for n in sizes:
            out.append(make(flat[at : at + n]))
            at += n
        return out
    if tag in ("T", "S"):
        items = _decode(body, arrays, strings)
        if not isinstance(items, list):
            raise ValueError("not a cache tuple or set")
        return tuple(items) if tag == "T" else set(items)
    if tag in ("D", "C") and isinstance(body, dict) and set(body) == {"k", "v"}:
        keys, values = _decode(body["k"], arrays, strings), _decode(body["v"], arrays, strings)
        if not isinstance(keys, list) or not isinstance(values, list) or len(keys) != len(values):
            raise ValueError("not a cache dict")
        return Counter(dict(zip(keys, values))) if tag == "C" else dict(zip(keys, values))
    if tag == "O" and isinstance(v.get("s"), dict) and body in _CACHE_TYPES:
        if set(v["s"]) != _cache_attributes(body):
            raise ValueError(f"not the attributes of a {body}")
        state = {k: _decode(x, arrays, strings) for k, x in v["s"].items()}
        cls = _cache_type(body)
        obj = object.__new__(cls)
        setstate = getattr(obj, "__setstate__", None)
        if setstate is not None:
            setstate(state)
        else:
            obj.__dict__.update(state)
        return obj
    raise ValueError(f"not a cache value (tag {str(tag)[:10]!r})")


def read_cache(path: Path) -> tuple[str, Any]:
    """(revision, value) as write_cache stored them at path, or ("", None) if missing, damaged or foreign:
    a cache that cannot be read is built again, never trusted, and never runs anything.

    The arrays in the value are mapped from the file, not read: a new process pays only for the pages it
    touches (a question touches a few rows of the sentence vectors). The file is replaced, never rewritten,
    so a mapping stays valid while another process saves a newer state."""
    import numpy as np

    try:
        fd = _open_regular(path)
    except FileNotFoundError:
        return "", None
    except (OSError, IndexUnavailableError) as exc:
        log.warning("ignoring the cache %s (%s): rebuilding it from the index", path, exc)
        return "", None
    try:
        with os.fdopen(fd, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        magic, fmt, json_len, digest = _CACHE_HEAD.unpack_from(mm, 0)
        if magic != _CACHE_MAGIC or fmt != _CACHE_FORMAT:
            log.info("ignoring the cache %s (another format): rebuilding it from the index", path)
            return "", None
        start = _CACHE_HEAD.size
        if start + json_len > len(mm):
            raise ValueError("the file is shorter than its header says")
        data = mm[start : start + json_len]
        if hashlib.sha256(data).digest() != digest:
            raise ValueError("its checksum does not match")
        doc = json.loads(data.decode("utf-8", "surrogatepass"))
        view = memoryview(mm)
        base = start + json_len + -(start + json_len) % _ALIGN
        arrays = []
        for dtype, shape, rel, size in doc["arrays"]:
            dt = np.dtype(str(dtype))
            if (dt.kind not in "biuf" or dt.hasobject or not all(type(n) is int and n >= 0 for n in shape)
                    or type(rel) is not int or rel < 0 or type(size) is not int
                    or size != int(np.prod(shape, dtype=np.int64)) * dt.itemsize):
                raise ValueError("an array's description is not valid")
            offset = base + rel
            if offset + size > len(mm):
                raise ValueError("the file is shorter than its header says")
            arrays.append(np.frombuffer(view, dtype=dt, count=size // dt.itemsize, offset=offset).reshape(shape)
                          if size else np.zeros(shape, dtype=dt))
        rev = doc["revision"]
        if not isinstance(rev, str):
            raise ValueError("no revision")
        strings = doc["strings"].split(_SEP)  # one "" is a table of one empty string (and unused for none)
        collecting = gc.isenabled()
        gc.disable()  # hundreds of thousands of new objects, none of them garbage: don't look for cycles
        try:
            return rev, _decode(doc["value"], arrays, strings)
        finally:
            if collecting:
                gc.enable()
    except Exception as exc:  # a damaged cache is rebuilt from the index, never trusted
        log.warning("ignoring the cache %s (%s): rebuilding it from the index", path, exc)
    return "", None


def write_cache(path: Path, revision: str, value: Any) -> None:
    """Save derived state atomically; failure only costs the next process a rebuild.

    Layout: a header, JSON of the revision, the value with its NumPy arrays left out and the arrays' types,
    shapes and places, then each array's bytes, aligned, so read_cache can map them."""
    import numpy as np

    tmp = path.with_suffix(f".tmp{os.getpid()}").name
    folder: int | None = None
    try:
        encode = _Encoder()
        tree = encode(value)
        meta: list[list[Any]] = []
        offset = 0  # from the start of the arrays, the first aligned byte after the JSON
        for a in encode.arrays:
            offset += -offset % _ALIGN
            meta.append([a.dtype.str, list(a.shape), offset, a.nbytes])
            offset += a.nbytes
        body = json.dumps({"revision": revision, "arrays": meta, "strings": _SEP.join(encode.strings), "value": tree},
                          ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # written in the folder itself, never through a link left in its place (it could lead anywhere)
            folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise OSError(exc.errno, f"{path.parent} is a link, not the folder the assistant made: remove "
                                         "it to keep the cache there") from None
            raise
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=folder)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644, dir_fd=folder)
        with os.fdopen(fd, "wb") as fh:
            fh.write(_CACHE_HEAD.pack(_CACHE_MAGIC, _CACHE_FORMAT, len(body), hashlib.sha256(body).digest()))
            fh.write(body)
            base = fh.tell() + -fh.tell() % _ALIGN
            for (_, _, off, _), a in zip(meta, encode.arrays):
                fh.write(b"\0" * (base + off - fh.tell()))
                fh.write(a.reshape(-1).view(np.uint8))
        os.replace(tmp, path.name, src_dir_fd=folder, dst_dir_fd=folder)
        with contextlib.suppress(FileNotFoundError):  # the format before 4: a plain pickle
            os.unlink(path.with_suffix(".pickle").name, dir_fd=folder)
    except (OSError, TypeError, ValueError) as exc:
        log.warning("could not save the cache %s (%s); the next process will rebuild it", path, exc)
        if folder is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=folder)
    finally:
        if folder is not None:
            os.close(folder)


def _chunk_id(source: str, file_sha: str, index: int) -> str:
    return f"{file_sha[:16]}-{hashlib.sha1(source.encode()).hexdigest()[:10]}-{index}"


def _text_sha(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


@dataclass
class StoredChunks:
    """What the collection holds, grouped by article (plain dicts, so it can be cached on disk)."""

    ids_by_source: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    n_expected: dict[tuple[str, str], int] = field(default_factory=dict)
    ids_by_sha: dict[str, list[str]] = field(default_factory=dict)

    def add(self, cid: str, source: str, sha: str, n_chunks: int) -> None:
        self.ids_by_source.setdefault(source, {}).setdefault(sha, []).append(cid)
        self.n_expected[(source, sha)] = n_chunks
        self.ids_by_sha.setdefault(sha, []).append(cid)

    def complete(self, source: str, sha: str) -> bool:
        versions = self.ids_by_source.get(source, {})
        if set(versions) != {sha}:
            return False
        return len(versions[sha]) == self.n_expected.get((source, sha), -1)


def get_all(collection: Any, include: list[str]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    """Page through a whole collection: (id, metadata, document-or-None)."""
    total = collection.count()
    for offset in range(0, total, _GET_PAGE):
        page = collection.get(include=include, limit=_GET_PAGE, offset=offset)
        docs = page.get("documents") or [None] * len(page["ids"])
        yield from zip(page["ids"], page["metadatas"], docs)


def get_sentences(collection: Any, sources: list[str] | None = None) -> tuple[list[dict[str, Any]], Any]:
    """Metadata and vectors (float16 matrix) of the stored sentences, all or those of some articles."""
    import numpy as np

    metas: list[dict[str, Any]] = []
    vecs: list[Any] = []
    if sources is None:
        total = collection.count()
        for offset in range(0, total, _GET_PAGE):
            page = collection.get(include=["metadatas", "embeddings"], limit=_GET_PAGE, offset=offset)
            if page["ids"]:
                metas.extend(page["metadatas"])
                vecs.append(np.asarray(page["embeddings"], dtype=np.float16).reshape(len(page["ids"]), -1))
    else:
        for b in range(0, len(sources), 100):
            page = collection.get(where={"source": {"$in": sources[b : b + 100]}},
                                  include=["metadatas", "embeddings"])
            if page["ids"]:
                metas.extend(page["metadatas"])
                vecs.append(np.asarray(page["embeddings"], dtype=np.float16).reshape(len(page["ids"]), -1))
    return metas, (np.concatenate(vecs) if vecs else np.zeros((0, 0), dtype=np.float16))


class Index:
    """The chunk and sentence collections of one documents folder, named after the settings that shape them."""

    def __init__(self, settings: Settings, embedder: OnnxEmbedder, path: Path | None = None,
                 names: tuple[str, str] | None = None) -> None:
        self.settings = settings
        self.embedder = embedder
        self._dirty = False
        self.names = names or (settings.collection_name(), settings.sentence_collection_name())
        self.path: Path | None = None  # the on-disk generation (None with a Chroma server)
        if not settings.chroma_host:
            if path is None:
                claim_index_dir(settings)
            self.path = path or current_generation(settings)
            if self.path is None:  # no index yet: make the first generation (once, under the writers' lock)
                with sync_lock(settings):
                    self.path = current_generation(settings)
                    if self.path is None:
                        root = settings.resolved_index_dir()
                        self.path = _new_generation(root)
                        self._open()
                        _set_current(root, self.path)  # named only once its collections exist
                        return
        self._open()

    def _open(self) -> None:
        self.client = open_client(self.settings, self.path)
        self.collection = self._open_collection(self.names[0])
        # sentences are read back whole, never searched by vector: the cheapest graph Chroma builds will do
        self.sentences = self._open_collection(self.names[1], {"hnsw:construction_ef": 4, "hnsw:M": 4})

    def reopen(self) -> None:
        """Load the collections again, seeing every other process's writes (on disk Chroma keeps a
        process's own view of the vector index until it is reopened)."""
        if self.path is not None:
            _forget_client(self.path)
        self._open()

    def moved(self) -> bool:
        """True when another process switched the on-disk index to a new generation (a rebuild)."""
        return self.path is not None and current_generation(self.settings) != self.path

    def _open_collection(self, name: str, hnsw: dict[str, int] | None = None) -> Any:
        settings = self.settings
        last: Exception | None = None
        for _ in range(3):  # two processes creating it at once: the loser finds the winner's
            try:
                return self.client.get_or_create_collection(
                    name=name,
                    metadata={"hnsw:space": "cosine", "embed_model": settings.embed_model, **(hnsw or {})},
                    embedding_function=None,
                )
            except Exception as exc:
                last = exc
                time.sleep(0.05)
        raise IndexUnavailableError(
            (storage_problem(self.path, last) if self.path is not None else None)
            or f"Cannot open the collection {name} ({last}). Rebuild the index: assistant ingest --rebuild."
        ) from None

    def count(self) -> int:
        return int(self.collection.count())

    def empty(self) -> bool:
        """Whether no chunk is stored (one row read: count() scans the collection, 0.26 s at 100k chunks)."""
        return not self.collection.get(limit=1, include=[])["ids"]

    def _metadata(self) -> dict[str, Any]:
        """The collection's current metadata as stored (not the copy read when it was opened)."""
        try:
            return dict(self.client.get_collection(self.names[0]).metadata or {})
        except Exception as exc:
            if "does not exist" in str(exc) or type(exc).__name__ == "NotFoundError":
                raise CollectionGone(
                    f"The collection {self.names[0]} was removed (another process synced with other settings, "
                    "or rebuilt the index)."
                ) from None
            raise

    def revision(self) -> str:
        """A token that changes whenever a sync writes to the collection (kept in its metadata, so it is
        shared by every process and machine using the same Chroma)."""
        return str(self._metadata().get("revision", ""))

    def complete_revision(self) -> str:
        """The revision the last finished sync left: what readers answer from while a sync runs."""
        meta = self._metadata()
        return str(meta.get("complete", meta.get("revision", "")))

    def ensure_revision(self) -> str:
        """The complete revision, giving the collection one first if it has none (built by an older version)."""
        revision = self.complete_revision()
        if not revision:
            with sync_lock(self.settings):
                if not self.complete_revision():
                    self._bump_revision(complete=True)
                revision = self.complete_revision()
        return revision

    def _bump_revision(self, complete: bool, meta: dict[str, Any] | None = None) -> str:
        """A new revision (and, if complete, the new complete one); returns it. meta: the metadata just read."""
        meta = {k: v for k, v in (meta if meta is not None else self._metadata()).items() if not k.startswith("hnsw:")}
        meta["revision"] = uuid.uuid4().hex
        if complete:
            meta["complete"] = meta["revision"]
        self.collection.modify(metadata=meta)
        return str(meta["revision"])

    def _mark_dirty(self) -> None:
        """Before the first write of a sync: a new revision, so that no cache made before it is trusted,
        even if this sync is killed half way (readers keep answering from the complete one)."""
        if not self._dirty:
            self._bump_revision(complete=False)
            self._dirty = True

    def ids(self) -> set[str]:
        """Every chunk id in the collection."""
        out: set[str] = set()
        total = self.collection.count()
        for offset in range(0, total, _GET_PAGE):
            out.update(self.collection.get(include=[], limit=_GET_PAGE, offset=offset)["ids"])
        return out

    def get(self, ids: list[str]) -> Iterator[tuple[str, dict[str, Any], Any]]:
        """(id, metadata, document) of the given chunks."""
        for b in range(0, len(ids), _GET_PAGE):
            page = self.collection.get(ids=ids[b : b + _GET_PAGE], include=["metadatas", "documents"])
            yield from zip(page["ids"], page["metadatas"], page["documents"])

    def _drop_stale_collections(self) -> None:
        """Drop this folder's collections built with other settings (its namespace, another fingerprint);
        other folders' and other programs' collections in the same Chroma are left alone. Unnamespaced ones
        of older versions go too, unless other folders share this Chroma (whose they are cannot be told)."""
        keep = set(self.names) | {self.settings.collection_name(), self.settings.sentence_collection_name()}
        ns = self.settings.namespace()
        names = [col if isinstance(col, str) else col.name for col in self.client.list_collections()]
        shared = bool(_not_this_folders(names, ns))
        for name in names:
            if name in keep or "-rebuild-" in name:
                continue
            owner = _namespace_of(name)
            if owner == ns or (owner == "" and not shared):
                log.info("dropping collection %s built with other settings", name)
                with contextlib.suppress(Exception):  # another process may have dropped it first
                    self.client.delete_collection(name)

    def cache_path(self, kind: str) -> Path:
        """Where derived state of this collection (manifest, retrieval state) is cached on this machine:
        inside the generation for an on-disk index, so it goes with it."""
        s = self.settings
        if self.path is not None:
            return self.path / "retrieval-cache" / f"{self.names[0]}.{kind}.cache"
        where = f"-{s.chroma_host}-{s.chroma_port}"
        return s.resolved_index_dir() / "retrieval-cache" / f"{self.names[0]}{where}.{kind}.cache"

    def stored(self) -> StoredChunks:
        """What the collection holds: from the cached manifest when the revision matches, else read."""
        revision = self.revision()
        rev, cached = read_cache(self.cache_path("manifest"))
        if revision and rev == revision and isinstance(cached, StoredChunks):
            return cached
        st = self._read_stored()
        if revision:
            write_cache(self.cache_path("manifest"), revision, st)
        return st

    def _read_stored(self) -> StoredChunks:
        st = StoredChunks()
        for cid, meta, _ in get_all(self.collection, ["metadatas"]):
            st.add(cid, str(meta["source"]), str(meta["file_sha"]), int(meta["n_chunks"]))
        return st

    def _reusable_vectors(self, ids: list[str]) -> dict[str, list[float]]:
        """Stored vectors keyed by the sha of their chunk text."""
        out: dict[str, list[float]] = {}
        for b in range(0, len(ids), _GET_PAGE):
            got = self.collection.get(ids=ids[b : b + _GET_PAGE], include=["embeddings", "metadatas"])
            for meta, emb in zip(got["metadatas"], got["embeddings"]):
                out[str(meta["text_sha"])] = list(emb)
        return out

    def sync(self, docs_dir: Path | None = None) -> SyncReport:
        """Bring the collection in line with the documents folder."""
        t0 = time.perf_counter()
        docs_dir = Path(docs_dir or self.settings.docs_dir)
        report = SyncReport()
        with sync_lock(self.settings):
            self._drop_stale_collections()
            found = ingest.discover(docs_dir, self.settings.follow_external_links)
            report.skipped.extend(found.skipped)
            for note in found.skipped:
                log.info("%s", note)
            docs: list[ingest.Document] = []
            present: set[str] = set()
            for path in found.paths:
                present.add(path.relative_to(docs_dir).as_posix())
                try:
                    docs.append(ingest.load(path, docs_dir, self.settings.max_file_bytes,
                                            self.settings.follow_external_links))
                except DocumentsError as exc:
                    log.info("%s", exc)  # in the report: the caller says it once
                    report.skipped.append(str(exc))
            stored = self.stored()
            if not docs:  # an emptied folder empties the index: deleted articles are never cited again
                kept = sum(1 for s in stored.ids_by_source if s in present)
                log.info("no readable .txt/.md articles in %s: %s", docs_dir,
                            f"the index keeps the previous versions of the {kept} it could not read this time"
                            if kept else "the index will hold none")
            self._dirty = False
            # Sources we could not read this time keep their previous chunks: nothing is lost.
            gone = [s for s in stored.ids_by_source if s not in present and not found.unseen(s)]
            gone_shas = {sha for s in gone for sha in stored.ids_by_source[s]}
            pending: list[_Pending] = []
            refused = 0
            for doc in docs:
                if stored.complete(doc.source, doc.sha256):
                    report.unchanged += 1
                    continue
                old_versions = stored.ids_by_source.get(doc.source, {})
                reuse_ids = list(stored.ids_by_sha.get(doc.sha256, []))
                for ids in old_versions.values():
                    reuse_ids.extend(ids)
                reuse_ids = list(dict.fromkeys(reuse_ids))  # a sync killed half way leaves both lists overlapping
                try:
                    item = self._prepare(doc, reuse_ids, [cid for ids in old_versions.values() for cid in ids])
                except DocumentsError as exc:  # too many sentences: named and skipped, its old chunks kept
                    log.warning("%s", exc)
                    report.skipped.append(str(exc))
                    refused += 1
                    continue
                report.chunks_embedded += len(item.missing)
                report.chunks_reused += len(item.chunks) - len(item.missing)
                report.sentences_embedded += len(item.s_missing)
                report.sentences_reused += len(item.spans) - len(item.s_missing)
                if old_versions:
                    report.updated += 1
                elif doc.sha256 in gone_shas and not item.missing:
                    report.renamed += 1
                    gone_shas.discard(doc.sha256)
                else:
                    report.added += 1
                pending.append(item)
                if sum(len(p.missing) for p in pending) >= _WRITE_BATCH:
                    self._flush(pending)
                    pending = []
            self._flush(pending)
            on_disk_shas = {d.sha256 for d in docs}
            for src in gone:
                self._mark_dirty()
                versions = stored.ids_by_source[src]
                self.sentences.delete(where={"source": src})
                self.collection.delete(ids=[cid for ids in versions.values() for cid in ids])
                if not set(versions) & on_disk_shas:  # else it was renamed, counted above
                    report.removed += 1
            report.files_total = len(docs) - refused
            report.chunks_total = self.count()
            meta = self._metadata()
            revision = meta.get("revision", "")
            if self._dirty or not revision or meta.get("complete", revision) != revision:
                write_cache(self.cache_path("manifest"), self._bump_revision(complete=True, meta=meta),
                            self._read_stored())
        report.seconds = time.perf_counter() - t0
        log.info("sync: %s", report.summary())
        return report

    def _prepare(self, doc: ingest.Document, reuse_ids: list[str], old_ids: list[str]) -> _Pending:
        """Chunk one article and find the stored vectors its chunk texts can reuse."""
        chunks = ingest.chunk(doc, self.settings.chunk_tokens, self.settings.chunk_overlap_tokens,
                              self.settings.max_article_sentences)
        vectors = self._reusable_vectors(reuse_ids) if reuse_ids else {}
        shas = [_text_sha(c.text) for c in chunks]
        missing = _first_missing(shas, vectors)  # a text repeated in the article is embedded once
        spans = split_sentences(doc.text)
        s_shas = [_text_sha(doc.text[a:b]) for a, b in spans]
        # an article with nothing stored under its name or bytes has nothing to reuse: no query for it
        s_vectors, old_sentence_ids = self._reusable_sentence_vectors(doc) if reuse_ids or old_ids else ({}, [])
        s_missing = _first_missing(s_shas, s_vectors)
        return _Pending(doc, chunks, shas, vectors, missing, old_ids, spans, s_shas, s_vectors, s_missing,
                        old_sentence_ids)

    def _reusable_sentence_vectors(self, doc: ingest.Document) -> tuple[dict[str, list[float]], list[str]]:
        """Stored sentence vectors this article can reuse (its earlier versions, or the same bytes under
        another name) keyed by text sha, and the ids of its earlier versions' sentences."""
        got = self.sentences.get(
            where={"$or": [{"source": doc.source}, {"file_sha": doc.sha256}]}, include=["embeddings", "metadatas"]
        )
        vectors: dict[str, list[float]] = {}
        old: list[str] = []
        for sid, meta, emb in zip(got["ids"], got["metadatas"], got["embeddings"]):
            vectors[str(meta["text_sha"])] = list(emb)
            if meta["source"] == doc.source:
                old.append(sid)
        return vectors, old

    def _flush(self, pending: list[_Pending]) -> None:
        """Embed what a batch of articles lacks in one length-sorted run, write it, then drop stale chunks.

        New chunks are written before old ones are deleted, so a sync killed here loses nothing.
        """
        if not pending:
            return
        self._mark_dirty()
        # chunks and sentences in one length-sorted run, each distinct text once
        unique: dict[str, str] = {}
        for p in pending:
            for i in p.missing:
                unique.setdefault(p.shas[i], p.chunks[i].text)
            for i in p.s_missing:
                unique.setdefault(p.s_shas[i], p.doc.text[p.spans[i][0] : p.spans[i][1]])
        vectors = dict(zip(unique, self.embedder.embed(list(unique.values())))) if unique else {}
        for p in pending:
            for i in p.missing:
                p.vectors[p.shas[i]] = vectors[p.shas[i]].tolist()
            for i in p.s_missing:
                p.s_vectors[p.s_shas[i]] = vectors[p.s_shas[i]].tolist()
        self._write_sentences(pending)
        ids: list[str] = []
        embeddings: list[list[float]] = []
        documents: list[str] = []
        metadatas: list[dict[str, Any]] = []
        for p in pending:
            doc = p.doc
            for c, sha in zip(p.chunks, p.shas):
                ids.append(_chunk_id(doc.source, doc.sha256, c.index))
                embeddings.append(p.vectors[sha])
                documents.append(c.text)
                metadatas.append({
                    "source": doc.source, "title": doc.title, "date": doc.date, "file_sha": doc.sha256, "text_sha": sha,
                    "start": c.start, "end": c.end, "chunk": c.index, "n_chunks": len(p.chunks), "tokens": c.tokens,
                })
        for b in range(0, len(ids), _UPSERT_PAGE):
            self.collection.upsert(
                ids=ids[b : b + _UPSERT_PAGE], embeddings=embeddings[b : b + _UPSERT_PAGE],  # type: ignore[arg-type]
                documents=documents[b : b + _UPSERT_PAGE], metadatas=metadatas[b : b + _UPSERT_PAGE],  # type: ignore[arg-type]
            )
        new = set(ids)
        stale = [cid for p in pending for cid in p.old_ids if cid not in new]
        if stale:
            self.collection.delete(ids=stale)

    def _write_sentences(self, pending: list[_Pending]) -> None:
        """Every sentence of the articles with its vector and file offsets: written before the chunks, so a
        complete chunk set implies its sentences are stored; earlier versions' sentences are dropped after."""
        ids: list[str] = []
        embeddings: list[list[float]] = []
        metadatas: list[dict[str, Any]] = []
        for p in pending:
            doc = p.doc
            prefix = _chunk_id(doc.source, doc.sha256, 0)[:-2]
            for i, ((a, b), sha) in enumerate(zip(p.spans, p.s_shas)):
                ids.append(f"{prefix}-s{i}")
                embeddings.append(p.s_vectors[sha])
                metadatas.append({"source": doc.source, "file_sha": doc.sha256, "text_sha": sha, "start": a,
                                  "end": b})
        for b in range(0, len(ids), _UPSERT_PAGE):
            self.sentences.upsert(
                ids=ids[b : b + _UPSERT_PAGE], embeddings=embeddings[b : b + _UPSERT_PAGE],  # type: ignore[arg-type]
                metadatas=metadatas[b : b + _UPSERT_PAGE],  # type: ignore[arg-type]
            )
        new = set(ids)
        stale = [sid for p in pending for sid in p.old_sentence_ids if sid not in new]
        if stale:
            self.sentences.delete(ids=stale)


def _first_missing(shas: list[str], have: dict[str, Any]) -> list[int]:
    """Positions of the first occurrence of each text sha that has no stored vector."""
    seen: set[str] = set()
    out = []
    for i, sha in enumerate(shas):
        if sha not in have and sha not in seen:
            seen.add(sha)
            out.append(i)
    return out


@dataclass
class _Pending:
    doc: ingest.Document
    chunks: list[ingest.Chunk]
    shas: list[str]
    vectors: dict[str, list[float]]
    missing: list[int]
    old_ids: list[str]
    spans: list[tuple[int, int]]
    s_shas: list[str]
    s_vectors: dict[str, list[float]]
    s_missing: list[int]
    old_sentence_ids: list[str]


def rebuild(settings: Settings, embedder: OnnxEmbedder, docs_dir: Path) -> SyncReport:
    """Build the index again from the articles, beside the one in use, and switch to it only when it is
    complete: a rebuild that fails (or is killed) leaves the working index as it was.

    On disk the new index is a new generation, unless the one in use also holds other documents folders'
    collections: then, as on a Chroma server, this folder's collections are built under other names in it
    and renamed into place, and the others stay as they are. An unreadable CURRENT is replaced."""
    with sync_lock(settings):
        if settings.chroma_host:
            return _rebuild_collections(settings, embedder, docs_dir, None)
        root = settings.resolved_index_dir()
        problem = storage_problem(root)
        if problem:
            raise IndexUnavailableError(problem)
        ns = settings.namespace()
        damaged = False
        try:
            old_gen = current_generation(settings)
        except IndexUnavailableError as exc:  # a damaged CURRENT: the rebuild writes a new one
            log.warning("%s", exc)
            old_gen, damaged = _shared_generation(root, ns), True
        others = _other_folders_in(old_gen, ns) if old_gen is not None else []
        if others:
            assert old_gen is not None
            try:
                open_client(settings, old_gen)
            except IndexUnavailableError as exc:
                log.warning("%s: rebuilding into a new generation; the old one is kept for the collections of "
                            "other folders in it (%s)", exc, ", ".join(others))
            else:
                log.info("the index also holds other folders' collections: rebuilding %s's in place", docs_dir)
                report = _rebuild_collections(settings, embedder, docs_dir, old_gen)
                if damaged:
                    _set_current(root, old_gen)
                return report
        gen = _new_generation(root)
        try:
            report = Index(settings, embedder, path=gen).sync(docs_dir)
        except BaseException:
            _forget_client(gen)
            _drop_generation(root, gen)
            raise
        _set_current(root, gen)
        log.info("rebuilt the index in %s", gen)
        unused = {old_gen} if old_gen is not None else set()
        unused |= {p for p in root.iterdir() if _GENERATION.fullmatch(p.name) and p != gen
                   and _is_dir(p) and _is_file(p / GENERATION_MARKER)}  # left by rebuilds that were killed
        for old in unused:
            _forget_client(old)
            theirs = _other_folders_in(old, ns)
            if theirs:  # never another documents folder's (or program's) collections
                log.warning("kept %s: it holds the collections of other documents folders (%s); delete it once "
                            "they are synced again", old, ", ".join(theirs[:4]))
                continue
            _drop_generation(root, old)
        return report


def _other_folders_in(gen: Path, namespace: str) -> list[str]:
    """The collections of other documents folders (or other programs) in a generation's database."""
    return _not_this_folders(_collections_in(gen / "chroma.sqlite3") or [], namespace)


def _shared_generation(root: Path, namespace: str) -> Path | None:
    """With CURRENT unreadable, the generation in use by other documents folders as well, if there is one:
    the newest one holding their collections (a rebuild rebuilds in place there and names it again)."""
    def written(gen: Path) -> int:
        try:
            return os.lstat(gen / "chroma.sqlite3").st_mtime_ns
        except OSError:
            return 0

    shared = [p for p in root.iterdir() if _GENERATION.fullmatch(p.name) and _is_dir(p)
              and _is_file(p / GENERATION_MARKER) and _other_folders_in(p, namespace)]
    return max(shared, key=written, default=None)


def _rebuild_collections(settings: Settings, embedder: OnnxEmbedder, docs_dir: Path, path: Path | None) -> SyncReport:
    """Rebuild this folder's collections under other names in the same Chroma, then rename them into place."""
    tag = uuid.uuid4().hex[:8]
    final = (settings.collection_name(), settings.sentence_collection_name())
    fresh = Index(settings, embedder, path=path, names=(f"{final[0]}-rebuild-{tag}", f"{final[1]}-rebuild-{tag}"))
    caches = {kind: fresh.cache_path(kind) for kind in ("manifest", "corpus")}
    try:
        report = fresh.sync(docs_dir)
        for old, new in zip(final, (fresh.collection, fresh.sentences)):
            with contextlib.suppress(Exception):
                fresh.client.delete_collection(old)
            new.modify(name=old)
    except BaseException:
        for name in fresh.names:
            with contextlib.suppress(Exception):
                fresh.client.delete_collection(name)
        for cache in caches.values():
            with contextlib.suppress(OSError):
                cache.unlink()
        raise
    fresh.names = final
    for kind, cache in caches.items():  # the revision moves with the collection: so can its cache
        with contextlib.suppress(OSError):
            os.replace(cache, fresh.cache_path(kind))
    return report
