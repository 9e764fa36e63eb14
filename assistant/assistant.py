"""The Assistant: one documents folder, its index, retrieval and answering."""

from __future__ import annotations

import logging
import re
import threading
import time
from pathlib import Path
from typing import Any

from .answer import compose
from .embed import OnnxEmbedder
from .errors import QuestionError
from .index import Index, wipe_local_index
from .retrieve import Corpus, HybridRetriever
from .schema import Answer, RetrievedContext, SyncReport
from .settings import Settings

log = logging.getLogger(__name__)

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_question(question: str, max_chars: int) -> str:
    """Validate a question; raises QuestionError with what to do."""
    if not isinstance(question, str):
        raise QuestionError(f"The question must be text, not {type(question).__name__}.")
    q = " ".join(_CONTROL.sub(" ", question).split())
    if not q:
        raise QuestionError(
            "The question is empty. Ask something about the articles, e.g. "
            '"How many North Korean troops did Russia deploy to Kursk?"'
        )
    if len(q) > max_chars:
        raise QuestionError(
            f"The question is {len(q):,} characters long; the limit is {max_chars:,} "
            "(ASSISTANT_MAX_QUESTION_CHARS). Shorten it to the one thing you want to know."
        )
    return q


class Assistant:
    """Cited question answering over one folder of articles.

    >>> kb = Assistant(docs_dir="seeds", index_dir="/tmp/idx")
    >>> kb.sync()
    >>> kb.ask("How many North Korean troops did Russia deploy to Kursk?").text
    """

    def __init__(
        self,
        docs_dir: str | Path | None = None,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        values = dict(overrides)
        if docs_dir is not None:
            values["docs_dir"] = Path(docs_dir)
        if index_dir is not None:
            values["index_dir"] = Path(index_dir)
        base = settings or Settings()
        self.settings = base.model_copy(update=values) if values else base
        if values:  # re-validate overrides
            self.settings = Settings.model_validate(self.settings.model_dump())
        self.embedder = OnnxEmbedder(self.settings.embed_model, self.settings.embed_batch_size)
        self._lock = threading.RLock()
        self._index: Index | None = None
        self._retriever: HybridRetriever | None = None
        self.last_sync: SyncReport | None = None
        self.last_sync_at: float | None = None

    # --- index -------------------------------------------------------------------
    @property
    def index(self) -> Index:
        with self._lock:
            if self._index is None:
                self._index = Index(self.settings, self.embedder)
            return self._index

    def sync(self, rebuild: bool = False) -> SyncReport:
        """Bring the index in line with the documents folder (incremental by content hash)."""
        with self._lock:
            if rebuild:
                self._index = None
                self._retriever = None
                if self.settings.chroma_host:
                    idx = Index(self.settings, self.embedder)
                    idx.client.delete_collection(self.settings.collection_name())
                else:
                    wipe_local_index(self.settings)
            report = self.index.sync(Path(self.settings.docs_dir))
            self._retriever = None
            self.last_sync, self.last_sync_at = report, time.time()
            return report

    def _ready(self) -> HybridRetriever:
        with self._lock:
            if self._retriever is None:
                if self.index.count() == 0:
                    log.info("index is empty: syncing %s first", self.settings.docs_dir)
                    self.sync()
                corpus = Corpus.load(self.index)
                self._retriever = HybridRetriever(self.settings, self.index, self.embedder, corpus)
            return self._retriever

    @property
    def corpus(self) -> Corpus:
        return self._ready().corpus

    # --- asking ------------------------------------------------------------------
    def search(self, query: str, k: int | None = None) -> list[RetrievedContext]:
        q = clean_question(query, self.settings.max_question_chars)
        retriever = self._ready()
        return retriever.retrieve(retriever.corpus.correct(q), k)

    def ask(self, question: str) -> Answer:
        """Answer a question from the articles, citing every sentence."""
        t0 = time.perf_counter()
        q = clean_question(question, self.settings.max_question_chars)
        retriever = self._ready()
        t1 = time.perf_counter()
        query = retriever.corpus.correct(q)
        contexts = retriever.retrieve(query)
        t2 = time.perf_counter()
        answer = compose(query, contexts, retriever.corpus, self.settings.abstain_threshold)
        answer.question = q
        t3 = time.perf_counter()
        answer.timings = {"prepare": t1 - t0, "retrieve": t2 - t1, "answer": t3 - t2, "total": t3 - t0}
        return answer


_default: dict[str, Assistant] = {}
_default_lock = threading.Lock()


def ask(question: str, settings: Settings | None = None) -> Answer:
    """Answer from the default documents folder (settings/env); the index syncs on first use."""
    settings = settings or Settings()
    key = settings.model_dump_json()
    with _default_lock:
        kb = _default.get(key)
        if kb is None:
            kb = Assistant(settings=settings)
            kb.sync()
            _default[key] = kb
    return kb.ask(question)
