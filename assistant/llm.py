"""LLM-backed answers through the openai client (OpenAI or any OpenAI-compatible server).

The model's reply is never trusted as is: every sentence is verified against the sources it cites
(see citations.py) and unsupported sentences are removed before the answer is shown.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Generator, Iterator
from contextvars import ContextVar
from functools import lru_cache
from typing import Any

from .answer import ABSTAIN_TEXT, Candidate, Evidence, OfflineAnswerer, Scored, score
from .citations import QUOTED, REFUSED, CitedAnswer, SentenceStream, Source
from .errors import ConfigError, LLMError
from .redact import redact, redact_url
from .schema import Answer, RetrievedContext
from .settings import PROMPTS_DIR, Settings
from .text import is_broad, kind_match, plural

log = logging.getLogger(__name__)
_MARKER = re.compile(r"\[\d+\]")



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


def hard_refusal(scored: Scored) -> bool:
    """The question's key words are unknown to the articles, or every retrieved sentence breaks one of its
    constraints (a year, quarter, identifier, name or qualifier it asks about, or the figure a how-many question
    needs): the offline answerer refuses, and no model is asked. (Violating sentences rank last.)"""
    return bool(scored.unknown) or (bool(scored.cands) and bool(scored.cands[0].violations))


def sentence_sources(query: str, evidence: Evidence, settings: Settings, scored: Scored | None = None
                     ) -> list[Source]:
    """The evidence the model sees: the retrieved chunks' sentences the offline selector ranks highest (at most
    ``llm_max_sentences``, packed to the context window with tiktoken), numbered in reading order and
    grouped by article, so that a marker names one exact sentence."""
    # the offline selector's ranking, best evidence first; a sentence that breaks the question's constraints
    # ("Ukrainian soldiers" for a question about Russian ones, no figure for "how many") cannot answer it
    cands = [c for c in (scored or score(query, evidence)).cands if not c.violations]
    article_rank: dict[str, int] = {}
    for c in sorted(cands, key=lambda c: c.rank):
        article_rank.setdefault(c.ctx.source, len(article_rank))
    model = settings.llm_model
    fixed = count_tokens(load_prompt("system.txt") + load_prompt("question.txt"), model) + 200
    budget = settings.llm_context_window - settings.llm_max_tokens - fixed
    kept: list[Candidate] = []
    for c in cands:
        if len(kept) >= settings.llm_max_sentences or c.text.rstrip().endswith("?"):
            continue
        cost = count_tokens(c.text, model) + 6
        if cost > budget:
            continue
        budget -= cost
        kept.append(c)
    kept.sort(key=lambda c: (article_rank[c.ctx.source], c.start))
    return [Source(i, c.ctx.source, c.ctx.title, c.ctx.date, c.start, c.end, c.text, c.ctx.score)
            for i, c in enumerate(kept, start=1)]


def render_sources(sources: list[Source]) -> str:
    """Numbered sentences grouped by article, each article with its title (and date when known)."""
    blocks: list[str] = []
    current = None
    for s in sources:
        if s.source != current:
            current = s.source
            title = " ".join(s.title.split())[:100] or s.source
            blocks.append(f"\n## {title}" + (f" ({s.date})" if s.date else ""))
        blocks.append(f"[{s.n}] {' '.join(s.text.split())}")
    return "\n".join(blocks).strip()


def messages_for(question: str, sources: str, template: str = "question.txt") -> list[dict[str, str]]:
    return [
        {"role": "system", "content": load_prompt("system.txt")},
        {"role": "user", "content": load_prompt(template).format(sources=sources, question=question)},
    ]


def overview_sources(overview: Answer) -> list[Source]:
    """What the model sees for a broad question: the offline overview's sentences (central, from different
    articles, in article-date order), so that its summary can cite every article the overview found."""
    return [Source(i, c.source, c.title, c.date, c.start, c.end, c.quote, c.score)
            for i, c in enumerate(overview.citations, start=1)]


class _NotOpenAI(Exception):
    """The endpoint answered, but not like an OpenAI-compatible server."""


def _short(text: str, n: int = 160) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[:n] + "…"


CHARS_PER_TOKEN = 8  # a reply longer than this many characters per token of llm_max_tokens is cut
BYTES_PER_TOKEN = 1024  # no response is read past this many bytes per token of max_tokens (and READ_SLACK)
READ_SLACK = 64 * 1024


def reply_cap(max_tokens: int) -> int:
    """The characters of a reply we take at most: a server that ignores max_tokens (or streams one endless
    word) cannot make us split and verify without end."""
    return CHARS_PER_TOKEN * max_tokens


def read_cap(max_tokens: int) -> int:
    """The bytes of one HTTP response from the LLM we read at most, so that what a server sends cannot fill
    memory (one endless line, events that carry no text, a huge JSON body). A token of the reply is at most
    CHARS_PER_TOKEN characters, which JSON writes in at most 12 bytes each ("\\ud83d\\ude00"), and a streamed
    token comes in an event of its own with a few hundred bytes of framing ('data: {"id": …, "choices":
    [{"delta": …}]}'): well within BYTES_PER_TOKEN; READ_SLACK is for the rest (ids, usage, an error page).
    Replies are asked for uncompressed, so these are the bytes held too."""
    return BYTES_PER_TOKEN * max_tokens + READ_SLACK


class _Expired(BaseException):
    """The answer's deadline passed. A BaseException, so that the openai client's retry loop (which retries
    on any Exception) lets it through instead of sending the request again."""


class _Refused(BaseException):
    """A response we stop reading (a BaseException, like _Expired, so that it is not sent again): ``why``
    completes "The LLM at URL …"."""

    def __init__(self, why: str) -> None:
        super().__init__(why)
        self.why = why


class _TooLarge(_Refused):
    """A response past read_cap: its connection is closed. ``head`` is what was read of a successful reply
    that is not a stream (a reply cut inside its text still gives that text), else empty."""

    def __init__(self, limit: int, max_tokens: int, head: bytes, ctype: str) -> None:
        super().__init__(f"sent more than {limit:,} bytes for a reply of at most {max_tokens} tokens (we read "
                         f"{BYTES_PER_TOKEN:,} bytes a token and {READ_SLACK // 1024} KiB more), so its connection "
                         "was closed. The server ignores max_tokens or is not an LLM server: check "
                         "ASSISTANT_LLM_BASE_URL, or answer offline (--answerer offline).")
        self.limit, self.head, self.ctype = limit, head, ctype


@lru_cache(maxsize=1)
def _capped_stream() -> type:
    """The class of a response body that stops at read_cap bytes (made on first use: httpx2, the openai
    client's HTTP library, is imported only when an LLM is used)."""
    from httpx2 import SyncByteStream

    class Capped(SyncByteStream):
        def __init__(self, stream: SyncByteStream, max_tokens: int, ctype: str, keep: bool) -> None:
            self.stream, self.max_tokens, self.ctype, self.keep = stream, max_tokens, ctype, keep
            self.limit, self.read, self.head = read_cap(max_tokens), 0, bytearray()

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.stream:
                room = self.limit - self.read
                self.read += len(chunk)
                if self.keep:
                    self.head += chunk[:room]
                if self.read > self.limit:  # the caller closes the response, and so its connection
                    raise _TooLarge(self.limit, self.max_tokens, bytes(self.head), self.ctype)
                yield chunk

        def close(self) -> None:
            self.stream.close()

    return Capped


class _Deadline:
    """The time one answer from the LLM may take. When it passes, every connection the answer opened is shut
    down, so that a read waiting on a server that streams without end, or drips a word every few seconds (each
    within llm_timeout), returns at once; a request not yet sent is not sent, and one sent waits at most the
    time left (a reused connection is watched only once the reply's headers come)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        """Seconds until the deadline."""
        return max(0.0, self.end - time.monotonic())

    def passed(self) -> bool:
        return self.expired or self.left() <= 0

    def check(self) -> None:
        if self.passed():
            raise _Expired

    def watch(self, stream: Any) -> None:
        """Shut this network stream (an httpcore stream of our request) down when the deadline passes."""
        try:
            sock = stream.get_extra_info("socket") if stream is not None else None
        except Exception:  # a transport without sockets: the deadline is still checked between reads
            sock = None
        if not isinstance(sock, socket.socket):
            return
        with self._lock:
            if not self.expired:
                self._sockets.append(sock)
                return
        _shut(sock)

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: a connection opened for our request (before any reply has come)."""
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            self.watch(info.get("return_value"))

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _shut(sock)

    def cancel(self) -> None:
        self._timer.cancel()
        with self._lock:
            self._sockets = []


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


# the deadline and max_tokens of the request this thread is sending (the HTTP client's hooks run in the
# caller's thread)
_CURRENT: ContextVar[tuple[_Deadline, int] | None] = ContextVar("assistant_llm_deadline", default=None)


@contextlib.contextmanager
def _under(deadline: _Deadline, max_tokens: int) -> Iterator[None]:
    token = _CURRENT.set((deadline, max_tokens))
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _on_request(request: Any) -> None:
    current = _CURRENT.get()
    if current is None:
        return
    deadline = current[0]
    deadline.check()  # a retry after the deadline is not sent
    extensions = {**request.extensions, "trace": deadline.trace}
    timeout = extensions.get("timeout")
    if isinstance(timeout, dict):  # each wait (for the reply's headers too) ends by the deadline
        left = deadline.left()
        extensions["timeout"] = {k: left if v is None else min(v, left) for k, v in timeout.items()}
    request.extensions = extensions
    request.headers["Accept-Encoding"] = "identity"  # the bytes read are the bytes held (see read_cap)


def _on_response(response: Any) -> None:
    current = _CURRENT.get()
    if current is None:
        return
    deadline, max_tokens = current
    deadline.watch(response.extensions.get("network_stream"))
    encoding = response.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):  # a few kilobytes could inflate past any limit on what we read
        raise _Refused(f"compressed its reply (Content-Encoding: {encoding}) although the request asked for it "
                       "uncompressed (Accept-Encoding: identity). Reconfigure the server or the proxy in front "
                       "of it to honour that, or answer offline (--answerer offline).")
    ctype = response.headers.get("content-type", "")
    keep = response.is_success and "event-stream" not in ctype
    response.stream = _capped_stream()(response.stream, max_tokens, ctype, keep)


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
        from openai import DefaultHttpxClient, OpenAI

        self.settings = settings
        self.where = redact_url(settings.llm_base_url) if settings.llm_base_url else "OpenAI"  # shown, so no secrets
        self._key = key
        self.client = OpenAI(
            base_url=settings.llm_base_url or None,
            api_key=key or "not-needed",
            timeout=settings.llm_timeout,
            max_retries=settings.llm_max_retries,
            # the hooks let an answer's deadline close the connections it uses (see _Deadline)
            http_client=DefaultHttpxClient(event_hooks={"request": [_on_request], "response": [_on_response]}),
        )

    def _scrubbed(self, text: str) -> str:
        """Text from the server or the HTTP client, as a message may show it: URLs through redact_url, and
        never the API key."""
        return redact(str(text), self._key, self.settings.llm_base_url)

    def _too_slow(self) -> LLMError:
        return LLMError(f"The LLM at {self.where} took longer than {self.settings.llm_deadline:g}s to answer "
                        "(ASSISTANT_LLM_DEADLINE), so its connection was closed. Raise ASSISTANT_LLM_DEADLINE, use "
                        "a faster model, or answer offline (--answerer offline).")

    def _error(self, exc: Exception) -> LLMError:
        import openai

        s = self.settings
        tries = plural(s.llm_max_retries + 1, "try", "tries")
        if isinstance(exc, openai.APITimeoutError):
            msg = (f"The LLM at {self.where} did not answer within {s.llm_timeout:g}s ({tries}). "
                   "Raise ASSISTANT_LLM_TIMEOUT, use a smaller model, or answer offline.")
        elif isinstance(exc, openai.APIConnectionError):
            msg = (f"Cannot connect to the LLM at {self.where} ({tries}). Is the server running? "
                   "Start it, fix ASSISTANT_LLM_BASE_URL, or answer offline (--answerer offline).")
        elif isinstance(exc, openai.AuthenticationError):
            msg = f"The LLM at {self.where} rejected the API key. Check OPENAI_API_KEY / ASSISTANT_LLM_API_KEY."
        elif isinstance(exc, openai.RateLimitError):
            msg = f"The LLM at {self.where} is rate-limiting us (HTTP 429) after {tries}. Wait and retry."
        elif isinstance(exc, openai.NotFoundError):
            url = redact_url(s.llm_base_url or "").rstrip("/")
            if url and not re.search(r"/v\d+$", url) and "model" not in str(exc).lower():
                msg = (f"There is no OpenAI-compatible API at {self.where} (HTTP 404). Servers such as llama.cpp, "
                       f"vLLM and Ollama serve it under /v1: set ASSISTANT_LLM_BASE_URL={url}/v1")
            else:
                msg = (f"The LLM at {self.where} does not know the model {s.llm_model!r} (HTTP 404). "
                       "Set ASSISTANT_LLM_MODEL to a model it serves.")
        elif isinstance(exc, openai.APIStatusError) and exc.status_code in (405, 501):
            msg = (f"The server at {self.where} does not offer chat completions (HTTP {exc.status_code}): it is "
                   "not an OpenAI-compatible LLM server. Check ASSISTANT_LLM_BASE_URL.")
        elif isinstance(exc, openai.APIStatusError) and 400 <= exc.status_code < 500:
            msg = (f"The LLM at {self.where} rejected the request (HTTP {exc.status_code}: "
                   f"{_short(self._scrubbed(exc.message))}). Check ASSISTANT_LLM_MODEL and ASSISTANT_LLM_BASE_URL.")
        elif isinstance(exc, openai.APIStatusError):
            msg = f"The LLM at {self.where} failed with HTTP {exc.status_code} after {tries}. Retry later."
        elif isinstance(exc, _NotOpenAI):
            msg = str(exc)
        else:
            msg = f"The LLM at {self.where} failed: {type(exc).__name__}: {self._scrubbed(str(exc))}"
        return LLMError(redact(msg, s.llm_key()))  # the URL's password or key never reaches a note or the page

    def _refused(self, exc: _Refused) -> LLMError:
        return LLMError(redact(f"The LLM at {self.where} {exc.why}", self.settings.llm_key()))

    def complete(self, messages: list[dict[str, str]], max_tokens: int | None = None,
                 deadline: _Deadline | None = None) -> str:
        """The reply to messages, read in at most llm_deadline seconds (or by the deadline given), at most
        read_cap bytes of it, and cut at reply_cap characters."""
        max_tokens = max_tokens or self.settings.llm_max_tokens
        own = deadline is None
        deadline = deadline or _Deadline(self.settings.llm_deadline)
        resp: Any
        try:
            with _under(deadline, max_tokens):
                resp = self.client.chat.completions.create(
                    model=self.settings.llm_model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=self.settings.llm_temperature,
                    max_tokens=max_tokens,
                )
        except _Expired:
            raise self._too_slow() from None
        except _TooLarge as exc:  # the reply it was cut in, if it was cut inside the reply's text
            resp = self._head(exc)
        except _Refused as exc:
            raise self._refused(exc) from None
        except Exception as exc:
            raise (self._too_slow() if deadline.passed() else self._error(exc)) from None
        finally:
            if own:
                deadline.cancel()
        return self._content(resp)[: reply_cap(max_tokens)]

    def _head(self, big: _TooLarge) -> Any:
        """What the first read_cap bytes of a reply give: the completion they begin, as a dict (its text up to
        where it was cut), or the text of a reply that is not JSON; else the error that it is too large."""
        text = codecs.getincrementaldecoder("utf-8")("replace").decode(big.head)  # a cut last character is left out
        if text and "json" not in big.ctype:
            return text
        value = _cut_json(text)
        if not isinstance(value, dict):
            raise self._refused(big) from None
        log.warning("The LLM at %s sent more than %s bytes for one reply; it is cut there.", self.where,
                    f"{big.limit:,}")
        return value

    def _content(self, resp: Any) -> str:
        """The reply text of a chat completion (an openai object, or the dict of one cut at read_cap), or an
        error that says what the server sent instead."""
        if isinstance(resp, str):
            kind = "a web page" if "<html" in resp[:2000].lower() or "<!doctype" in resp[:200].lower() else "text"
            raise LLMError(f"The server at {self.where} answered with {kind}, not an OpenAI-compatible API. "
                           "Check ASSISTANT_LLM_BASE_URL (OpenAI-compatible servers usually end in /v1).")
        choices = _field(resp, "choices")
        message = _field(choices[0], "message") if isinstance(choices, list) and choices else None
        if message is None:
            raise LLMError(f"The server at {self.where} answered JSON that is not an OpenAI chat completion "
                           "(no choices). Check ASSISTANT_LLM_BASE_URL points at an OpenAI-compatible server.")
        content = _field(message, "content")
        return content if isinstance(content, str) else ""

    def stream(self, messages: list[dict[str, str]]) -> Generator[str, None, None]:
        """The reply to messages, piece by piece as the server streams it: all of it within llm_deadline
        seconds (else an LLMError, and the connection is closed), and no more than reply_cap characters (the
        rest is not read) in at most read_cap bytes (else an LLMError)."""
        deadline = _Deadline(self.settings.llm_deadline)
        left = reply_cap(self.settings.llm_max_tokens)
        events: Any = None
        try:
            with _under(deadline, self.settings.llm_max_tokens):
                events = self.client.chat.completions.create(
                    model=self.settings.llm_model,
                    messages=messages,  # type: ignore[arg-type]
                    temperature=self.settings.llm_temperature,
                    max_tokens=self.settings.llm_max_tokens,
                    stream=True,
                )
            if isinstance(events, str):
                self._content(events)
            seen = False
            for event in events:
                deadline.check()  # a stream that never ends: what was read before the deadline stops here
                if isinstance(event, str) or not hasattr(event, "choices"):
                    raise _NotOpenAI(f"The server at {self.where} streamed something that is not an OpenAI chat "
                                     "completion. Check ASSISTANT_LLM_BASE_URL points at an OpenAI-compatible server.")
                seen = True
                choices = event.choices
                if choices and choices[0].delta and choices[0].delta.content:
                    piece = choices[0].delta.content[:left]
                    left -= len(piece)
                    yield piece
                    if not left:  # the cap: the rest is not read (the connection is closed below)
                        return
            deadline.check()  # the stream ended because the deadline shut its connection
            if not seen:  # an OpenAI stream always sends at least one event
                response = getattr(events, "response", None)
                ctype = response.headers.get("content-type", "") if response is not None else ""
                if "html" in ctype:
                    raise _NotOpenAI(f"The server at {self.where} answered with a web page, not an OpenAI-compatible "
                                     "API. Check ASSISTANT_LLM_BASE_URL (compatible servers usually end in /v1).")
                # a server that ignores stream=True: ask again without streaming (that reply is checked too)
                yield self.complete(messages, deadline=deadline)
        except _Expired:
            raise self._too_slow() from None
        except _Refused as exc:
            raise self._refused(exc) from None
        except LLMError:
            if deadline.passed():
                raise self._too_slow() from None
            raise
        except Exception as exc:
            raise (self._too_slow() if deadline.passed() else self._error(exc)) from None
        finally:
            deadline.cancel()
            close = getattr(events, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


# a JSON string (to its end, or to where the text was cut), or a bracket outside strings
_JSON_TOKEN = re.compile(r'"(?:[^"\\]+|\\(?:u[0-9a-fA-F]{4}|[^u]))*("?)|[\[\]{}]')
_HIGH_SURROGATE = re.compile(r'(?<!\\)((?:\\\\)*)\\u[dD][89abAB][0-9a-fA-F]{2}\Z')  # its pair was cut off


def _cut_json(text: str) -> Any:
    """The JSON value that text, cut short, begins: the string it was cut in ended there, the arrays and
    objects open there closed; None when it was cut where that does not make JSON (in a key, after a comma)."""
    closers: list[str] = []
    end = ""
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        if token[0] == '"':
            if not m.group(1):  # unterminated: the text ends in this string (less an escape cut in two)
                text, end = _HIGH_SURROGATE.sub(r"\1", text[: m.end()]), '"'
                break
        elif token in "[{":
            closers.append("]" if token == "[" else "}")
        elif closers:
            closers.pop()
    try:
        return json.loads(text + end + "".join(reversed(closers)))
    except ValueError:
        return None


def _finish(built: CitedAnswer, question: str, reply: str, settings: Settings, contexts: list[RetrievedContext]
            ) -> Answer:
    answer = Answer(question=question, text=built.text, citations=built.citations, sentences=built.checks,
                    answerer=f"llm:{settings.llm_model}", contexts=contexts)
    dropped = sum(1 for c in built.checks if not c.supported and c.reason != REFUSED)
    repaired = sum(1 for c in built.checks if c.repaired)
    if repaired:
        answer.notes.append(f"Re-cited {repaired} sentence{'s' * (repaired > 1)} to the source that supports it.")
    if dropped:
        answer.notes.append(f"Removed {dropped} of {len(built.checks)} sentences the sources do not support.")
    quoted = sum(1 for c in built.checks if c.reason == QUOTED)
    if quoted:
        answer.notes.append(f"Added {quoted} quoted sentence{'s' * (quoted > 1)} from articles the model's overview "
                            "left out.")
    if not built.citations:
        answer.text, answer.abstained, answer.citations = ABSTAIN_TEXT, True, []
        if not reply.strip():
            answer.notes.append("The LLM returned an empty reply.")
        elif not built.refused:
            answer.notes.append("No sentence of the LLM's reply was supported by the sources.")
    return answer


class LLMAnswerer:
    """Answers written by an LLM through the openai client, every sentence verified against its sources.

    The model sees numbered sentences; its reply is streamed through the verifier one sentence at a
    time, so the user sees a sentence only once it is verified (and re-cited if the model cited the wrong
    source), and nothing shown is taken back. When the LLM fails and ``llm_fallback_offline`` is on, the
    offline answerer answers instead and the answer says so.
    """

    def __init__(self, settings: Settings, offline: OfflineAnswerer | None = None, embed: Any = None) -> None:
        self.settings = settings
        self.name = f"llm:{settings.llm_model}"
        self.offline = offline or OfflineAnswerer(settings.abstain_threshold)
        self.embed = embed
        self._client: LLMClient | None = None

    @property
    def client(self) -> LLMClient:
        if self._client is None:
            self._client = LLMClient(self.settings)
        return self._client

    def stream(self, question: str, query: str, evidence: Evidence) -> Iterator[str | Answer]:
        t0 = time.perf_counter()
        scored = score(query, evidence, self.offline.model)
        overview = self.offline.answer(query, evidence, scored) if is_broad(query) else None
        if (overview.abstained if overview is not None else hard_refusal(scored)):
            answer = overview or self.offline.answer(query, evidence, scored)
            answer.question, answer.answerer = question, self.name
            answer.notes.append("Not sent to the model: no sentence of the articles can answer this question.")
            yield answer.text
            yield answer
            return
        contexts = evidence.contexts
        if overview is not None:  # a broad question: the model summarises what the overview found
            sources, template, contexts = overview_sources(overview), "overview.txt", overview.contexts
        else:
            sources, template = sentence_sources(query, evidence, self.settings, scored), "question.txt"
        built = CitedAnswer(sources, self.embed, repair=True, attribute_uncited=self.settings.llm_attribute_uncited,
                            keep_unsupported=self.settings.keep_unsupported)
        timings: dict[str, float] = {}
        raw: list[str] = []
        shown = 0
        try:
            if not sources:
                raise _NoSources

            cap = reply_cap(self.settings.llm_max_tokens)
            received = 0

            def complete_sentences() -> Iterator[tuple[str, list[int]]]:
                """The reply's sentences, each as soon as the next one has begun; the last at the end, unless
                the reply was cut at the cap (then it is unfinished and dropped)."""
                nonlocal received
                sentences = SentenceStream()
                pieces = self.client.stream(messages_for(query, render_sources(sources), template))
                try:
                    for piece in pieces:
                        if not raw:
                            timings["first_token"] = time.perf_counter() - t0
                        raw.append(piece)
                        received += len(piece)
                        yield from sentences.feed(piece)
                finally:
                    pieces.close()
                if received < cap:
                    yield from sentences.finish()

            # "how many / when": sentences are held back until one gives a figure next to the question's own words
            # ("three settlements" does not say how far inside the border), so that an answer that never gives
            # one can still be refused without taking back what was shown
            held: list[str] | None = [] if scored.kind in ("number", "date") and overview is None else None

            def verified() -> Iterator[str]:
                """The reply's verified sentences; for an overview, then the articles it left out, quoted."""
                for sentence, markers in complete_sentences():
                    out = built.add(sentence, markers)
                    if out:
                        yield out
                if overview is not None:
                    yield from self._complete_overview(built, sources)

            for out in verified():
                if held is not None:
                    held.append(out)
                    if not kind_match(scored.kind, _MARKER.sub("", out), scored.near or None):  # next to its words
                        continue
                    out, held = " ".join(held), None
                if not shown:
                    timings["first_sentence"] = time.perf_counter() - t0
                yield (" " if shown else "") + out
                shown += 1
            timings["generate"] = time.perf_counter() - t0
            answer = _finish(built, question, "".join(raw), self.settings, contexts)
            if received >= cap:
                answer.notes.append(f"The model's reply was cut after {cap:,} characters ({CHARS_PER_TOKEN} per "
                                    f"token of ASSISTANT_LLM_MAX_TOKENS={self.settings.llm_max_tokens}); the rest "
                                    "was not read and its unfinished last sentence is not shown.")
            if held and not answer.abstained:
                answer.text, answer.abstained, answer.citations = ABSTAIN_TEXT, True, []
                answer.notes.append(f"None of the model's supported sentences gives the {scored.kind} the "
                                    "question asks for, so they are not shown.")
            if answer.abstained:
                answer = self._backstop(answer, query, evidence, scored)
                yield answer.text
        except (LLMError, _NoSources) as exc:
            if isinstance(exc, LLMError) and not self.settings.llm_fallback_offline:
                raise
            answer = self.offline.answer(query, evidence)
            answer.question = question
            if isinstance(exc, LLMError):
                log.warning("LLM failed, answering offline: %s", exc)
                answer.notes.append(f"{exc} This answer comes from the offline answerer instead.")
            if shown:  # never take back what was shown: keep the verified sentences, then say what happened
                partial = _finish(built, question, "".join(raw), self.settings, contexts)
                partial.notes.append(f"{exc} The answer stops here.")
                answer = partial
            else:
                yield answer.text
        answer.timings.update(timings)
        yield answer


    @staticmethod
    def _complete_overview(built: CitedAnswer, sources: list[Source]) -> Iterator[str]:
        """An overview's articles the model's verified sentences leave out: each one's overview sentence,
        quoted as it stands (a small model often summarises one article and stops); and, when that leaves a
        single cited sentence, the overview's next one (an overview is never one sentence)."""
        cited = {c.source for c in built.citations}

        def quoted(src: Source) -> bool:
            return any(c.source == src.source and c.start < src.end and src.start < c.end for c in built.citations)

        wanted: list[Source] = []
        for src in sources:
            if src.source not in cited and all(w.source != src.source for w in wanted):
                wanted.append(src)
        for src in sources:
            if len(built.citations) + len(wanted) >= 2:
                break
            if src not in wanted and not quoted(src):
                wanted.append(src)
        for src in sorted(wanted, key=lambda s: s.n):
            out = built.add(src.text, [src.n])
            if out:
                built.checks[-1].reason = QUOTED
                yield out

    def _backstop(self, refused: Answer, query: str, evidence: Evidence, scored: Scored) -> Answer:
        """The LLM gave nothing the sources support: the offline answerer's quoted sentences when they clear
        its calibrated threshold, else the refusal. The answer says which happened and why."""
        if not self.settings.llm_extractive_backstop:
            return refused
        extractive = self.offline.answer(query, evidence, scored)
        if extractive.abstained:
            return refused
        if any(c.supported for c in refused.sentences):  # held back: none gave the figure asked for
            why = f"The model's supported sentences do not give the {scored.kind} asked for"
        elif any(c.reason == REFUSED for c in refused.sentences):
            why = "The model said the articles do not answer this"
        else:
            why = "None of the model's sentences was supported by the sources"
        extractive.question = refused.question
        extractive.answerer = f"{refused.answerer}+extractive"
        extractive.sentences = refused.sentences  # what the model wrote and why each sentence was dropped
        extractive.notes = [*refused.notes, f"{why}; these quoted sentences from the articles answer it instead."]
        return extractive


class _NoSources(Exception):
    """Retrieval found nothing to show the model: the offline answerer refuses without calling it."""
