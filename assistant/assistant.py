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
from .errors import AssistantError, ConfigError, DocumentsError, IndexUnavailableError, LLMError, QuestionError
from .filecheck import Changes, Files, check_answer, current_contexts, stale_note
from .followup import check_messages, needs_rewrite, standalone
from .index import CollectionGone, Index, storage_problem
from .index import rebuild as rebuild_index
from .llm import LLMAnswerer, LLMClient, load_prompt
from .redact import redact_url
from .retrieve import Corpus, HybridRetriever, open_corpus
from .schema import Answer, RetrievedContext, SyncReport
from .settings import Settings
from .text import visible

log = logging.getLogger(__name__)

_SURROGATE = re.compile(r"[\ud800-\udfff]")


def clean_question(question: str, max_chars: int) -> str:
    """Validate a question; raises QuestionError with what to do."""
    if not isinstance(question, str):
        raise QuestionError(f"The question must be text, not {type(question).__name__}.")
    bad = _SURROGATE.search(question)
    if bad:  # bytes that were not UTF-8 (the terminal or a file in another encoding), kept as surrogates
        raise QuestionError(
            f"The question has a byte that is not valid UTF-8 (\\x{ord(bad.group()) & 0xFF:02x} at character "
            f"{bad.start() + 1}). Set your terminal to UTF-8 (e.g. LANG=C.UTF-8) or retype the question."
        )
    q = " ".join(visible(question).split())  # control characters and invisible ones removed
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
        docs_dir: str | Path | Settings | None = None,
        index_dir: str | Path | None = None,
        settings: Settings | None = None,
        **overrides: Any,
    ) -> None:
        if isinstance(docs_dir, Settings):  # Assistant(Settings(...)) reads as well as settings=...
            if settings is not None:
                raise TypeError("Assistant() got two Settings: pass one, either first or as settings=")
            docs_dir, settings = None, docs_dir
        if settings is not None and not isinstance(settings, Settings):
            raise ConfigError(f"settings must be a Settings, not {type(settings).__name__}: pass Settings(...) or "
                              "the fields themselves as keyword arguments.")
        values = dict(overrides)
        if docs_dir is not None:
            values["docs_dir"] = docs_dir  # a str or Path; anything else is a ConfigError that says so
        if index_dir is not None:
            values["index_dir"] = index_dir
        self.settings = Settings.load(settings, **values)
        self.embedder = OnnxEmbedder(
            self.settings.embed_model, self.settings.embed_batch_size, self.settings.embed_batch_tokens
        )
        self._lock = threading.RLock()
        self._index: Index | None = None
        self._retriever: HybridRetriever | None = None
        self._revision = ""
        self._llm: LLMClient | None = None
        offline = OfflineAnswerer(self.settings.abstain_threshold)
        self.answerer: Answerer = (LLMAnswerer(self.settings, offline, self.embedder.embed) if self.settings.use_llm()
                                   else offline)
        self.files = Files(Path(self.settings.docs_dir), self.settings.follow_external_links)
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
            docs = Path(self.settings.docs_dir)
            try:
                if rebuild:
                    self._index = None
                    self._retriever = None
                    report = rebuild_index(self.settings, self.embedder, docs)
                else:
                    self._refresh()
                    report = self.index.sync(docs)
            except AssistantError:
                raise
            except Exception as exc:
                raise self._index_failure(exc, during="sync") from None
            if self._retriever is not None and self.index.complete_revision() != self._revision:
                self._retriever = None  # the collection changed: reload the retrieval state on next use
            self.last_sync, self.last_sync_at = report, time.time()
            return report

    def _refresh(self) -> bool:
        """Notice what other processes did since the last question; True when the retrieval state must be
        loaded again. A rebuild (a new on-disk generation) or a dropped collection (another process synced
        with other settings: it is built again) discard it; a sync (a new complete revision) reopens the
        collections so the vector index sees the other process's writes. Costs one small file read and one
        metadata read, and never waits for a running sync."""
        idx = self._index
        if idx is None:
            return True
        if idx.moved():
            log.info("the index was rebuilt by another process: reopening it")
            self._index = self._retriever = None
            return True
        for attempt in range(4):
            try:
                revision = idx.complete_revision()
                break
            except CollectionGone:
                if attempt == 3:
                    log.warning("the collection was dropped by another process: building it again from %s",
                                self.settings.docs_dir)
                    self._index = self._retriever = None
                    return True
                time.sleep(0.25)  # a rebuild on a Chroma server renames its new collection into place
        if self._retriever is not None and revision != self._revision:
            log.info("the index changed (another process synced): reloading")
            idx.reopen()
            return True
        return self._retriever is None

    def _prefetch(self) -> None:
        """Start the query encoder loading in a thread (native code: it loads while Chroma opens its index and
        the retrieval state is mapped). At 100k chunks, overlapping it (and the LlamaIndex import, which answering
        no longer needs) took a new process's first answer from 1.87 s to 1.58 s. A failure here is only logged:
        the same step runs again on the question's path and raises there."""

        def load_encoder() -> None:
            try:
                self.embedder._load()
            except Exception as exc:
                log.debug("prefetching the embedding model failed (%s); the question will load it", exc)

        threading.Thread(target=load_encoder, name="assistant-load_encoder").start()

    def _load(self) -> HybridRetriever:
        self._prefetch()
        index = self.index
        if index.empty():
            log.info("index is empty: syncing %s first", self.settings.docs_dir)
            self.sync()
            index = self.index
            if index.empty():
                raise DocumentsError(
                    f"No articles are indexed: the documents folder {str(self.settings.docs_dir)!r} has no "
                    "readable .txt/.md articles. Add some and run assistant ingest."
                )
        corpus = open_corpus(index)
        self._retriever = HybridRetriever(self.settings, index, self.embedder, corpus)
        self._revision = corpus.revision
        return self._retriever

    def _ready(self) -> HybridRetriever:
        """The retriever for the last complete revision of the index. While another process is writing, a
        reload can fail; then the state already loaded keeps answering (every citation is checked against
        the files anyway), and a process with none yet tries again a few times."""
        with self._lock:
            for attempt in range(6):
                try:
                    if not self._refresh() and self._retriever is not None:
                        return self._retriever
                    return self._load()
                except AssistantError:
                    raise
                except Exception as exc:
                    if self._retriever is not None:
                        log.info("the index is being written (%s): answering from the state loaded before", exc)
                        return self._retriever
                    if attempt == 5:
                        raise self._index_failure(exc) from None
                    time.sleep(0.1 * 2**attempt)
            raise AssertionError("unreachable")

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
            url = self.settings.llm_base_url
            return f"LLM {self.settings.llm_model} at {redact_url(url) if url else 'OpenAI'}"  # no password or key
        return "offline (no LLM)"

    def _retrieve(self, question: str) -> tuple[str, str, Evidence, dict[str, float], Changes]:
        t0 = time.perf_counter()
        q = clean_question(question, self.settings.max_question_chars)
        retriever = self._ready()
        t1 = time.perf_counter()
        query = retriever.corpus.correct(q)
        changes = Changes()

        def current(query: str, k: int | None = None) -> list[RetrievedContext]:
            """Retrieved chunks still in their files as they are now (another process may be ahead of us)."""
            return current_contexts(retriever.retrieve(query, k), self.files, changes)

        for attempt in range(3):
            try:
                contexts = current(query)
                break
            except Exception as exc:  # a writer in another process changed what the search was reading
                if attempt == 2:
                    raise self._index_failure(exc) from None
                time.sleep(0.1)
        evidence = Evidence(contexts, retriever.corpus, retriever.query_vector(query), current, retriever.query_vector)
        t2 = time.perf_counter()
        return q, query, evidence, {"prepare": t1 - t0, "retrieve": t2 - t1}, changes

    def _index_failure(self, exc: Exception, during: str = "search") -> IndexUnavailableError:
        s = self.settings
        what = "during the sync" if during == "sync" else "while answering"
        if s.chroma_host:
            after = ("What was written is kept: start the server again and re-run assistant ingest to finish."
                     if during == "sync" else "Check that it is running and ask again.")
            return IndexUnavailableError(
                f"The Chroma server at {s.chroma_host}:{s.chroma_port} stopped answering {what} "
                f"({type(exc).__name__}: {exc}). {after}"
            )
        problem = storage_problem(s.resolved_index_dir(), exc)  # a full or read-only disk: rebuilding cannot help
        if problem:
            return IndexUnavailableError(problem)
        return IndexUnavailableError(
            f"The index at {s.resolved_index_dir()} failed {what} ({type(exc).__name__}: {exc}). "
            "If this repeats, rebuild it with: assistant ingest --rebuild (the current index is kept until the "
            "new one is complete)."
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
        q, query, evidence, timings, changes = self._retrieve(question)
        t0 = time.perf_counter()
        answer: Answer | None = None
        for item in self.answerer.stream(q, query, evidence):
            if isinstance(item, Answer):
                answer = item
            else:
                yield item
        assert answer is not None
        answer = check_answer(answer, self.files, changes)
        if changes.gone:
            answer.notes.append(stale_note(changes.gone))
        timings["answer"] = time.perf_counter() - t0
        timings["total"] = timings["prepare"] + timings["retrieve"] + timings["answer"]
        answer.timings = {**answer.timings, **timings}
        yield answer

    def rewrite(self, messages: list[dict[str, str]]) -> str:
        """The last user message as a standalone question, using the conversation before it. Only a question
        that depends on the conversation (see followup.py) is rewritten: with the LLM when there is one,
        else (or if it fails) by the offline rules."""
        check_messages(messages)
        question = messages[-1]["content"]
        users = [m["content"] for m in messages[:-1] if m.get("role") == "user" and m.get("content")]
        if not users or not needs_rewrite(question):
            return question
        if self.settings.use_llm():
            history = [m for m in messages[:-1] if m.get("content")]
            convo = "\n".join(f"{m['role']}: {' '.join(m['content'].split())[:500]}" for m in history[-6:])
            prompt = load_prompt("rewrite.txt").format(history=convo, question=question)
            try:
                out = self.llm.complete([{"role": "user", "content": prompt}], max_tokens=80).strip()
                out = out.splitlines()[0].strip().strip('"') if out else ""
                if 3 <= len(out) <= self.settings.max_question_chars:
                    return out
            except LLMError as exc:
                log.warning("question rewrite failed, using the offline rules: %s", exc)
        return standalone([*users, question])

    def chat(self, messages: list[dict[str, str]]) -> Answer:
        """Answer the last user message of a conversation; follow-ups are rewritten first."""
        check_messages(messages)
        standalone = self.rewrite(messages)
        answer = self.ask(standalone)
        answer.question = messages[-1]["content"]
        if standalone != messages[-1]["content"]:
            answer.standalone_question = standalone
        return answer


_default: dict[str, Assistant] = {}
_default_lock = threading.Lock()


def ask(question: str, settings: Settings | None = None) -> Answer:
    """Answer from the default documents folder (settings/env); the index syncs on first use."""
    settings = settings or Settings.load()
    key = settings.model_dump_json()
    with _default_lock:
        kb = _default.get(key)
        if kb is None:
            kb = Assistant(settings=settings)
            kb.sync()
            _default[key] = kb
    return kb.ask(question)
