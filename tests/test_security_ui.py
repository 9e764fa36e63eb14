"""Security of the chat page and of what it (and the CLI) shows: uploads only of bytes a browser sent, limits
and cleanup, bounded concurrency, no public share link, no analytics, no LLM credentials anywhere.

The tests that start the page in a process of its own are marked `browser`, like tests/test_ui.py (they serve
the page; they drive it over HTTP with gradio_client and httpx, without Chromium).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from assistant import Assistant
from assistant.errors import ConfigError, LLMError
from assistant.redact import redact, redact_url

from .helpers import StubLLM, free_port, stop, wait_http

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
PASSWORD, KEY = "S3cretPw9", "K3yValue77"
TROOPS = "How many North Korean troops did Russia deploy to Kursk?"
NEPTUNE = "What is the range of the long Neptune missile?"


def _secret_url(port: int) -> str:
    return f"http://admin:{PASSWORD}@127.0.0.1:{port}/v1?api-key={KEY}"


def _no_secret(text: str) -> None:
    assert PASSWORD not in text and KEY not in text, text


# --- (6) credentials ------------------------------------------------------------------------------------
def test_redact_masks_passwords_and_keys_in_urls() -> None:
    assert redact_url("http://admin:pw@host:8080/v1") == "http://***@host:8080/v1"
    assert redact_url("https://h/v1?api-key=a&x=1&access_token=b#sig=c") == "https://h/v1?api-key=***&x=1&access_token=***#sig=***"
    assert redact_url("http://127.0.0.1:8080/v1") == "http://127.0.0.1:8080/v1"  # nothing secret: unchanged
    said = redact(f"Cannot connect to 'http://u:{PASSWORD}@[::1' or {_secret_url(9)}. (key {KEY})", KEY)
    _no_secret(said)
    assert "http://***@[::1" in said and "127.0.0.1:9/v1?api-key=***" in said
    # a message that quotes the password without its URL (urllib: "Port could not be cast … as 'pw'")
    assert redact(f"as {PASSWORD!r}", _secret_url(9)) == "as '***'"


def test_llm_credentials_appear_in_no_header_note_error_or_cli_output(
        seeded: Assistant, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from assistant.cli import main
    from assistant.ui import header, render_answer

    closed = free_port()
    kb = Assistant(docs_dir=SEEDS, index_dir=seeded.settings.index_dir, answerer="llm",
                   llm_base_url=_secret_url(closed), llm_max_retries=0)
    head = header(kb)
    _no_secret(head)
    # named with every Markdown mark escaped: shown as text, never turned into a link a visitor could follow
    assert "at http\\:\\/\\/\\*\\*\\*@127\\.0\\.0\\.1\\:" in head and "<a" not in head
    answer = kb.ask(TROOPS)  # the LLM is unreachable: answered offline, with a note saying why
    assert "12,000" in answer.text and any("offline answerer instead" in n for n in answer.notes)
    _no_secret(" ".join(answer.notes) + render_answer(answer))

    strict = Assistant(kb.settings, llm_fallback_offline=False)
    with pytest.raises(LLMError) as err:
        strict.ask(TROOPS)
    _no_secret(str(err.value))
    assert "Cannot connect to the LLM at http://***@127.0.0.1" in str(err.value)
    stub = StubLLM("html")  # a web page where the API should be: another message naming the URL
    try:
        url = f"http://admin:{PASSWORD}@127.0.0.1:{stub.port}/v1?api-key={KEY}"
        with pytest.raises(LLMError, match="web page") as err:
            Assistant(kb.settings, llm_base_url=url, llm_fallback_offline=False).ask(TROOPS)
        _no_secret(str(err.value))
    finally:
        stub.close()

    monkeypatch.setenv("ASSISTANT_LLM_BASE_URL", _secret_url(closed))
    monkeypatch.setenv("ASSISTANT_LLM_MAX_RETRIES", "0")
    args = ["--docs", str(SEEDS), "--index", str(seeded.settings.index_dir)]
    assert main([*args, "ask", TROOPS]) == 0  # the note is printed
    monkeypatch.setenv("ASSISTANT_LLM_FALLBACK_OFFLINE", "false")
    assert main([*args, "ask", TROOPS, "--answerer", "llm"]) == 1  # the error is printed
    monkeypatch.setenv("ASSISTANT_LLM_BASE_URL", f"http://admin:{PASSWORD}@[::1/v1?token={KEY}")
    assert main([*args, "ask", TROOPS]) == 1  # a malformed URL: a settings error that quotes it
    with pytest.raises(ConfigError) as bad:
        Assistant(docs_dir=SEEDS)
    _no_secret(str(bad.value))
    out = capsys.readouterr()
    _no_secret(out.out + out.err)
    assert "note: Cannot connect to the LLM at http://***@" in out.out and "Error: Cannot connect" in out.err
    assert "is not a valid URL" in out.err


# --- (13) uploads are checked like a sync reads ---------------------------------------------------------
@pytest.fixture(scope="module")
def page_kb(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    root = tmp_path_factory.mktemp("page")
    shutil.copytree(SEEDS, root / "docs")
    kb = Assistant(docs_dir=root / "docs", index_dir=root / "index", answerer="offline")
    kb.sync()
    return kb


def test_upload_accepts_what_a_sync_reads_and_refuses_what_it_skips(page_kb: Assistant, tmp_path: Path) -> None:
    from assistant.ui import save_upload

    docs = Path(page_kb.settings.docs_dir)
    up = tmp_path / "up.md"
    up.write_bytes("# Kharkiv tram\n\nThe Kharkiv tram depot reopened after repairs.\n".encode("utf-16"))
    assert save_upload(page_kb, up, "tram.md") == "tram.md"  # UTF-16 with a byte-order mark, as a sync reads it
    up.write_bytes(b"Some words\x00then a NUL byte.\n")
    with pytest.raises(Exception, match="nul.md: looks like a binary file"):
        save_upload(page_kb, up, "nul.md")
    assert not (docs / "nul.md").exists()  # refused before it was saved, not "Added" then skipped
    report = page_kb.sync()
    assert "tram.md" not in " ".join(report.skipped) and "tram.md" in page_kb.corpus.sources


# --- (1), (11) the page's upload handler --------------------------------------------------------------
@pytest.fixture
def page(page_kb: Assistant, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """The page built in this process with its own Gradio upload folder, and its upload handler."""
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    from assistant.ui import build

    demo = build(page_kb)
    handler = next(f for f in demo.fns.values() if f.name == "upload")
    yield demo, handler.fn


def _browser_upload(demo: Any, name: str, data: bytes) -> dict[str, Any]:
    """What Gradio's upload route does with a file a browser sends: a folder per upload in its upload folder,
    the path remembered as uploaded."""
    path = Path(demo.GRADIO_CACHE) / uuid.uuid4().hex / name
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    demo.upload_file_set.add(str(path))
    return {"path": str(path), "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def test_upload_handler_takes_only_files_the_browser_sent(page: tuple[Any, Any], page_kb: Assistant,
                                                          tmp_path: Path) -> None:
    demo, upload = page
    docs = Path(page_kb.settings.docs_dir)
    secret = tmp_path / "notes" / "passwords.md"
    secret.parent.mkdir()
    secret.write_text("The vault password is Hunter2Zebra.\n", encoding="utf-8")
    before = sorted(p.name for p in docs.iterdir())
    as_data = {"path": str(secret), "orig_name": "passwords.md", "meta": {"_type": "gradio.FileData"}}
    for named in (str(secret), as_data):
        status = upload([named])[1]  # a path as Gradio's file component gives it, and as a request's FileData
        assert "Added" not in status and "not uploaded from this page" in status
    assert sorted(p.name for p in docs.iterdir()) == before and secret.exists()  # never touched
    sent = _browser_upload(demo, "Glushkovo bridge.md", b"# Bridge\n\nThe Glushkovo bridge was destroyed.\n")
    status = upload([sent])[1]
    assert "Added Glushkovo\\_bridge\\.md" in status
    assert not Path(sent["path"]).exists() and sent["path"] not in demo.upload_file_set  # its temp copy is gone
    assert "Not added" in upload([sent])[1]  # the same upload cannot be replayed


def test_upload_limits_count_size_and_rate_and_cleans_up(page_kb: Assistant, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    from assistant.ui import build

    for name, value in (("max_upload_files", 3), ("max_upload_total_bytes", 500), ("max_uploads_per_minute", 4)):
        monkeypatch.setattr(page_kb.settings, name, value)
    demo = build(page_kb)
    upload = next(f for f in demo.fns.values() if f.name == "upload").fn
    docs = Path(page_kb.settings.docs_dir)

    def article(n: int, size: int = 100) -> dict[str, Any]:
        text = f"Depot {n} near Kursk held {n} shells last week, the officials said. "
        return _browser_upload(demo, f"depot{n}.md", (text * 10).encode()[:size])

    sent = [article(n) for n in range(5)]
    status = upload(sent)[1]
    assert "depot0\\.md, depot1\\.md, depot2\\.md" in status and status.count("at most 3 articles") == 2
    assert not (docs / "depot3.md").exists()
    assert not any(Path(f["path"]).exists() for f in sent)  # saved or refused: every temp copy deleted
    sent = [article(10, 400), article(11, 400)]
    status = upload(sent)[1]
    assert "Added depot10" in status and "over 500 bytes in all" in status and not (docs / "depot11.md").exists()
    status = upload([article(20), article(21)])[1]  # four were accepted this minute: no more
    assert "Added" not in status and "at most 4 articles a minute" in status and "try again" in status
    assert not any(Path(f["path"]).exists() for f in sent)


# --- (11) several answers at once ------------------------------------------------------------------------
def test_query_vector_cache_is_safe_across_threads() -> None:
    from assistant.retrieve import HybridRetriever

    class Stub:
        def embed_one(self, text: str) -> str:
            return text

    retriever = object.__new__(HybridRetriever)
    retriever._vectors, retriever.embedder = {}, Stub()
    errors: list[str] = []

    def work(t: int) -> None:
        try:
            for i in range(10_000):
                assert retriever.query_vector(f"{t}-{i}") == f"{t}-{i}"
        except Exception as exc:
            errors.append(repr(exc))

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows at once
    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


def test_one_assistant_answers_from_many_threads(seeded: Assistant) -> None:
    questions = [TROOPS, NEPTUNE, "Who is the acting governor of the Kursk region?"] * 6
    alone = {q: seeded.ask(q).text for q in set(questions)}
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(lambda q: seeded.ask(q).text, questions))
    assert together == [alone[q] for q in questions]


# --- (5), (14), (11) how the page is served ---------------------------------------------------------------
def test_serve_never_shares_sends_no_analytics_and_bounds_its_queue(
        page_kb: Assistant, monkeypatch: pytest.MonkeyPatch) -> None:
    import gradio
    from gradio import analytics, networking

    from assistant.ui import serve

    monkeypatch.setenv("GRADIO_SHARE", "true")  # as a hosted notebook would choose, too
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "True")
    calls: list[str] = []

    def tunnel(*args: Any, **kwargs: Any) -> str:
        calls.append("share link")
        raise RuntimeError("no tunnel in tests")

    monkeypatch.setattr(networking, "setup_tunnel", tunnel)
    for name in ("version_check", "initiated_analytics", "launched_analytics", "_do_analytics_request"):
        monkeypatch.setattr(analytics, name, lambda *a, _n=name, **k: calls.append(_n))
    app, _, share_url = serve(str(page_kb.settings.docs_dir), str(page_kb.settings.index_dir), port=free_port(),
                              block=False)
    demo = app.get_blocks()
    try:
        assert calls == [] and share_url is None and not demo.share and not demo.analytics_enabled
        s = page_kb.settings
        assert demo._queue.max_size == s.page_queue_size
        answering = [f for f in demo.fns.values() if f.name == "respond"]
        assert len(answering) == 2 and all(f.concurrency_limit == s.page_concurrency > 1 for f in answering)
        assert len({f.concurrency_id for f in answering}) == 1  # one limit for answers however they are asked
        assert next(f for f in demo.fns.values() if f.name == "upload").api_visibility == "private"
    finally:
        demo.close()
        gradio.close_all()


# --- the page served in its own process -----------------------------------------------------------------
@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """`assistant serve` with an LLM URL carrying a password and a key (a closed port: every answer falls back
    to the offline answerer), GRADIO_SHARE=true and Gradio's analytics not switched off by the environment."""
    root = tmp_path_factory.mktemp("served")
    docs = root / "docs"
    shutil.copytree(SEEDS, docs)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_", "GRADIO_"))}
    env.update(ASSISTANT_DOCS_DIR=str(docs), ASSISTANT_INDEX_DIR=str(root / "index"), ASSISTANT_ANSWERER="llm",
               ASSISTANT_LLM_BASE_URL=_secret_url(free_port()), ASSISTANT_LLM_MAX_RETRIES="0",
               GRADIO_SHARE="true", GRADIO_TEMP_DIR=str(root / "gradio"))
    log = root / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env, cwd=root)
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc, 180, log)
        yield f"http://127.0.0.1:{port}/", root, log
    finally:
        stop(proc)


