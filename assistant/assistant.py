"""The Assistant: one documents folder, its index, retrieval and answering."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .answer import Answerer, Evidence, OfflineAnswerer
from .embed import OnnxEmbedder
from .errors import IndexUnavailableError, LLMError, QuestionError
from .index import Index, wipe_local_index
from .llm import LLMAnswerer, LLMClient, load_prompt
from .retrieve import Corpus, HybridRetriever, open_corpus
from .schema import Answer, RetrievedContext, SyncReport
from .settings import Settings
from .text import STOPWORDS

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
        self._revision = ""
        self._llm: LLMClient | None = None
        offline = OfflineAnswerer(self.settings.abstain_threshold)
        self.answerer: Answerer = (LLMAnswerer(self.settings, offline, self.embedder.embed) if self.settings.use_llm()
                                   else offline)
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
                    idx.client.delete_collection(self.settings.sentence_collection_name())
                else:
                    wipe_local_index(self.settings)
            report = self.index.sync(Path(self.settings.docs_dir))
            if self._retriever is not None and self.index.revision() != self._revision:
                self._retriever = None  # the collection changed: reload the retrieval state on next use
            self.last_sync, self.last_sync_at = report, time.time()
            return report

    def _ready(self) -> HybridRetriever:
        with self._lock:
            if self._retriever is None:
                index = self.index
                try:
                    empty = index.count() == 0
                except Exception as exc:
                    raise self._index_failure(exc) from None
                if empty:
                    log.info("index is empty: syncing %s first", self.settings.docs_dir)
                    self.sync()
                try:
                    corpus = open_corpus(index)
                    self._revision = corpus.revision
                    self._retriever = HybridRetriever(self.settings, index, self.embedder, corpus)
                except Exception as exc:
                    raise self._index_failure(exc) from None
            return self._retriever

    def prepare(self) -> None:
        """Load (or build and save) the retrieval state now, so the first question is fast."""
        self._ready()

    @property
    def corpus(self) -> Corpus:
        return self._ready().corpus

    # --- asking ------------------------------------------------------------------
    def search(self, query: str, k: int | None = None) -> list[RetrievedContext]:
        q = clean_question(query, self.settings.max_question_chars)
        retriever = self._ready()
        return retriever.retrieve(retriever.corpus.correct(q), k)

    @property
    def llm(self) -> LLMClient:
        with self._lock:
            if self._llm is None:
                self._llm = LLMClient(self.settings)
            return self._llm

    def describe_answerer(self) -> str:
        if self.settings.use_llm():
            return f"LLM {self.settings.llm_model} at {self.settings.llm_base_url or 'OpenAI'}"
        return "offline (no LLM)"

    def _retrieve(self, question: str) -> tuple[str, str, Evidence, dict[str, float]]:
        t0 = time.perf_counter()
        q = clean_question(question, self.settings.max_question_chars)
        retriever = self._ready()
        t1 = time.perf_counter()
        query = retriever.corpus.correct(q)
        try:
            contexts = retriever.retrieve(query)
            evidence = Evidence(contexts, retriever.corpus, retriever.query_vector(query), retriever.retrieve,
                                retriever.query_vector)
        except Exception as exc:
            raise self._index_failure(exc) from None
        t2 = time.perf_counter()
        return q, query, evidence, {"prepare": t1 - t0, "retrieve": t2 - t1}

    def _index_failure(self, exc: Exception) -> IndexUnavailableError:
        s = self.settings
        if s.chroma_host:
            return IndexUnavailableError(
                f"The Chroma server at {s.chroma_host}:{s.chroma_port} stopped answering "
                f"({type(exc).__name__}: {exc}). Check that it is running and ask again."
            )
        return IndexUnavailableError(
            f"Searching the index at {s.resolved_index_dir()} failed ({type(exc).__name__}: {exc}). "
            "Rebuild it with: assistant ingest --rebuild"
        )

    def ask(self, question: str) -> Answer:
        """Answer a question from the articles, citing every sentence."""
        answer: Answer | None = None
        for item in self.stream(question):
            if isinstance(item, Answer):
                answer = item
        assert answer is not None
        return answer

    def stream(self, question: str) -> Iterator[str | Answer]:
        """Yield the answer text as it arrives, then the verified Answer as the last item.

        The one answer path: ``ask`` and ``chat`` go through it too."""
        q, query, evidence, timings = self._retrieve(question)
        t0 = time.perf_counter()
        answer: Answer | None = None
        for item in self.answerer.stream(q, query, evidence):
            if isinstance(item, Answer):
                answer = item
            else:
                yield item
        assert answer is not None
        timings["answer"] = time.perf_counter() - t0
        timings["total"] = timings["prepare"] + timings["retrieve"] + timings["answer"]
        answer.timings = {**answer.timings, **timings}
        yield answer

    def rewrite(self, messages: list[dict[str, str]]) -> str:
        """The last user message as a standalone question, using the conversation before it."""
        question = messages[-1]["content"]
        history = [m for m in messages[:-1] if m.get("content")]
        if not history:
            return question
        if self.settings.use_llm():
            convo = "\n".join(f"{m['role']}: {' '.join(m['content'].split())[:500]}" for m in history[-6:])
            prompt = load_prompt("rewrite.txt").format(history=convo, question=question)
            try:
                out = self.llm.complete([{"role": "user", "content": prompt}], max_tokens=80).strip()
                out = out.splitlines()[0].strip().strip('"') if out else ""
                if 3 <= len(out) <= self.settings.max_question_chars:
                    return out
            except LLMError as exc:
                log.warning("question rewrite failed, using the heuristic: %s", exc)
        return rewrite_heuristic(question, [m["content"] for m in history if m.get("role") == "user"])

    def chat(self, messages: list[dict[str, str]]) -> Answer:
        """Answer the last user message of a conversation; follow-ups are rewritten first."""
        if not messages or messages[-1].get("role") != "user":
            raise QuestionError("chat() needs a list of messages ending with a user message.")
        standalone = self.rewrite(messages)
        answer = self.ask(standalone)
        answer.question = messages[-1]["content"]
        if standalone != messages[-1]["content"]:
            answer.standalone_question = standalone
        return answer


_FOLLOW_UP = re.compile(
    r"^(and|but|also|what about|how about|so|then)\b"
    r"|\b(they|them|their|it|its|those|these|that|he|she|his|her|there)\b",
    re.IGNORECASE,
)


def rewrite_heuristic(question: str, previous_questions: list[str]) -> str:
    """Offline follow-up rewriting: carry the previous question's topic words into a short follow-up."""
    if not previous_questions:
        return question
    words = question.split()
    if len(words) > 12 and not _FOLLOW_UP.search(question):
        return question
    if not _FOLLOW_UP.search(question) and len(words) > 6:
        return question
    have = {w.lower().strip("?,.!") for w in words}
    carried = [
        w.strip("?,.!")
        for w in previous_questions[-1].split()
        if w.lower().strip("?,.!") not in have and w.lower().strip("?,.!") not in STOPWORDS
        and len(w.strip("?,.!")) > 2
    ]
    base = re.sub(r"^(and|but|also|so|then)\s+", "", question.strip(), flags=re.IGNORECASE)
    return f"{base.rstrip('?')} ({' '.join(carried)})?" if carried else question


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
