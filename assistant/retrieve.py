"""Hybrid retrieval: dense (the Chroma collection) + BM25 (bm25s), fused by RRF.

Answering never imports LlamaIndex (1.2-1.5 s of a 2.4 s cold `assistant ask`): the dense search asks the
Chroma collection for ids and distances, which is all LlamaIndex's vector store returned to us. LlamaIndex's
plain dense retriever over the same collection is the eval's baseline (``HybridRetriever.dense_only``)."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar, overload

from .embed import OnnxEmbedder, llama_index_embedding
from .index import Index, get_all, get_sentences, read_cache, write_cache
from .schema import RetrievedContext
from .settings import Settings
from .text import WORD, correct, terms, visible

log = logging.getLogger(__name__)
T = TypeVar("T")

class ChunkRecord(NamedTuple):
    id: str
    source: str
    title: str
    text: str
    start: int
    end: int
    date: str = ""


class _Rows(Sequence[T]):
    """A sequence whose items are built from columns on access (see Strings and ChunkTable)."""

    def _at(self, i: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self._at(j) for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._at(i)


class Strings(_Rows[str]):
    """Many strings as one UTF-8 byte array and offsets: saved as raw arrays and mapped back by read_cache,
    where a list of 100k strings would be rebuilt object by object in every new process."""

    def __init__(self, items: Iterable[str] = ()) -> None:
        import numpy as np

        encoded = [s.encode("utf-8") for s in items]
        self._bytes = np.frombuffer(b"".join(encoded), dtype=np.uint8) if encoded else np.zeros(0, dtype=np.uint8)
        self._offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
        self._offsets[1:] = np.cumsum([len(b) for b in encoded], dtype=np.int64)

    def __len__(self) -> int:
        return len(self._offsets) - 1

    def _at(self, i: int) -> str:
        return bytes(self._bytes[int(self._offsets[i]) : int(self._offsets[i + 1])]).decode("utf-8")


class ChunkTable(_Rows[ChunkRecord]):
    """The indexed chunks, column by column, each chunk a ChunkRecord when asked for.

    Texts are one UTF-8 byte array and offsets are arrays, so a cached table is mapped from its file
    (write_cache saves arrays as raw bytes) instead of rebuilding 100k Python records in a new process.
    """

    def __init__(self, records: Iterable[ChunkRecord] = ()) -> None:
        import numpy as np

        recs = list(records)
        self.ids = [r.id for r in recs]
        self.sources = [r.source for r in recs]
        self.titles = {r.source: r.title for r in recs}
        self.dates = [r.date for r in recs]
        self.start = np.array([r.start for r in recs], dtype=np.int64)
        self.end = np.array([r.end for r in recs], dtype=np.int64)
        self.texts = Strings(r.text for r in recs)
        self.position = {cid: i for i, cid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def _at(self, i: int) -> ChunkRecord:
        src = self.sources[i]
        return ChunkRecord(self.ids[i], src, self.titles.get(src, ""), self.texts[i], int(self.start[i]),
                           int(self.end[i]), self.dates[i])

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "position"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.position = {cid: i for i, cid in enumerate(self.ids)}


class _ById(Mapping[str, ChunkRecord]):
    """A chunk by its id (a view of a ChunkTable)."""

    def __init__(self, table: ChunkTable) -> None:
        self._table = table

    def __getitem__(self, cid: str) -> ChunkRecord:
        return self._table[self._table.position[cid]]

    def __contains__(self, cid: object) -> bool:
        return cid in self._table.position

    def __iter__(self) -> Iterator[str]:
        return iter(self._table.ids)

    def __len__(self) -> int:
        return len(self._table)


class Sentences:
    """Every article sentence: file offsets and its MiniLM vector (float16), grouped by article."""

    def __init__(self, metas: Sequence[dict[str, Any]] = (), vectors: Any = None) -> None:
        import numpy as np

        order = sorted(range(len(metas)), key=lambda i: (str(metas[i]["source"]), int(metas[i]["start"])))
        self.start = np.array([int(metas[i]["start"]) for i in order], dtype=np.int64)
        self.end = np.array([int(metas[i]["end"]) for i in order], dtype=np.int64)
        self.vectors = vectors[order] if len(order) else np.zeros((0, 384), dtype=np.float16)
        self.rows: dict[str, tuple[int, int]] = {}  # an article's sentences: rows [a, b), in text order
        for i, n in enumerate(order):
            src = str(metas[n]["source"])
            a, _ = self.rows.get(src, (i, i))
            self.rows[src] = (a, i + 1)

    def __len__(self) -> int:
        return len(self.start)

    def within(self, source: str, start: int, end: int) -> list[int]:
        """Rows of the sentences of `source` that lie inside [start, end)."""
        import numpy as np

        a, b = self.rows.get(source, (0, 0))
        if a == b:
            return []
        lo = a + int(np.searchsorted(self.start[a:b], start, side="left"))
        hi = a + int(np.searchsorted(self.start[a:b], end, side="left"))
        return [i for i in range(lo, hi) if self.end[i] <= end]

    def replaced(self, sources: set[str], metas: list[dict[str, Any]], vectors: Any) -> Sentences:
        """A copy without the sentences of `sources`, plus the given ones."""
        import numpy as np

        rows = [(src, i) for src, (a, b) in self.rows.items() if src not in sources for i in range(a, b)]
        keep = [i for _, i in rows]
        kept = [{"source": src, "start": int(self.start[i]), "end": int(self.end[i])} for src, i in rows]
        parts = [self.vectors[keep]] if keep else []
        if len(metas):
            parts.append(vectors.astype(np.float16))
        allv = np.concatenate(parts) if parts else np.zeros((0, 384), dtype=np.float16)
        return Sentences(kept + list(metas), allv)


class Corpus:
    """In-memory view of the indexed chunks: texts, term statistics and the BM25 index.

    Built once per index revision and kept on disk (see open_corpus), so a new process neither
    re-reads every chunk from Chroma nor re-tokenizes it; a sync that changes a few articles
    tokenizes only their new chunks.
    """

    def __init__(self, records: Sequence[ChunkRecord] = (), tokens: list[list[str]] | None = None) -> None:
        self.records = records if isinstance(records, ChunkTable) else ChunkTable(records)
        self._tokens: list[list[str]] | None = tokens if tokens is not None else [terms(r.text) for r in records]
        self._joined: Sequence[str] = []
        self.by_id: Mapping[str, ChunkRecord] = _ById(self.records)
        df: Counter[str] = Counter()
        for toks in self.tokens:
            df.update(set(toks))
        self.df = df
        self.words = set(WORD.findall(visible("\n".join(r.text for r in records)).lower()))
        self._words_by_initial: dict[str, list[str]] = {}
        for w in sorted(self.words):
            self._words_by_initial.setdefault(w[0], []).append(w)
        self._by_prefix: dict[str, set[str]] = {}
        for w in df:
            if len(w) >= 5:
                self._by_prefix.setdefault(w[:5], set()).add(w)
        self.n = max(len(records), 1)
        self.sources = sorted(set(self.records.sources))
        self.titles = self.records.titles
        self.bm25 = _bm25_index(self.tokens) if records else None
        self.sentences: Sentences = Sentences([], None)
        self.revision = ""  # the index revision this state was built from (set by open_corpus)
        self._positions = self._by_source()

    def _by_source(self) -> dict[str, list[int]]:
        """Positions of each article's chunks in ``records`` (derived, never stored)."""
        out: dict[str, list[int]] = {}
        for i, src in enumerate(self.records.sources):
            out.setdefault(src, []).append(i)
        return out

    def article_text(self, source: str) -> str:
        """An article's indexed text (its chunks joined), for checks that look beyond one sentence."""
        return "\n".join(self.records.texts[i] for i in self._positions.get(source, ()))

    def article_terms(self, source: str) -> set[str]:
        """An article's terms: the union of its chunks' stored terms (nothing is re-stemmed)."""
        positions = self._positions.get(source, ())
        if self._tokens is not None:
            return {t for i in positions for t in self._tokens[i]}
        return {t for i in positions for t in self._joined[i].split()}

    @property
    def tokens(self) -> list[list[str]]:
        """Each chunk's terms (materialized from the cache only when a sync update needs them)."""
        if self._tokens is None:
            self._tokens = [t.split() for t in self._joined]
        return self._tokens

    def __getstate__(self) -> dict[str, Any]:
        """Terms go to disk as one string per chunk: millions of small strings are slow to unpickle,
        and answering never needs them (only the BM25 index built from them)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("by_id", "_tokens", "_joined", "_positions")}
        state["_joined"] = self._joined if self._tokens is None else Strings(" ".join(t) for t in self._tokens)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tokens = None
        self.by_id = _ById(self.records)
        self._positions = self._by_source()

    def correct(self, text: str) -> str:
        """Replace words the articles never use by the closest word they do (typos: 'governer')."""
        return correct(text, self.words, self._words_by_initial)

    def variants(self, term: str) -> set[str]:
        """The term and corpus words sharing a 5+ letter stem with it (ukrain ~ ukrainian)."""
        if len(term) < 5:
            return {term}
        return {term} | self._by_prefix.get(term[:5], set()) & {
            w for w in self._by_prefix.get(term[:5], set()) if w.startswith(term) or term.startswith(w)
        }

    def idf(self, term: str) -> float:
        return math.log(1 + (self.n - self.df.get(term, 0) + 0.5) / (self.df.get(term, 0) + 0.5))

    def bm25_top(self, query_terms: list[str], k: int) -> list[tuple[int, float]]:
        """(record position, BM25 score) of the k best-scoring chunks that share a term with the query."""
        import numpy as np

        known = [t for t in query_terms if t in self.df]
        if self.bm25 is None or not known:
            return []
        scores = self.bm25.get_scores(known)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [(int(i), float(scores[i])) for i in top if scores[i] > 0]

    def updated(self, added: list[ChunkRecord], removed: set[str]) -> Corpus:
        """A new Corpus without `removed` and with `added`; kept chunks are not re-tokenized."""
        kept = [(r, t) for r, t in zip(self.records, self.tokens) if r.id not in removed]
        pairs = sorted(kept + [(r, terms(r.text)) for r in added], key=lambda rt: (rt[0].source, rt[0].start))
        out = Corpus([r for r, _ in pairs], [t for _, t in pairs])
        out.sentences = self.sentences
        return out


def _bm25_index(tokens: list[list[str]]) -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    bm25 = bm25s.BM25()
    bm25.index([t or [""] for t in tokens], show_progress=False)
    return bm25


def _record(cid: str, meta: dict[str, Any], doc: str | None) -> ChunkRecord:
    return ChunkRecord(
        id=cid, source=str(meta["source"]), title=str(meta.get("title", "")), text=doc or "",
        start=int(meta["start"]), end=int(meta["end"]), date=str(meta.get("date", "") or ""),
    )


def open_corpus(index: Index) -> Corpus:
    """The Corpus for the index's last complete revision: from the on-disk cache when it matches,
    else updated from the cache (only new chunks are read and tokenized) or built from scratch.

    While another process syncs, the collection holds a mix of old and new chunks; a state read then is
    used (every citation is checked against the files anyway) but not saved for other processes."""
    revision = index.ensure_revision()
    syncing = index.revision() != revision
    rev, cached = read_cache(index.cache_path("corpus"))
    if not isinstance(cached, Corpus):
        cached = None
    elif rev == revision:
        return cached
    t0 = time.perf_counter()
    if cached is None:
        corpus = Corpus(sorted((_record(*row) for row in get_all(index.collection, ["metadatas", "documents"])),
                               key=lambda r: (r.source, r.start)))
        corpus.sentences = Sentences(*get_sentences(index.sentences))
    else:
        ids = index.ids()
        removed = set(cached.by_id) - ids
        new_ids = sorted(ids - set(cached.by_id))
        added = [_record(*row) for row in index.get(new_ids)]
        corpus = cached.updated(added, removed)
        changed = {r.source for r in added} | {cached.by_id[cid].source for cid in removed}
        if changed:
            corpus.sentences = cached.sentences.replaced(changed, *get_sentences(index.sentences, sorted(changed)))
    corpus.revision = revision
    log.info("retrieval state for %d chunks built in %.1fs", len(corpus.records), time.perf_counter() - t0)
    if not syncing:
        write_cache(index.cache_path("corpus"), revision, corpus)
    return corpus


class HybridRetriever:
    """Dense (the Chroma collection) + BM25 (bm25s), fused by reciprocal rank."""

    def __init__(self, settings: Settings, index: Index, embedder: OnnxEmbedder, corpus: Corpus) -> None:
        self.settings = settings
        self.corpus = corpus
        self.embedder = embedder
        self.collection = index.collection
        self._store: Any = None
        self._baseline: Any = None
        self._vectors: dict[str, Any] = {}

    @property
    def store(self) -> Any:
        """LlamaIndex's ChromaVectorStore over the same collection (built, and LlamaIndex imported, on first use:
        only the eval's baseline needs it)."""
        if self._store is None:
            from llama_index.vector_stores.chroma import ChromaVectorStore

            self._store = ChromaVectorStore(chroma_collection=self.collection)
        return self._store

    def query_vector(self, query: str) -> Any:
        """The query's MiniLM vector (kept for the last questions: retrieval and the answerer share it)."""
        vec = self._vectors.get(query)
        if vec is None:
            vec = self.embedder.embed_one(query)
            if len(self._vectors) >= 64:
                try:  # the page answers in several threads: another one may drop the same entry first
                    self._vectors.pop(next(iter(self._vectors)), None)
                except (StopIteration, RuntimeError):
                    pass
            self._vectors[query] = vec
        return vec

    def dense_only(self, query: str, k: int) -> list[RetrievedContext]:
        """Plain LlamaIndex dense retrieval (VectorStoreIndex retriever): the eval's baseline."""
        if self._baseline is None:
            from llama_index.core import VectorStoreIndex

            vindex = VectorStoreIndex.from_vector_store(self.store, embed_model=llama_index_embedding(self.embedder))
            self._baseline = vindex.as_retriever(similarity_top_k=self.settings.candidate_k)
        hits = self._baseline.retrieve(query)[:k]
        return [
            self._context(h.node.node_id, 1.0 / (i + 1), dense=self._cos(h.score)) for i, h in enumerate(hits)
        ]

    @staticmethod
    def _cos(similarity: float | None) -> float:
        # ChromaVectorStore reports exp(-distance); with cosine space distance = 1 - cos.
        return 1.0 + math.log(similarity) if similarity and similarity > 0 else 0.0

    def _context(
        self, cid: str, score: float, dense: float | None = None, bm25: float | None = None
    ) -> RetrievedContext:
        r = self.corpus.by_id[cid]
        return RetrievedContext(
            source=r.source, title=r.title, date=r.date, text=r.text, start=r.start, end=r.end,
            score=score, dense_score=dense, bm25_score=bm25, chunk_id=cid,
        )

    def dense(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first: the collection's nearest neighbours, only their ids and
        distances read (the chunks themselves are in the corpus)."""
        vector = self.query_vector(query).tolist()
        result = self.collection.query(query_embeddings=[vector], n_results=k, include=["distances"])
        ids, distances = (result.get("ids") or [[]])[0], (result.get("distances") or [[]])[0]
        return [(cid, 1.0 - float(d)) for cid, d in zip(ids, distances)]  # cosine space: distance = 1 - cos

    def retrieve(self, query: str, k: int | None = None) -> list[RetrievedContext]:
        k = k or self.settings.top_k
        if not self.corpus.records:
            return []
        rrf: dict[str, float] = {}
        dense: dict[str, float] = {}
        sparse: dict[str, float] = {}
        dense_hits = [(cid, cos) for cid, cos in self.dense(query, self.settings.candidate_k)
                      if cid in self.corpus.by_id]
        for rank, (cid, cos) in enumerate(dense_hits):
            dense[cid] = cos
            rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        bm25_hits = [(self.corpus.records.ids[pos], score)
                     for pos, score in self.corpus.bm25_top(terms(query), self.settings.candidate_k)]
        for rank, (cid, score) in enumerate(bm25_hits):
            sparse[cid] = score
            rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        # A decisive first place (an exact identifier or rare term) is not diluted by the other ranking.
        decisive = [cid for cid in (_decisive(bm25_hits, ratio=2.0), _decisive(dense_hits, gap=0.15)) if cid]
        top = max(rrf.values(), default=0.0)
        for n, cid in enumerate(reversed(decisive)):
            rrf[cid] = top + 1e-6 * (n + 1)
        ranked = sorted(rrf.items(), key=lambda kv: -kv[1])[:k]
        return [self._context(cid, s, dense.get(cid), sparse.get(cid)) for cid, s in ranked]


def _decisive(hits: list[tuple[str, float]], ratio: float = 0.0, gap: float = 0.0) -> str | None:
    """The first hit when it beats the second by `ratio` times (BM25) or by `gap` (cosine), else None."""
    if len(hits) < 2:
        return hits[0][0] if hits and ratio else None
    (first, a), (_, b) = hits[0], hits[1]
    if ratio and b > 0 and a >= ratio * b:
        return first
    if gap and a - b >= gap:
        return first
    return None