def _ask(url: str, question: str) -> str:
    from gradio_client import Client

    client = Client(url, verbose=False)
    client.predict(question, api_name="/take")
    chat = client.predict([], api_name="/respond")[0]
    content = chat[-1]["content"]
    return " ".join(c.get("text", "") for c in content) if isinstance(content, list) else str(content)


def _join(url: str, api_name: str, data: list[Any]) -> dict[str, Any]:
    """Call an event the way the page's own JavaScript does (queue/join, then its event stream)."""
    import httpx

    deps = httpx.get(url + "config").json()["dependencies"]
    dep = next(d for d in deps if d.get("api_name") == api_name)
    session = uuid.uuid4().hex[:10]
    httpx.post(url + "gradio_api/queue/join", json={
        "data": data, "fn_index": dep["id"], "session_hash": session, "trigger_id": dep["targets"][0][0],
        "event_data": None}).raise_for_status()
    with httpx.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=120) as events:
        for line in events.iter_lines():
            if line.startswith("data:"):
                msg = json.loads(line[5:])
                if msg.get("msg") == "process_completed":
                    return dict(msg)
    raise AssertionError("the event never completed")


@pytest.mark.browser
def test_served_page_shows_no_credentials_shares_nothing_and_sends_no_analytics(
        served: tuple[str, Path, Path]) -> None:
    import httpx

    url, _, log = served
    config = httpx.get(url + "config").text
    _no_secret(config)
    assert json.loads(config)["analytics_enabled"] is False
    answer = _ask(url, TROOPS)
    assert "12,000" in answer and "offline answerer instead" in answer
    _no_secret(answer)
    _no_secret(log.read_text(errors="replace"))
    assert "public URL" not in log.read_text(errors="replace") and "share link" not in log.read_text(errors="replace")


