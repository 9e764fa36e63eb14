"""The Chroma index: opening it (on disk or a server) and syncing a documents folder into it.

The collection itself is the manifest: every chunk carries its article's path and content hash,
so a sync compares the folder against what is stored and embeds only what is new.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import shutil
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


def open_client(settings: Settings) -> Any:
    """A Chroma client: HTTP when chroma_host is set, otherwise persistent on disk."""
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
    path = settings.resolved_index_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
        client = chromadb.PersistentClient(path=str(path), settings=_chroma_settings())
        client.list_collections()
    except Exception as exc:
        raise IndexUnavailableError(
            f"The index at {path} cannot be opened ({type(exc).__name__}: {exc}). It may be "
            f"corrupted. Rebuild it from the articles with: assistant ingest --rebuild "
            f"(or delete {path} and run assistant ingest)."
        ) from None
    return client


def wipe_local_index(settings: Settings) -> None:
    """Delete the on-disk index folder (used by --rebuild)."""
    from chromadb.api.client import SharedSystemClient

    SharedSystemClient.clear_system_cache()  # chroma caches one system per path in-process
    path = settings.resolved_index_dir()
    if path.exists():
        shutil.rmtree(path)
        log.warning("deleted index folder %s", path)


@contextlib.contextmanager
def sync_lock(settings: Settings) -> Iterator[None]:
    """Serialise syncs of one on-disk index across processes."""
    if settings.chroma_host:
        yield
        return
    path = settings.resolved_index_dir()
    path.mkdir(parents=True, exist_ok=True)
    with open(path / ".sync.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


_CACHE_FORMAT = 3


def read_cache(path: Path) -> tuple[str, Any]:
    """(revision, value) as write_cache stored them at path, or ("", None) if missing or damaged."""
    if not path.exists():
        return "", None
    try:
        with open(path, "rb") as fh:
            fmt, rev, value = pickle.load(fh)
        if fmt == _CACHE_FORMAT:
            return str(rev), value
    except Exception as exc:  # a damaged cache is rebuilt from the index, never trusted
        log.warning("ignoring the cache %s (%s): rebuilding it from the index", path, exc)
    return "", None


def write_cache(path: Path, revision: str, value: Any) -> None:
    """Save derived state atomically; failure only costs the next process a rebuild."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "wb") as fh:
            pickle.dump((_CACHE_FORMAT, revision, value), fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not save the cache %s (%s); the next process will rebuild it", path, exc)


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
    """One Chroma collection of article chunks, named after the settings that shape it."""

    def __init__(self, settings: Settings, embedder: OnnxEmbedder) -> None:
        self.settings = settings
        self.embedder = embedder
        self._dirty = False
        with sync_lock(settings):  # another process may be creating the same on-disk index right now
            self.client = open_client(settings)
            self.collection = self._open_collection(settings.collection_name())
            self.sentences = self._open_collection(settings.sentence_collection_name())

    def _open_collection(self, name: str) -> Any:
        settings = self.settings
        try:
            return self.client.get_or_create_collection(
                name=name,
                metadata={"hnsw:space": "cosine", "embed_model": settings.embed_model},
                embedding_function=None,
            )
        except Exception as exc:
            raise IndexUnavailableError(
                f"Cannot open the collection {name} ({exc}). "
                "Rebuild the index: assistant ingest --rebuild."
            ) from None

    def count(self) -> int:
        return int(self.collection.count())

    def revision(self) -> str:
        """A token that changes whenever a sync changes the collection (kept in its metadata, so it
        is shared by every process and machine using the same Chroma)."""
        meta = self.client.get_collection(self.settings.collection_name()).metadata or {}
        return str(meta.get("revision", ""))

    def ensure_revision(self) -> str:
        """The revision, giving the collection one first if it has none (built by an older version)."""
        revision = self.revision()
        if not revision:
            with sync_lock(self.settings):
                if not self.revision():
                    self._bump_revision()
                revision = self.revision()
        return revision

    def _bump_revision(self) -> None:
        meta = {k: v for k, v in (self.collection.metadata or {}).items() if not k.startswith("hnsw:")}
        meta["revision"] = uuid.uuid4().hex
        self.collection.modify(metadata=meta)

    def _mark_dirty(self) -> None:
        """Before the first write of a sync: a new revision, so that no cache made before it is trusted,
        even if this sync is killed half way."""
        if not self._dirty:
            self._bump_revision()
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
        keep = {self.settings.collection_name(), self.settings.sentence_collection_name()}
        for col in self.client.list_collections():
            name = col if isinstance(col, str) else col.name
            if name.startswith((COLLECTION_PREFIX, SENTENCE_PREFIX)) and name not in keep:
                log.info("dropping collection %s built with other settings", name)
                self.client.delete_collection(name)

    def cache_path(self, kind: str) -> Path:
        """Where derived state of this collection (manifest, retrieval state) is cached on this machine."""
        s = self.settings
        where = f"-{s.chroma_host}-{s.chroma_port}" if s.chroma_host else ""
        return s.resolved_index_dir() / "retrieval-cache" / f"{s.collection_name()}{where}.{kind}.pickle"

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
            paths = ingest.discover(docs_dir)
            docs: list[ingest.Document] = []
            present: set[str] = set()
            for path in paths:
                present.add(path.relative_to(docs_dir).as_posix())
                try:
                    docs.append(ingest.load(path, docs_dir, self.settings.max_file_bytes))
                except DocumentsError as exc:
                    log.warning("%s", exc)
                    report.skipped.append(str(exc))
            if not docs:
                raise DocumentsError(
                    f"No readable .txt or .md articles in {str(docs_dir)!r}"
                    + (f" ({len(report.skipped)} skipped: {'; '.join(report.skipped)})" if report.skipped else "")
                    + ". Add UTF-8 .txt/.md files there and run assistant ingest again."
                )
            stored = self.stored()
            self._dirty = False
            # Sources we could not read this time keep their previous chunks: nothing is lost.
            gone = [s for s in stored.ids_by_source if s not in present]
            gone_shas = {sha for s in gone for sha in stored.ids_by_source[s]}
            pending: list[_Pending] = []
            for doc in docs:
                if stored.complete(doc.source, doc.sha256):
                    report.unchanged += 1
                    continue
                old_versions = stored.ids_by_source.get(doc.source, {})
                reuse_ids = list(stored.ids_by_sha.get(doc.sha256, []))
                for ids in old_versions.values():
                    reuse_ids.extend(ids)
                reuse_ids = list(dict.fromkeys(reuse_ids))  # a sync killed half way leaves both lists overlapping
                item = self._prepare(doc, reuse_ids, [cid for ids in old_versions.values() for cid in ids])
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
            report.files_total = len(docs)
            report.chunks_total = self.count()
            if self._dirty or not self.revision():
                self._bump_revision()
                write_cache(self.cache_path("manifest"), self.revision(), self._read_stored())
        report.seconds = time.perf_counter() - t0
        log.info("sync: %s", report.summary())
        return report

    def _prepare(self, doc: ingest.Document, reuse_ids: list[str], old_ids: list[str]) -> _Pending:
        """Chunk one article and find the stored vectors its chunk texts can reuse."""
        chunks = ingest.chunk(doc, self.settings.chunk_tokens, self.settings.chunk_overlap_tokens)
        vectors = self._reusable_vectors(reuse_ids) if reuse_ids else {}
        shas = [_text_sha(c.text) for c in chunks]
        missing = [i for i, sha in enumerate(shas) if sha not in vectors]
        spans = split_sentences(doc.text)
        s_shas = [_text_sha(doc.text[a:b]) for a, b in spans]
        # an article with nothing stored under its name or bytes has nothing to reuse: no query for it
        s_vectors, old_sentence_ids = self._reusable_sentence_vectors(doc) if reuse_ids or old_ids else ({}, [])
        s_missing = [i for i, sha in enumerate(s_shas) if sha not in s_vectors]
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
        # chunks and sentences in one length-sorted run
        texts = [p.chunks[i].text for p in pending for i in p.missing]
        texts += [p.doc.text[p.spans[i][0] : p.spans[i][1]] for p in pending for i in p.s_missing]
        fresh = iter(self.embedder.embed(texts)) if texts else iter(())
        for p in pending:
            for i in p.missing:
                p.vectors[p.shas[i]] = next(fresh).tolist()
        for p in pending:
            for i in p.s_missing:
                p.s_vectors[p.s_shas[i]] = next(fresh).tolist()
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
