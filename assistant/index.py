"""The Chroma index: opening it (on disk or a server) and syncing a documents folder into it.

The collection itself is the manifest: every chunk carries its article's path and content hash,
so a sync compares the folder against what is stored and embeds only what is new.

An on-disk index folder holds generations: ``CURRENT`` names the folder (``gen-<hex>``) with the Chroma
database in use. ``--rebuild`` builds a new generation beside the working one and switches ``CURRENT`` only
when it is complete, so a failed rebuild loses nothing; other processes notice the switch on their next
question and reopen. Readers never take the writers' lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import mmap
import os
import pickle
import shutil
import struct
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import ingest
from .embed import OnnxEmbedder
from .errors import DocumentsError, IndexUnavailableError
from .schema import SyncReport
from .settings import Settings
from .text import split_sentences

log = logging.getLogger(__name__)

COLLECTION_PREFIX = "articles_"
SENTENCE_PREFIX = "sentences_"
_GET_PAGE = 5000
_WRITE_BATCH = 512  # chunks embedded together: long enough for length-sorted batches to pay off
_UPSERT_PAGE = 4000


def _chroma_settings() -> Any:
    from chromadb.config import Settings as ChromaSettings

    return ChromaSettings(anonymized_telemetry=False, allow_reset=False)


class CollectionGone(IndexUnavailableError):
    """The collection was deleted (by another process's sync with other settings, or a rebuild)."""


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


def current_generation(settings: Settings) -> Path | None:
    """The folder of the on-disk index in use: the one CURRENT names, the index folder itself for an index
    made before generations existed, or None when there is no index yet."""
    root = settings.resolved_index_dir()
    try:
        name = (root / "CURRENT").read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        name = ""
    except OSError as exc:
        raise IndexUnavailableError(f"Cannot read {root / 'CURRENT'} ({exc.strerror}).") from None
    if name and "/" not in name and (root / name).is_dir():
        return root / name
    if (root / "chroma.sqlite3").exists():
        return root
    return None


def _set_current(root: Path, gen: Path) -> None:
    tmp = root / f"CURRENT.tmp{os.getpid()}"
    tmp.write_text(gen.name + "\n", encoding="utf-8")
    os.replace(tmp, root / "CURRENT")


def _new_generation(root: Path) -> Path:
    gen = root / f"gen-{uuid.uuid4().hex[:12]}"
    _writable_dir(gen)
    return gen


def _drop_generation(root: Path, gen: Path | None) -> None:
    """Delete an index generation that is no longer CURRENT (for the pre-generation layout: its files)."""
    if gen is None:
        return
    if gen != root:
        shutil.rmtree(gen, ignore_errors=True)
        return
    for child in root.iterdir():  # the old layout: Chroma's files sit beside CURRENT and the generations
        if child.name in ("CURRENT", ".sync.lock") or child.name.startswith("gen-"):
            continue
        if child.is_dir():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


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
    try:
        client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        client.list_collections()
    except Exception as exc:
        raise IndexUnavailableError(
            f"The index at {path} cannot be opened ({type(exc).__name__}: {exc}). It may be "
            f"corrupted. Rebuild it from the articles with: assistant ingest --rebuild "
            f"(the damaged copy is kept until the new one is complete)."
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
    root = _writable_dir(settings.resolved_index_dir())
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
            fh = open(root / ".sync.lock", "w")  # noqa: SIM115  (held across the yield)
        except OSError as exc:
            raise IndexUnavailableError(
                f"Cannot write the lock file in {root} ({exc.strerror}). Set ASSISTANT_INDEX_DIR to a folder "
                "you can write to."
            ) from None
        with fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            _held[key] = 1
            try:
                yield
            finally:
                _held[key] = 0
                fcntl.flock(fh, fcntl.LOCK_UN)


_CACHE_FORMAT = 5
_CACHE_MAGIC = b"ASTCACHE"
_CACHE_HEAD = struct.Struct("<8sQQQ")  # magic, format, number of arrays, pickle length
_ALIGN = 64


def read_cache(path: Path) -> tuple[str, Any]:
    """(revision, value) as write_cache stored them at path, or ("", None) if missing or damaged.

    The arrays in the value are mapped from the file, not read: a new process pays only for the pages it
    touches (a question touches a few rows of the sentence vectors). The file is replaced, never rewritten,
    so a mapping stays valid while another process saves a newer state."""
    if not path.exists():
        return "", None
    try:
        with open(path, "rb") as fh:
            mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        head = _CACHE_HEAD.size
        magic, fmt, n_buffers, pickle_len = _CACHE_HEAD.unpack_from(mm, 0)
        if magic != _CACHE_MAGIC or fmt != _CACHE_FORMAT:
            return "", None
        spans = [struct.unpack_from("<QQ", mm, head + 16 * i) for i in range(n_buffers)]
        start = head + 16 * n_buffers
        if start + pickle_len > len(mm) or any(off + size > len(mm) for off, size in spans):
            raise ValueError("the file is shorter than its header says")
        view = memoryview(mm)
        rev, value = pickle.loads(view[start : start + pickle_len],
                                  buffers=[view[off : off + size] for off, size in spans])
        return str(rev), value
    except Exception as exc:  # a damaged cache is rebuilt from the index, never trusted
        log.warning("ignoring the cache %s (%s): rebuilding it from the index", path, exc)
    return "", None


def write_cache(path: Path, revision: str, value: Any) -> None:
    """Save derived state atomically; failure only costs the next process a rebuild.

    Layout: a header, the pickle of (revision, value) with its NumPy arrays left out (protocol 5 out-of-band
    buffers), then each array's bytes, aligned, so read_cache can map them."""
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        buffers: list[pickle.PickleBuffer] = []
        data = pickle.dumps((revision, value), protocol=5, buffer_callback=buffers.append)
        raws = [b.raw() for b in buffers]
        head = _CACHE_HEAD.size + 16 * len(raws)
        offset, spans = head + len(data), []
        for raw in raws:
            offset += -offset % _ALIGN
            spans.append((offset, raw.nbytes))
            offset += raw.nbytes
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            fh.write(_CACHE_HEAD.pack(_CACHE_MAGIC, _CACHE_FORMAT, len(raws), len(data)))
            for span in spans:
                fh.write(struct.pack("<QQ", *span))
            fh.write(data)
            for (off, _), raw in zip(spans, raws):
                fh.write(b"\0" * (off - fh.tell()))
                fh.write(raw)
        os.replace(tmp, path)
        path.with_suffix(".pickle").unlink(missing_ok=True)  # the format before 4: a plain pickle
    except OSError as exc:
        log.warning("could not save the cache %s (%s); the next process will rebuild it", path, exc)
        with contextlib.suppress(OSError):
            tmp.unlink()


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
            f"Cannot open the collection {name} ({last}). Rebuild the index: assistant ingest --rebuild."
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
        """Drop this folder's collections built with other settings (and unnamespaced ones of older
        versions); other folders' collections in the same Chroma are left alone."""
        keep = set(self.names) | {self.settings.collection_name(), self.settings.sentence_collection_name()}
        ns = f"_{self.settings.namespace()}"
        for col in self.client.list_collections():
            name = col if isinstance(col, str) else col.name
            if not name.startswith((COLLECTION_PREFIX, SENTENCE_PREFIX)) or name in keep or "-rebuild-" in name:
                continue
            legacy = name.count("_") == 1
            if name.endswith(ns) or legacy:
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
            if not docs:  # an emptied folder empties the index: deleted articles are never cited again
                log.info("no readable .txt/.md articles in %s: the index will hold none", docs_dir)
            stored = self.stored()
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
    complete: a rebuild that fails (or is killed) leaves the working index as it was."""
    with sync_lock(settings):
        if settings.chroma_host:
            tag = uuid.uuid4().hex[:8]
            final = (settings.collection_name(), settings.sentence_collection_name())
            fresh = Index(settings, embedder, names=(f"{final[0]}-rebuild-{tag}", f"{final[1]}-rebuild-{tag}"))
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
                raise
            return report
        root = settings.resolved_index_dir()
        old_gen = current_generation(settings)
        gen = _new_generation(root)
        try:
            report = Index(settings, embedder, path=gen).sync(docs_dir)
        except BaseException:
            _forget_client(gen)
            shutil.rmtree(gen, ignore_errors=True)
            raise
        _set_current(root, gen)
        log.info("rebuilt the index in %s", gen)
        if old_gen is not None:
            _forget_client(old_gen)
            _drop_generation(root, old_gen)
        return report