@pytest.mark.browser
def test_served_upload_takes_only_bytes_a_browser_sent(served: tuple[str, Path, Path]) -> None:
    import httpx
    from gradio_client import Client, handle_file

    url, root, _ = served
    docs = root / "docs"
    secret = root / "notes" / "passwords.md"
    secret.parent.mkdir()
    secret.write_text("The vault password is Hunter2Zebra.\n", encoding="utf-8")
    before = sorted(p.name for p in docs.iterdir())
    with pytest.raises(ValueError, match="upload"):  # not an API endpoint
        Client(url, verbose=False).predict([handle_file(str(secret))], api_name="/upload")
    # a request naming the server's own file (what no browser can send)
    done = _join(url, "upload", [[{"path": str(secret), "orig_name": "passwords.md",
                                   "meta": {"_type": "gradio.FileData"}}]])
    assert "Added" not in json.dumps(done)
    assert sorted(p.name for p in docs.iterdir()) == before

    # what the page's upload box does: the bytes to the upload route, then the event with the path it returned
    sent = httpx.post(url + "gradio_api/upload", files=[("files", ("Glushkovo bridge.md", b"# Bridge\n\nThe "
                      b"Glushkovo bridge over the Seym was destroyed by HIMARS strikes.\n"))]).json()
    done = _join(url, "upload", [[{"path": sent[0], "orig_name": "Glushkovo bridge.md",
                                   "meta": {"_type": "gradio.FileData"}}]])
    assert "Added Glushkovo" in done["output"]["data"][1]
    assert (docs / "Glushkovo_bridge.md").exists() and not Path(sent[0]).exists()  # temp copy cleaned up
    assert "HIMARS" in _ask(url, "What happened to the Glushkovo bridge over the Seym?")


