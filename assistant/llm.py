"""LLM-backed answers through the openai client (OpenAI or any OpenAI-compatible server).

The model's reply is never trusted as is: every sentence is verified against the sources it cites
(see citations.py) and unsupported sentences are removed before the answer is shown.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from .answer import ABSTAIN_TEXT, Evidence, OfflineAnswerer
from .citations import verify_answer
from .errors import ConfigError, LLMError
from .schema import Answer, RetrievedContext
from .settings import PROMPTS_DIR, Settings

log = logging.getLogger(__name__)

_NO_ANSWER = re.compile(r"(don'?t|do not|does not|doesn'?t) (cover|answer|say|mention)|no information", re.I)


@lru_cache(maxsize=8)
def load_prompt(name: str) -> str:
    path = PROMPTS_DIR / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Prompt file {path} is missing ({exc.strerror}); restore it from the repository.") from None


@lru_cache(maxsize=8)
def _encoding(model: str) -> Any:
    import tiktoken

    try:
        return tiktoken.encoding_for_model(model)
    except KeyError:
        return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str, model: str) -> int:
    return len(_encoding(model).encode_ordinary(text))


def pack_sources(
    question: str, contexts: list[RetrievedContext], settings: Settings
) -> tuple[str, list[RetrievedContext]]:
    """Number the sources and keep as many as fit the model's window (counted with tiktoken)."""
    model = settings.llm_model
    fixed = count_tokens(load_prompt("system.txt") + load_prompt("question.txt") + question, model)
    budget = settings.llm_context_window - settings.llm_max_tokens - fixed - 64
    blocks: list[str] = []
    kept: list[RetrievedContext] = []
    for ctx in contexts:
        block = f"[{len(kept) + 1}] ({ctx.source} — {ctx.title[:80]}) {' '.join(ctx.text.split())}"
        cost = count_tokens(block, model) + 2
        if cost > budget:
            break
        budget -= cost
        blocks.append(block)
        kept.append(ctx)
    return "\n\n".join(blocks), kept


def messages_for(question: str, sources: str) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": load_prompt("system.txt")},
        {"role": "user", "content": load_prompt("question.txt").format(sources=sources, question=question)},
    ]


class LLMClient:
    """A thin wrapper over ``openai.OpenAI`` with errors that say what to do."""

    def __init__(self, settings: Settings) -> None:
        key = settings.llm_key()
        if not settings.llm_base_url and not key:
            raise ConfigError(
                "No LLM configured – set ASSISTANT_LLM_BASE_URL (e.g. http://127.0.0.1:8080/v1 for a local "
                "OpenAI-compatible server) or OPENAI_API_KEY, or answer offline with --answerer offline "
                "(ASSISTANT_ANSWERER=offline)."
            )
        from openai import OpenAI

        self.settings = settings
        self.where = settings.llm_base_url or "OpenAI"
        self.client = OpenAI(
            base_url=settings.llm_base_url or None,
            api_key=key or "not-needed",
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
        )

    def _error(self, exc: Exception) -> LLMError:
        import openai

        s = self.settings
        tries = s.llm_max_retries + 1
        if isinstance(exc, openai.APITimeoutError):
            msg = (f"The LLM at {self.where} did not answer within {s.llm_timeout:g}s ({tries} tries). "
                   "Raise ASSISTANT_LLM_TIMEOUT, use a smaller model, or answer offline.")
        elif isinstance(exc, openai.APIConnectionError):
            msg = (f"Cannot connect to the LLM at {self.where} ({tries} tries). Is the server running? "
                   "Start it, fix ASSISTANT_LLM_BASE_URL, or answer offline (--answerer offline).")
        elif isinstance(exc, openai.AuthenticationError):
            msg = f"The LLM at {self.where} rejected the API key. Check OPENAI_API_KEY / ASSISTANT_LLM_API_KEY."
        elif isinstance(exc, openai.RateLimitError):
            msg = f"The LLM at {self.where} is rate-limiting us (HTTP 429) after {tries} tries. Wait and retry."
        elif isinstance(exc, openai.NotFoundError):
            msg = (f"The LLM at {self.where} does not know the model {s.llm_model!r} (HTTP 404). "
                   "Set ASSISTANT_LLM_MODEL to a model it serves.")
        elif isinstance(exc, openai.APIStatusError):
            msg = f"The LLM at {self.where} failed with HTTP {exc.status_code} after {tries} tries. Retry later."
        else:
            msg = f"The LLM at {self.where} failed: {type(exc).__name__}: {exc}"
        return LLMError(msg)

    def complete(self, messages: list[dict[str, str]], max_tokens: int | None = None) -> str:
        try:
            resp = self.client.chat.completions.create(
                model=self.settings.llm_model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.settings.llm_temperature,
                max_tokens=max_tokens or self.settings.llm_max_tokens,
            )
        except Exception as exc:
            raise self._error(exc) from None
        if not resp.choices:
            return ""
        return resp.choices[0].message.content or ""

    def stream(self, messages: list[dict[str, str]]) -> Iterator[str]:
        try:
            events = self.client.chat.completions.create(
                model=self.settings.llm_model,
                messages=messages,  # type: ignore[arg-type]
                temperature=self.settings.llm_temperature,
                max_tokens=self.settings.llm_max_tokens,
                stream=True,
            )
            for event in events:  # type: ignore[union-attr]
                choices = getattr(event, "choices", None)
                if choices and choices[0].delta and choices[0].delta.content:
                    yield choices[0].delta.content
        except LLMError:
            raise
        except Exception as exc:
            raise self._error(exc) from None


