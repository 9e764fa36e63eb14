"""The LLM path against servers that never finish, drip, or send too much; and the library's input checks.

Every LLM here is a StubLLM on loopback (no llama.cpp needed). A call that could hang runs in a thread that
the test waits for with a generous bound: the test fails, instead of hanging, when the call does not return.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from assistant import Answer, Assistant
from assistant.errors import AssistantError, ConfigError, LLMError, QuestionError
from assistant.ingest import read_text

from .helpers import StubLLM, free_port

SEEDS = Path(__file__).resolve().parent.parent / "seeds"
QUESTION = "How many North Korean troops did Russia deploy to Kursk?"
T = TypeVar("T")


def within(seconds: float, call: Callable[[], T]) -> T:
    """call(), which must return (or raise) within seconds: a hang fails the test instead of hanging it."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:  # re-raised in the test's thread
            result["error"] = exc

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds}s: it would hang"
    if "error" in result:
        raise result["error"]
    return result["value"]  # type: ignore[no-any-return]


@pytest.fixture
def stubs() -> Iterator[list[StubLLM]]:
    made: list[StubLLM] = []
    yield made
    for stub in made:
        stub.close()


def _kb(seeded: Assistant, url: str, **kw: object) -> Assistant:
    opts: dict[str, object] = dict(answerer="llm", llm_base_url=url, llm_model="stub", llm_context_window=4096,
                                   top_k=3, llm_timeout=10, llm_max_retries=0, llm_deadline=3,
                                   llm_fallback_offline=True, llm_extractive_backstop=False)
    opts.update(kw)
    return Assistant(docs_dir=SEEDS, index_dir=seeded.settings.index_dir, **opts)  # type: ignore[arg-type]


def _check_cited(a: Answer) -> None:
    for c in a.citations:
        assert read_text(SEEDS / c.source)[c.start : c.end] == c.quote


# --- the deadline per answer ---------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["endless", "drip"])
def test_a_stream_that_never_ends_falls_back_offline_at_the_deadline(seeded: Assistant, stubs: list[StubLLM],
                                                                     mode: str) -> None:
    """Events without end (or a word a second, each well within llm_timeout): the answer comes from the
    offline answerer at the deadline, says the model took too long, and the connection is closed."""
    stub = StubLLM(mode, reply="Russia deployed about 12,000 North Korean troops in October 2024 [1]. ", every=1)
    stubs.append(stub)
    a = within(30, lambda: _kb(seeded, stub.url).ask(QUESTION))
    assert a.answerer == "offline" and "12,000" in a.text
    assert any("took longer than 3s" in n and "ASSISTANT_LLM_DEADLINE" in n and "offline answerer" in n
               for n in a.notes), a.notes
    assert stub.hung_up.wait(10), "the connection to the model was left open"


def test_sentences_shown_before_the_deadline_are_kept(seeded: Assistant, stubs: list[StubLLM]) -> None:
    """A model that gives a verified sentence, then drips on: what was shown stays, and the answer says it
    stops there because the model took too long."""
    stub = StubLLM("drip", reply="Russia deployed about 12,000 North Korean troops in October 2024 [1]. And ",
                   every=0.05)
    stubs.append(stub)
    streamed = within(30, lambda: list(_kb(seeded, stub.url, llm_deadline=8).stream(QUESTION)))
    a = streamed[-1]
    assert isinstance(a, Answer) and "".join(p for p in streamed if isinstance(p, str)) == a.text
    assert any("took longer than 8s" in n for n in a.notes), a.notes
    if a.answerer == "llm:stub":  # (a machine too busy to verify the sentence in time falls back offline)
        assert "12,000" in a.text and "The answer stops here" in a.notes[-1]
    _check_cited(a)


def test_without_the_fallback_the_deadline_is_an_error(seeded: Assistant, stubs: list[StubLLM]) -> None:
    stub = StubLLM("drip", every=1)
    stubs.append(stub)
    kb = _kb(seeded, stub.url, llm_fallback_offline=False)
    with pytest.raises(LLMError, match=r"took longer than 3s to answer \(ASSISTANT_LLM_DEADLINE\)"):
        within(30, lambda: kb.ask(QUESTION))


@pytest.mark.parametrize("mode", ["endless", "drip"])
def test_a_reply_body_that_never_ends_stops_at_the_deadline(seeded: Assistant, stubs: list[StubLLM],
                                                            mode: str) -> None:
    """The non-streamed call (the follow-up rewrite, servers that ignore stream=True) has the deadline too."""
    stub = StubLLM(mode, every=1)
    stubs.append(stub)
    kb = _kb(seeded, stub.url)
    with pytest.raises(LLMError, match="took longer than 3s"):
        within(30, lambda: kb.llm.complete([{"role": "user", "content": "hello"}]))
    assert stub.hung_up.wait(10)


