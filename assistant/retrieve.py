"""Hybrid retrieval: dense (LlamaIndex's Chroma vector store) + BM25 (bm25s), fused by RRF."""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from collections import Counter
from functools import lru_cache
from typing import Any, NamedTuple

from .embed import OnnxEmbedder, llama_index_embedding
from .index import Index, get_all, read_cache, write_cache
from .schema import RetrievedContext
from .settings import Settings

log = logging.getLogger(__name__)

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP_TEXT = """
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me more
most my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself yourselves many much said say says tell told according did does many
whose
"""
STOPWORDS = frozenset(_STOP_TEXT.split())


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def stem_words(words: list[str]) -> list[str]:
    return list(_stemmer().stemWords(words)) if words else []


def terms(text: str) -> list[str]:
    """Lower-cased, stemmed content words (stopwords dropped)."""
    words = [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]
    return [sys.intern(t) for t in stem_words(words)]


class ChunkRecord(NamedTuple):
    id: str
    source: str
    title: str
    text: str
    start: int
    end: int


class Corpus:
    """In-memory view of the indexed chunks: texts, term statistics and the BM25 index.

    Built once per index revision and kept on disk (see open_corpus), so a new process neither
    re-reads every chunk from Chroma nor re-tokenizes it; a sync that changes a few articles
    tokenizes only their new chunks.
    """

    def __init__(self, records: list[ChunkRecord], tokens: list[list[str]] | None = None) -> None:
        self.records = records
        self._tokens: list[list[str]] | None = tokens if tokens is not None else [terms(r.text) for r in records]
        self._joined: list[str] = []
        self.by_id = {r.id: r for r in records}
        df: Counter[str] = Counter()
        for toks in self.tokens:
            df.update(set(toks))
        self.df = df
        self.words = set(_WORD.findall("\n".join(r.text for r in records).lower()))
        self._words_by_initial: dict[str, list[str]] = {}
        for w in sorted(self.words):
            self._words_by_initial.setdefault(w[0], []).append(w)
        self._by_prefix: dict[str, set[str]] = {}
        for w in df:
            if len(w) >= 5:
                self._by_prefix.setdefault(w[:5], set()).add(w)
        self.n = max(len(records), 1)
        self.sources = sorted({r.source for r in records})
        self.titles = {r.source: r.title for r in records}
        self.bm25 = _bm25_index(self.tokens) if records else None
        self.revision = ""  # the index revision this state was built from (set by open_corpus)

    @property
    def tokens(self) -> list[list[str]]:
        """Each chunk's terms (materialized from the cache only when a sync update needs them)."""
        if self._tokens is None:
            self._tokens = [t.split() for t in self._joined]
        return self._tokens

    def __getstate__(self) -> dict[str, Any]:
        """Terms go to disk as one string per chunk: millions of small strings are slow to unpickle,
        and answering never needs them (only the BM25 index built from them)."""
        state = {k: v for k, v in self.__dict__.items() if k not in ("by_id", "_tokens", "_joined")}
        state["_joined"] = self._joined if self._tokens is None else [" ".join(t) for t in self._tokens]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tokens = None
        self.by_id = {r.id: r for r in getattr(self, "records", [])}

    def correct(self, text: str) -> str:
        """Replace words the articles never use by the closest word they do (typos: 'governer')."""
        import difflib

        def fix(m: re.Match[str]) -> str:
            w = m.group(0)
            low = w.lower()
            if len(low) < 4 or low in self.words or low in STOPWORDS or low.isdigit():
                return w
            close = difflib.get_close_matches(low, self._words_by_initial.get(low[0], []), n=1, cutoff=0.85)
            return close[0] if close else w

        return _WORD.sub(fix, text)

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
        return Corpus([r for r, _ in pairs], [t for _, t in pairs])


def _bm25_index(tokens: list[list[str]]) -> Any:
    import bm25s

    logging.getLogger("bm25s").setLevel(logging.WARNING)
    bm25 = bm25s.BM25()
    bm25.index([t or [""] for t in tokens], show_progress=False)
    return bm25


def _record(cid: str, meta: dict[str, Any], doc: str | None) -> ChunkRecord:
    return ChunkRecord(
        id=cid, source=str(meta["source"]), title=str(meta.get("title", "")), text=doc or "",
        start=int(meta["start"]), end=int(meta["end"]),
    )


def open_corpus(index: Index) -> Corpus:
    """The Corpus for the index's current revision: from the on-disk cache when it matches,
    else updated from the cache (only new chunks are read and tokenized) or built from scratch."""
    revision = index.ensure_revision()
    rev, cached = read_cache(index.cache_path("corpus"))
    if not isinstance(cached, Corpus):
        cached = None
    elif rev == revision:
        return cached
    t0 = time.perf_counter()
    if cached is None:
        corpus = Corpus(sorted((_record(*row) for row in get_all(index.collection, ["metadatas", "documents"])),
                               key=lambda r: (r.source, r.start)))
    else:
        ids = index.ids()
        removed = set(cached.by_id) - ids
        new_ids = sorted(ids - set(cached.by_id))
        added = [_record(*row) for row in index.get(new_ids)]
        corpus = cached.updated(added, removed)
    corpus.revision = revision
    log.info("retrieval state for %d chunks built in %.1fs", len(corpus.records), time.perf_counter() - t0)
    write_cache(index.cache_path("corpus"), revision, corpus)
    return corpus


class HybridRetriever:
    """Dense (LlamaIndex's Chroma vector store) + BM25 (bm25s), fused by reciprocal rank."""

    def __init__(self, settings: Settings, index: Index, embedder: OnnxEmbedder, corpus: Corpus) -> None:
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.settings = settings
        self.corpus = corpus
        self.embedder = embedder
        self.store = ChromaVectorStore(chroma_collection=index.collection)
        self._baseline: Any = None

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
            source=r.source, title=r.title, text=r.text, start=r.start, end=r.end,
            score=score, dense_score=dense, bm25_score=bm25, chunk_id=cid,
        )

    def dense(self, query: str, k: int) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity), best first, through the LlamaIndex vector store."""
        from llama_index.core.vector_stores.types import VectorStoreQuery

        vector = self.embedder.embed_one(query).tolist()
        result = self.store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=k))
        return [(cid, self._cos(sim)) for cid, sim in zip(result.ids or [], result.similarities or [])]

    def retrieve(self, query: str, k: int | None = None) -> list[RetrievedContext]:
        k = k or self.settings.top_k
        if not self.corpus.records:
            return []
        rrf: dict[str, float] = {}
        dense: dict[str, float] = {}
        sparse: dict[str, float] = {}
        for rank, (cid, cos) in enumerate(self.dense(query, self.settings.candidate_k)):
            if cid not in self.corpus.by_id:
                continue
            dense[cid] = cos
            rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        for rank, (pos, score) in enumerate(self.corpus.bm25_top(terms(query), self.settings.candidate_k)):
            cid = self.corpus.records[pos].id
            sparse[cid] = score
            rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        ranked = sorted(rrf.items(), key=lambda kv: -kv[1])[:k]
        return [self._context(cid, s, dense.get(cid), sparse.get(cid)) for cid, s in ranked]