def verified_answer(question: str, reply: str, contexts: list[RetrievedContext], settings: Settings) -> Answer:
    """Turn a raw LLM reply into an Answer whose every kept sentence is verified."""
    answer = Answer(question=question, text="", answerer=f"llm:{settings.llm_model}", contexts=contexts)
    reply = reply.strip()
    if not reply:
        answer.text, answer.abstained = ABSTAIN_TEXT, True
        answer.notes.append("The LLM returned an empty reply.")
        return answer
    text, citations, checks = verify_answer(
        reply, contexts, settings.keep_unsupported, settings.llm_attribute_uncited
    )
    answer.sentences = checks
    kept = sum(c.supported for c in checks)
    if kept < len(checks):
        answer.notes.append(f"Removed {len(checks) - kept} of {len(checks)} sentences the sources do not support.")
    if not citations:
        answer.text, answer.abstained = ABSTAIN_TEXT, True
        if not _NO_ANSWER.search(reply):
            answer.notes.append("No sentence of the LLM's reply was supported by the sources it cited.")
        return answer
    answer.text, answer.citations = text, citations
    return answer


class LLMAnswerer:
    """Answers written by an LLM through the openai client, every sentence verified against its sources.

    When the LLM fails and ``llm_fallback_offline`` is on, the offline answerer answers instead and the
    answer says so.
    """

    def __init__(self, settings: Settings, offline: OfflineAnswerer | None = None) -> None:
        self.settings = settings
        self.name = f"llm:{settings.llm_model}"
        self.offline = offline or OfflineAnswerer(settings.abstain_threshold)
        self._client: LLMClient | None = None

    @property
    def client(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient(self.settings)
        return self._client

    def stream(self, question: str, query: str, evidence: Evidence) -> Iterator[str | Answer]:
        t0 = time.perf_counter()
        sources, packed = pack_sources(query, evidence.contexts, self.settings)
        parts: list[str] = []
        timings: dict[str, float] = {}
        try:
            for piece in self.client.stream(messages_for(query, sources)):
                if not parts:
                    timings["first_token"] = time.perf_counter() - t0
                parts.append(piece)
                yield piece
            timings["generate"] = time.perf_counter() - t0
            answer = verified_answer(question, "".join(parts), packed, self.settings)
            answer.contexts = evidence.contexts
        except LLMError as exc:
            if not self.settings.llm_fallback_offline:
                raise
            log.warning("LLM failed, answering offline: %s", exc)
            answer = self.offline.answer(query, evidence)
            answer.question = question
            answer.notes.append(f"{exc} This answer comes from the offline answerer instead.")
            yield ("\n" if parts else "") + answer.text
        answer.timings.update(timings)
        yield answer