def test_a_reused_connection_that_stalls_before_replying_stops_at_the_deadline(seeded: Assistant,
                                                                              stubs: list[StubLLM]) -> None:
    """A server that reads the next request on a kept-alive connection and sends nothing, not even the reply's
    headers: the answer still ends at the deadline (each request waits at most the time left before it), not
    after llm_timeout."""
    stub = StubLLM("ok", reply="Fine.", keepalive=True)
    stubs.append(stub)
    kb = _kb(seeded, stub.url, llm_timeout=60)
    assert within(30, lambda: kb.llm.complete([{"role": "user", "content": "hello"}])) == "Fine."
    stub.mode = "stall"
    with pytest.raises(LLMError, match="took longer than 3s"):
        within(20, lambda: kb.llm.complete([{"role": "user", "content": "hello again"}]))
    assert stub.calls == 2 and stub.connections == 1  # the second request went on the first one's connection


def test_a_stalled_follow_up_rewrite_still_answers(seeded: Assistant, stubs: list[StubLLM]) -> None:
    stub = StubLLM("drip", every=1)
    stubs.append(stub)
    messages = [{"role": "user", "content": "How many Ukrainian soldiers did Gerasimov say had been killed?"},
                {"role": "assistant", "content": "About 100, Gerasimov told Putin [1]."},
                {"role": "user", "content": "and how many were wounded?"}]
    a = within(30, lambda: _kb(seeded, stub.url).chat(messages))
    assert a.question == "and how many were wounded?" and a.answerer == "offline"
    _check_cited(a)


# --- the size of a reply -------------------------------------------------------------------------------
def test_a_huge_reply_is_cut_at_the_cap_with_a_note(seeded: Assistant, stubs: list[StubLLM]) -> None:
    """25 MB of sentences (a server that ignores max_tokens): read up to 8 characters per token of
    llm_max_tokens, the complete sentences verified, the answer says it was cut; the rest is never read."""
    stub = StubLLM("huge", reply="Russia deployed about 12,000 North Korean troops in October 2024 [1]. ",
                   size=25_000_000, chunk=50)
    stubs.append(stub)
    kb = _kb(seeded, stub.url, llm_deadline=60, llm_max_tokens=400)
    streamed = within(30, lambda: list(kb.stream(QUESTION)))
    a = streamed[-1]
    assert isinstance(a, Answer) and a.answerer == "llm:stub"
    assert "".join(p for p in streamed if isinstance(p, str)) == a.text
    assert any("cut after 3,200 characters" in n and "ASSISTANT_LLM_MAX_TOKENS=400" in n for n in a.notes), a.notes
    assert not a.abstained and "12,000" in a.text and len(a.sentences) <= 3_200 // 60
    _check_cited(a)
    assert stub.hung_up.wait(10), "the rest of the reply was read (or the connection left open)"


def test_a_huge_non_streamed_reply_is_cut_at_the_cap(seeded: Assistant, stubs: list[StubLLM]) -> None:
    stub = StubLLM("huge", reply="Russia deployed troops. ", size=2_000_000)
    stubs.append(stub)
    kb = _kb(seeded, stub.url, llm_max_tokens=100)
    assert len(within(30, lambda: kb.llm.complete([{"role": "user", "content": "hello"}]))) == 800
    assert len(within(30, lambda: kb.llm.complete([{"role": "user", "content": "hi"}], max_tokens=20))) == 160


def test_a_huge_non_streamed_body_is_not_read_whole(seeded: Assistant, stubs: list[StubLLM]) -> None:
    """100 MB of JSON for one reply: the body is read up to read_cap bytes (1 KiB a token, and 64 KiB), the
    reply in it cut at the cap, and the connection closed; the rest is never read (nor held in memory)."""
    stub = StubLLM("huge", reply="Russia deployed troops. ", size=100_000_000, chunk=65536)
    stubs.append(stub)
    kb = _kb(seeded, stub.url, llm_max_tokens=100, llm_deadline=60)
    reply = within(30, lambda: kb.llm.complete([{"role": "user", "content": "hello"}]))
    assert reply == ("Russia deployed troops. " * 40)[:800]
    assert stub.hung_up.wait(10), "the connection to the model was left open"
    assert stub.sent < 25_000_000, f"{stub.sent:,} bytes of the reply were taken"


