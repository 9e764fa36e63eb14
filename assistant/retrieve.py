"""Hybrid retrieval through LlamaIndex: dense (Chroma vector store) + BM25 (bm25s), fused by RRF."""

from __future__ import annotations

import logging
import math
import re
from collections import Counter
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from .embed import OnnxEmbedder, llama_index_embedding
from .index import Index, get_all
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
    return stem_words(words)


@dataclass(frozen=True)
class ChunkRecord:
    id: str
    source: str
    title: str
    text: str
    start: int
    end: int


class Corpus:
    """In-memory view of the indexed chunks: texts for BM25 and term statistics."""

    def __init__(self, records: list[ChunkRecord]) -> None:
        self.records = records
        self.by_id = {r.id: r for r in records}
        df: Counter[str] = Counter()
        for r in records:
            df.update(set(terms(r.text)))
        self.df = df
        self.words = {w for r in records for w in _WORD.findall(r.text.lower())}
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

    @classmethod
    def load(cls, index: Index) -> Corpus:
        records = [
            ChunkRecord(
                id=cid,
                source=str(meta["source"]),
                title=str(meta.get("title", "")),
                text=doc or "",
                start=int(meta["start"]),
                end=int(meta["end"]),
            )
            for cid, meta, doc in get_all(index.collection, ["metadatas", "documents"])
        ]
        records.sort(key=lambda r: (r.source, r.start))
        return cls(records)


class HybridRetriever:
    """Dense + BM25 retrieval, both as LlamaIndex retrievers, fused by reciprocal rank."""

    def __init__(self, settings: Settings, index: Index, embedder: OnnxEmbedder, corpus: Corpus) -> None:
        from llama_index.core import VectorStoreIndex
        from llama_index.core.schema import BaseNode, TextNode
        from llama_index.retrievers.bm25 import BM25Retriever
        from llama_index.vector_stores.chroma import ChromaVectorStore

        self.settings = settings
        self.corpus = corpus
        store = ChromaVectorStore(chroma_collection=index.collection)
        vindex = VectorStoreIndex.from_vector_store(store, embed_model=llama_index_embedding(embedder))
        self.dense = vindex.as_retriever(similarity_top_k=settings.candidate_k)
        self.bm25: Any = None
        logging.getLogger("bm25s").setLevel(logging.WARNING)
        if corpus.records:
            nodes: list[BaseNode] = [TextNode(text=r.text, id_=r.id) for r in corpus.records]
            self.bm25 = BM25Retriever.from_defaults(
                nodes=nodes,
                stemmer=_stemmer(),
                language="en",
                similarity_top_k=min(settings.candidate_k, len(nodes)),
            )

    def dense_only(self, query: str, k: int) -> list[RetrievedContext]:
        hits = self.dense.retrieve(query)[:k]
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

    def retrieve(self, query: str, k: int | None = None) -> list[RetrievedContext]:
        k = k or self.settings.top_k
        if not self.corpus.records:
            return []
        rrf: dict[str, float] = {}
        dense: dict[str, float] = {}
        sparse: dict[str, float] = {}
        for rank, hit in enumerate(self.dense.retrieve(query)):
            cid = hit.node.node_id
            if cid not in self.corpus.by_id:
                continue
            dense[cid] = self._cos(hit.score)
            rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        if self.bm25 is not None and terms(query):
            for rank, hit in enumerate(self.bm25.retrieve(query)):
                if not hit.score or hit.score <= 0:
                    continue
                cid = hit.node.node_id
                sparse[cid] = float(hit.score)
                rrf[cid] = rrf.get(cid, 0.0) + 1.0 / (self.settings.rrf_k + rank + 1)
        ranked = sorted(rrf.items(), key=lambda kv: -kv[1])[:k]
        return [self._context(cid, s, dense.get(cid), sparse.get(cid)) for cid, s in ranked]