@pytest.mark.browser
def test_served_page_answers_twenty_visitors_at_once(served: tuple[str, Path, Path]) -> None:
    url = served[0]
    questions = [TROOPS, NEPTUNE] * 10
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda q: _ask(url, q), questions))
    for q, a in zip(questions, answers):
        assert ("12,000" if q == TROOPS else "1,000") in a, a


@pytest.mark.browser
def test_a_full_queue_says_busy_and_gives_the_question_back(tmp_path: Path) -> None:
    """One answer at a time and one waiting (a slow LLM): a third visitor is told at once that the page is busy,
    and gets the box back with the question in it, instead of waiting behind everyone."""
    from playwright.sync_api import sync_playwright

    from .test_ui import ARGS, CHROMIUM

    shutil.copytree(SEEDS, tmp_path / "docs")
    stub = StubLLM("ok", reply="Russia later deployed about 12,000 North Korean troops [1].", delay=6)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    env.update(ASSISTANT_DOCS_DIR=str(tmp_path / "docs"), ASSISTANT_INDEX_DIR=str(tmp_path / "index"),
               ASSISTANT_ANSWERER="llm", ASSISTANT_LLM_BASE_URL=stub.url, ASSISTANT_LLM_MODEL="stub",
               ASSISTANT_PAGE_CONCURRENCY="1", ASSISTANT_PAGE_QUEUE_SIZE="1", GRADIO_ANALYTICS_ENABLED="False")
    log = tmp_path / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url, proc, 180, log)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
            first, second, third = (browser.new_context().new_page() for _ in range(3))
            for page in (first, second, third):
                page.goto(url)
                page.wait_for_selector("#question textarea")
            for page in (first, second, third):
                page.fill("#question textarea", TROOPS)
                page.click("#ask")
                if page is first:  # being answered (the LLM takes 6 s), so the next one waits in the queue
                    page.wait_for_function("() => document.querySelector('#chat').innerText.includes('…')",
                                           timeout=30_000)
                else:
                    page.wait_for_timeout(1_000)
            third.wait_for_function("() => document.body.innerText.includes('currently busy')", timeout=20_000)
            third.wait_for_function("() => !document.querySelector('#question textarea').disabled", timeout=10_000)
            assert third.input_value("#question textarea") == TROOPS  # to send again
            third.screenshot(path=str(tmp_path / "busy.png"))
            for page in (first, second):
                page.wait_for_function("() => !document.querySelector('#question textarea').disabled",
                                       timeout=60_000)
                assert "12,000" in page.locator("#chat [data-testid='bot']").last.inner_text()
            browser.close()
    finally:
        stop(proc)
        stub.close()