@pytest.mark.parametrize("size,chunk", [(100_000_000, 1_000_000), (40_000_000, 40_000_000)],
                         ids=["fat-events", "one-endless-line"])
def test_a_stream_of_bytes_without_reply_is_cut_off(seeded: Assistant, stubs: list[StubLLM], size: int,
                                                    chunk: int) -> None:
    """Events that carry no reply, 1 MB each, or one line of 40 MB (a fast server: the deadline is far): the
    stream is read up to read_cap bytes, then closed, and the answer comes from the offline answerer and
    says why; the rest is never read (nor held in memory)."""
    stub = StubLLM("fat", size=size, chunk=chunk)
    stubs.append(stub)
    a = within(30, lambda: _kb(seeded, stub.url, llm_max_tokens=100, llm_deadline=60).ask(QUESTION))
    assert a.answerer == "offline" and "12,000" in a.text
    assert any("sent more than 167,936 bytes" in n and "at most 100 tokens" in n and "offline answerer" in n
               for n in a.notes), a.notes
    assert stub.hung_up.wait(10), "the connection to the model was left open"
    assert stub.sent < size // 4, f"{stub.sent:,} bytes of the stream were taken"


def test_a_compressed_reply_is_refused_not_inflated(seeded: Assistant, stubs: list[StubLLM]) -> None:
    """A reply gzip-compressed although the request asked for it plain (Accept-Encoding: identity): 50 MB of
    JSON in a few hundred kilobytes would inflate past any limit on the bytes read, so it is refused with a
    message that says so."""
    stub = StubLLM("gzip", reply="Russia deployed troops. ", size=50_000_000)
    stubs.append(stub)
    kb = _kb(seeded, stub.url, llm_max_tokens=100, llm_deadline=60)
    with pytest.raises(LLMError, match=r"compressed its reply \(Content-Encoding: gzip\)"):
        within(30, lambda: kb.llm.complete([{"role": "user", "content": "hello"}]))
    assert stub.requests and stub.hung_up.wait(10)


def test_a_reply_cut_anywhere_in_its_text_gives_the_text_up_to_there() -> None:
    """What the first read_cap bytes of a JSON reply give, wherever they end in its text: the text up to there
    (less an escape, or the half of an emoji's surrogate pair, that was cut); cut outside the text, nothing."""
    from assistant.llm import _cut_json

    content = 'He said "no" \\ 12,000 troops ü 😀 — [1].\n'
    for ensure_ascii in (True, False):  # "\ud83d\ude00" or the emoji itself
        def dump(value: object, ensure_ascii: bool = ensure_ascii) -> str:
            return json.dumps(value, ensure_ascii=ensure_ascii)

        body = dump({"id": "x", "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}],
                     "usage": {"total_tokens": 9}})
        start = body.index(dump(content))
        for i in range(start + 1, start + len(dump(content))):
            written = max((content[:k] for k in range(len(content) + 1)
                           if body[start:i].startswith(dump(content[:k])[:-1])), key=len)
            assert _cut_json(body[:i])["choices"][0]["message"]["content"] == written, body[start:i]
        assert _cut_json(body[: body.index('"usage"') + 3]) is None
        assert _cut_json(body)["usage"] == {"total_tokens": 9}


def test_one_huge_word_is_answered_in_seconds(seeded: Assistant, stubs: list[StubLLM]) -> None:
    """A 20 MB "word", read whole (the cap raised above it): the sentence splitter looks only at the new text
    of each piece (it rescanned the whole word on every piece: past 300 s), and a sentence longer than twice
    all the sources together is dropped without running the verifier over it (40 s more)."""
    stub = StubLLM("word", size=20_000_000, chunk=2_000)
    stubs.append(stub)
    kb = _kb(seeded, stub.url, llm_deadline=600, llm_max_tokens=3_000_000, llm_context_window=4_000_000)
    a = within(60, lambda: kb.ask(QUESTION))
    assert a.answerer == "llm:stub" and a.abstained and a.citations == []
    assert not any("cut after" in n for n in a.notes)
    (check,) = a.sentences
    assert check.reason.startswith("longer than twice all the sources") and len(check.text) < 300


def test_sentence_splitting_is_linear() -> None:
    """A line of many stops that end no sentence ("a. b. c. …"): each stop is judged by the text next to it,
    not by rescanning the line from its start."""
    from assistant.text import split_sentences

    text = "a. " * 200_000
    assert within(30, lambda: split_sentences(text)) == [(0, len(text) - 1)]
    from assistant.citations import SentenceStream

    def streamed() -> list[tuple[str, list[int]]]:
        sentences = SentenceStream()
        out = [s for i in range(0, len(text), 7) for s in sentences.feed(text[i : i + 7])]
        return out + sentences.finish()

    assert len(within(30, streamed)) == 1


def test_streamed_sentences_are_the_sentences_of_the_whole_reply() -> None:
    from assistant.citations import SentenceStream, split_answer_sentences

    reply = ("Russia deployed about 12,000 North Korean troops [1]. Mr. Smith said so[2].\nKIEV LOSES HALF OF KURSK "
             "The U.S. said: “nothing” [1, 2]. Gerasimov told Putin! [3] NOT IN THE ARTICLES")
    for size in (1, 2, 3, 5, 8, 13, len(reply)):
        sentences = SentenceStream()
        out = [s for i in range(0, len(reply), size) for s in sentences.feed(reply[i : i + size])]
        assert out + sentences.finish() == split_answer_sentences(reply), size


# --- replies that are not text, and the held behaviour for hostile replies -------------------------------
def test_a_reply_that_is_not_utf8_still_answers(seeded: Assistant, stubs: list[StubLLM]) -> None:
    stub = StubLLM("badutf8")
    stubs.append(stub)
    a = within(30, lambda: _kb(seeded, stub.url).ask(QUESTION))
    assert "12,000" in a.text or a.abstained
    assert "\ufffd" not in a.text and "\xff" not in a.text
    _check_cited(a)


# --- credentials in the base URL are never shown --------------------------------------------------------
def test_messages_never_show_the_credentials_of_the_base_url(seeded: Assistant) -> None:
    url = f"http://alice:s3cr3t-pw@127.0.0.1:{free_port()}/v1?api_key=hunter2&region=eu"
    with pytest.raises(LLMError) as err:
        within(30, lambda: _kb(seeded, url, llm_fallback_offline=False).ask(QUESTION))
    message = str(err.value)
    assert "Cannot connect to the LLM at http://***@127.0.0.1:" in message and "region=eu" in message
    assert "s3cr3t-pw" not in message and "alice" not in message and "hunter2" not in message
    a = within(30, lambda: _kb(seeded, url).ask(QUESTION))  # the fallback's note too
    assert a.answerer == "offline" and not any("s3cr3t" in n or "hunter2" in n for n in a.notes)


def test_shown_url() -> None:
    from assistant.redact import redact_url

    assert (redact_url("https://u:p@host:8443/v1?token=abc&x=1&API_KEY=z")
            == "https://***@host:8443/v1?token=***&x=1&API_KEY=***")
    assert redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"


# --- chat() and Assistant() say what is wrong with what they were given ---------------------------------
@pytest.mark.parametrize("messages,message", [
    ([], "at least one message"),
    ("How far is Kursk from Moscow?", "a list of messages"),
    ([{"role": "user"}], r"messages\[0\] has no 'content'"),
    ([{"content": "How far is Kursk?"}], r"messages\[0\] has no 'role'"),
    (["How far is Kursk?"], r"messages\[0\] is a str, not a dict"),
    ([{"role": "user", "content": 42}], r"messages\[0\]\['content'\] is a int, not text"),
    ([{"role": "user", "content": None}], r"messages\[0\]\['content'\] is a NoneType, not text"),
    ([{"role": "bot", "content": "hi"}, {"role": "user", "content": "How far is Kursk?"}],
     r"messages\[0\] has role 'bot'.*'user', 'assistant' or 'system'"),
    ([{"role": "user", "content": "How far is Kursk?"}, {"role": "assistant", "content": "Far."}],
     "ending with a user message"),
])
def test_chat_says_what_is_wrong_with_the_messages(seeded: Assistant, messages: Any, message: str) -> None:
    with pytest.raises(QuestionError, match=message):
        seeded.chat(messages)


def test_assistant_arguments_of_the_wrong_type_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError,
                       match=r"docs_dir=123 is not valid: must be a folder path \(text or pathlib.Path\), not int"):
        Assistant(docs_dir=123)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"index_dir=.* is not valid: must be a folder path .*not list"):
        Assistant(docs_dir=SEEDS, index_dir=[tmp_path])  # type: ignore[arg-type]
    with pytest.raises(AssistantError, match=r"settings must be a Settings, not dict"):
        Assistant(docs_dir=SEEDS, settings={"top_k": 3})  # type: ignore[arg-type]