@pytest.mark.parametrize("url,secret", [
    ("http://admin:S3cr#et@127.0.0.1:8080/v1", "S3cr"),  # '#' in the password: a URL parser cuts it there
    ("http://admin:S3c?ret@127.0.0.1:8080/v1?api-key=abcd1234", "S3c?ret"),
    ("http://admin:pa/ss@127.0.0.1:8080/v1", "pa/ss"),
])
def test_passwords_with_url_delimiters_are_masked_whole(url: str, secret: str) -> None:
    from assistant.redact import redact, redact_url

    shown = redact_url(url)
    assert secret not in shown and "admin" not in shown and shown.startswith("http://***@")
    # an error that quotes the password as a URL parser read it, without the URL
    quoted = redact(f"Port could not be cast to integer value as '{secret.split('#')[0]}'", url)
    assert secret.split("#")[0] not in quoted


def test_cleanup_deletes_only_files_the_upload_route_received(tmp_path: Path) -> None:
    from assistant.ui import discard_upload

    cache = tmp_path / "gradio"
    (cache / "h1").mkdir(parents=True)
    (cache / "h2").mkdir()
    mine, pending = cache / "h1" / "mine.md", cache / "h2" / "other-visitor.md"
    mine.write_text("Mine.\n")
    pending.write_text("Another visitor's pending upload.\n")
    uploaded = {str(mine), str(pending)}
    uploaded_now = set(uploaded)
    uploaded_now.discard(str(pending))  # this request named the other file, but never sent it
    discard_upload(mine, uploaded_now, cache)
    discard_upload(pending, uploaded_now, cache)
    assert not mine.exists() and pending.exists()


def test_an_upload_never_writes_through_a_link_nor_waits_on_a_pipe(tmp_path: Path) -> None:
    import os
    import threading
    from types import SimpleNamespace

    from assistant.ui import save_upload

    docs, outside = tmp_path / "docs", tmp_path / "outside.md"
    docs.mkdir()
    outside.write_text("Not the assistant's.\n")
    (docs / "linked.md").symlink_to(outside)
    (docs / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    os.mkfifo(docs / "pipe.md")
    src = tmp_path / "upload.md"
    src.write_text("Kursk report.\n\nThe bridge was destroyed in August.\n", encoding="utf-8")
    kb = SimpleNamespace(settings=SimpleNamespace(docs_dir=str(docs), max_upload_bytes=2_000_000))
    names: list[str] = []

    def save_all() -> None:
        names.extend(save_upload(kb, src, n) for n in ("linked.md", "dangling.md", "pipe.md"))  # type: ignore[arg-type]

    t = threading.Thread(target=save_all, daemon=True)
    t.start()
    t.join(30)
    assert not t.is_alive(), "an upload waited on a FIFO in the documents folder"
    assert names == ["linked-1.md", "dangling-1.md", "pipe-1.md"]
    assert outside.read_text() == "Not the assistant's.\n" and not (tmp_path / "nowhere.md").exists()
    assert (docs / "linked-1.md").read_bytes() == src.read_bytes()
