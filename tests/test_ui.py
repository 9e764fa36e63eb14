"""The chat page end to end in headless Chromium (Debian's chromium driven by Python playwright).

Screenshots of each step go to artifacts/screenshots/ (TEST_SCREENSHOTS_DIR overrides).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import free_port, stop, wait_http

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parent.parent
SHOTS = Path(os.environ.get("TEST_SCREENSHOTS_DIR", REPO / "artifacts" / "screenshots"))
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def page_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    root = tmp_path_factory.mktemp("ui")
    docs = root / "docs"
    shutil.copytree(REPO / "seeds", docs)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    env.update(ASSISTANT_DOCS_DIR=str(docs), ASSISTANT_INDEX_DIR=str(root / "index"), ASSISTANT_ANSWERER="offline",
               GRADIO_ANALYTICS_ENABLED="False")
    log = root / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "assistant.cli", "serve", "--port", str(port)],
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)
    try:
        wait_http(f"http://127.0.0.1:{port}/", proc, 180, log)
        yield f"http://127.0.0.1:{port}/", root
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


_READY = "() => { const t = document.querySelector('#question textarea'); return t && !t.disabled; }"


def _ask(page: Any, question: str) -> None:
    page.wait_for_function(_READY, timeout=60_000)  # the previous answer is in and the box unlocked
    n = page.locator("#chat .message-row, #chat [data-testid='bot']").count()
    page.fill("#question textarea", question)
    page.click("#ask")
    page.wait_for_function(
        "n => { const b = document.querySelectorAll('#chat [data-testid=\"bot\"]');"
        " return b.length > 0 && !b[b.length-1].innerText.includes('▌') && b[b.length-1].innerText.trim() !== '…'"
        " && document.querySelectorAll('#chat .message-row, #chat [data-testid=\"bot\"]').length > n; }",
        arg=n, timeout=60_000)


def _last_bot(page: Any) -> str:
    return str(page.locator("#chat [data-testid='bot']").last.inner_text())


def test_first_visit_ask_stream_open_citation_abstain(browser: Any, page_url: tuple[str, Path]) -> None:
    url, _ = page_url
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#question textarea")
    header = page.inner_text("#header")
    assert "offline" in header and "5 articles" in header
    assert page.get_by_text("How many North Korean troops did Russia deploy to Kursk?").first.is_visible()
    page.screenshot(path=str(SHOTS / "01-first-visit.png"))

    # record what the chat shows while the answer streams in
    page.evaluate("""() => { window.__states = new Set(); const chat = document.querySelector('#chat');
        new MutationObserver(() => { const b = chat.querySelectorAll('[data-testid="bot"]');
          if (b.length) window.__states.add(b[b.length-1].innerText); })
        .observe(chat, {subtree: true, childList: true, characterData: true}); }""")
    _ask(page, "How many North Korean troops did Russia deploy to Kursk?")
    answer = _last_bot(page)
    assert "12,000" in answer and "[1]" in answer
    states = page.evaluate("() => Array.from(window.__states)")
    assert sum("▌" in s for s in states) >= 2, "the answer streamed in over several updates"
    sources = page.inner_text("#sources")
    assert "Kremlin accelerates concerted push" in sources and "Featured" not in sources  # the headline
    page.screenshot(path=str(SHOTS / "02-streamed-answer.png"))

    page.locator("#chat a[href='#cite-0-1']").first.click()
    mark = page.locator("#article-view mark")
    mark.wait_for(timeout=10_000)
    quote = mark.inner_text()
    assert "about 12,000 North Korean troops" in quote and quote in sources.replace("\n", " ")
    page.wait_for_timeout(600)
    view, box = page.locator("#article-view").bounding_box(), mark.bounding_box()
    assert view and box and view["y"] <= box["y"] <= view["y"] + view["height"], "highlight scrolled into view"
    page.screenshot(path=str(SHOTS / "03-citation-highlighted.png"))

    _ask(page, "What is the capital of France?")
    assert "don't cover" in _last_bot(page) and "Not in the articles." in _last_bot(page)
    assert "No source answers" in page.inner_text("#sources")
    page.screenshot(path=str(SHOTS / "04-abstention.png"))
    page.close()


def test_upload_then_ask_and_no_script_runs(browser: Any, page_url: tuple[str, Path]) -> None:
    url, root = page_url
    article = root / "Glushkovo bridge.md"
    article.write_text(
        "# Bridge over the Seym destroyed\n\nThe Glushkovo bridge over the Seym river was destroyed by HIMARS "
        "strikes, according to the regional governor. <script>window.__xss = 1</script>"
        "<img src=x onerror=\"window.__xss = 2\">\n", encoding="utf-8")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.wait_for_selector("#question textarea")
    page.get_by_text("Articles: re-sync or add your own").click()
    page.set_input_files("#upload input[type=file]", str(article))
    page.wait_for_function("() => document.querySelector('#status').innerText.includes('Added')", timeout=60_000)
    assert "Glushkovo_bridge.md" in page.inner_text("#status")
    assert "6 articles" in page.inner_text("#header")
    assert (root / "docs" / "Glushkovo_bridge.md").exists()
    _ask(page, "What happened to the Glushkovo bridge over the Seym?")
    assert "HIMARS" in _last_bot(page)
    assert "Bridge over the Seym destroyed" in page.inner_text("#sources")
    page.locator("#chat a[href='#cite-0-1']").first.click()
    page.locator("#article-view mark").wait_for(timeout=10_000)
    assert "<script>" in page.inner_text("#article-view")  # shown as text, not run
    assert page.evaluate("() => window.__xss") is None
    page.screenshot(path=str(SHOTS / "05-uploaded-article.png"))
    page.close()


def test_two_visitors_do_not_share_a_conversation(browser: Any, page_url: tuple[str, Path]) -> None:
    url, _ = page_url
    a = browser.new_context().new_page()
    b = browser.new_context().new_page()
    for p in (a, b):
        p.goto(url)
        p.wait_for_selector("#question textarea")
    _ask(a, "What is the range of the long Neptune missile?")
    _ask(b, "Who is the acting governor of the Kursk region?")
    assert "Neptune" not in b.inner_text("#chat") and "Smirnov" not in a.inner_text("#chat")
    assert "1,000" in a.inner_text("#chat") and "Smirnov" in b.inner_text("#chat")
    a.context.close()
    b.context.close()


PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1400, "height": 1000}}
VIEWPORTS = pytest.mark.parametrize("device", [DESKTOP, PHONE], ids=["desktop", "phone"])


def _open_citation(page: Any, href: str, quoted: str) -> None:
    """Click [n] as the device would (a tap on a phone) and wait for the highlight of `quoted` (on a phone,
    in the sheet over the chat)."""
    link = page.locator(f"#chat a[href='{href}']").first
    link.scroll_into_view_if_needed()
    phone = (page.viewport_size or {}).get("width", 1400) <= 760
    link.tap() if phone else link.click()
    page.wait_for_function("([q, phone]) => { const m = document.querySelector('#article-view mark');"
                           " return m && m.innerText.includes(q) && (!phone ||"
                           " document.querySelector('#article').classList.contains('sheet')); }",
                           arg=[quoted, phone], timeout=20_000)


def _back_to_chat(page: Any) -> None:
    """On a phone a citation opens as a sheet over the chat: close it (a no-op on a desktop)."""
    if page.evaluate("() => document.querySelector('#article').classList.contains('sheet')"):
        page.locator(".sheet-close").tap()
        page.wait_for_function("() => !document.querySelector('#article').classList.contains('sheet')")


def _contrast(fg: list[float], bg: list[float]) -> float:
    def lum(c: list[float]) -> float:
        ch = [x / 255 for x in c[:3]]
        ch = [x / 12.92 if x <= 0.03928 else ((x + 0.055) / 1.055) ** 2.4 for x in ch]
        return 0.2126 * ch[0] + 0.7152 * ch[1] + 0.0722 * ch[2]

    hi, lo = sorted((lum(fg), lum(bg)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


@VIEWPORTS
def test_no_remote_content_live_header_clear_and_dark_mode(browser: Any, page_url: tuple[str, Path],
                                                           device: dict[str, Any]) -> None:
    """An article (anyone can upload one) or a question with Markdown images and links never makes a browser
    fetch anything: a local tracking server counts the requests. A new visitor sees the corpus as it is now,
    the trash button forgets everything, and the highlight is readable in dark mode."""
    import re
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Tracker(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            hits.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    tracker = ThreadingHTTPServer(("127.0.0.1", 0), Tracker)
    threading.Thread(target=tracker.serve_forever, daemon=True).start()
    t = f"http://127.0.0.1:{tracker.server_address[1]}"
    url, root = page_url
    (root / "docs" / "depot.md").write_text(
        f"# Zorya depot report\n\nThe Zorya depot near Kursk held 300 shells ![pixel]({t}/article.png) and "
        f"[click here]({t}/link) <img src=\"{t}/raw.png\">.\n", encoding="utf-8")
    try:
        first = browser.new_page(viewport={"width": 1400, "height": 1000})
        first.goto(url)
        first.wait_for_selector("#question textarea")
        first.get_by_text("Articles: re-sync or add your own").click()
        first.click("#resync")
        first.wait_for_function("() => document.querySelector('#status').innerText.includes('Synced')",
                                timeout=60_000)
        n = len([p for p in (root / "docs").iterdir() if p.suffix in (".txt", ".md")])
        visitor = browser.new_context(**device, color_scheme="dark").new_page()
        visitor.goto(url)
        visitor.wait_for_selector("#question textarea")
        visitor.wait_for_function(f"() => document.querySelector('#header').innerText.includes('{n} articles')",
                                  timeout=20_000)  # not the count from when the page was built
        _ask(visitor, "How many shells did the Zorya depot near Kursk hold?")
        assert "300" in _last_bot(visitor)
        _open_citation(visitor, "#cite-0-1", "300")
        colors = visitor.evaluate("""() => { const s = getComputedStyle(document.querySelector('#article-view mark'));
            const rgb = c => c.match(/[0-9.]+/g).map(Number); return [rgb(s.color), rgb(s.backgroundColor)]; }""")
        assert _contrast(colors[0], colors[1]) >= 4.5, colors
        shot = "06-dark-mode-no-remote-content" if device is DESKTOP else "phone-dark-mode-highlight"
        visitor.screenshot(path=str(SHOTS / f"{shot}.png"))
        _back_to_chat(visitor)
        _ask(visitor, f"What is ![q]({t}/question.png) the [Zorya]({t}/qlink) depot?")
        chat_html = visitor.inner_html("#chat")
        assert not re.search(r"<img[^>]+127\.0\.0\.1", chat_html) and not re.search(r"<a[^>]+href=\"http", chat_html)
        visitor.wait_for_timeout(1000)
        assert hits == [], hits  # nothing was fetched because of the article or the question

        clear = visitor.locator("#chat button[aria-label*='lear' i], #chat button[title*='lear' i]").first
        clear.tap() if device is PHONE else clear.click()
        visitor.wait_for_function("() => document.querySelector('#sources').innerText.includes('appear here')",
                                  timeout=20_000)
        assert "Pick a citation" in visitor.inner_text("#article-view")
        _ask(visitor, "How many were wounded?")  # nothing is left of the old topic to rewrite it with
        assert "Interpreted as" not in _last_bot(visitor)
        first.close()
        visitor.context.close()
    finally:
        tracker.shutdown()


@VIEWPORTS
def test_old_answers_keep_their_sources_and_the_box_is_locked_while_answering(
        browser: Any, page_url: tuple[str, Path], device: dict[str, Any]) -> None:
    url, _ = page_url
    page = browser.new_context(**device).new_page()
    page.goto(url)
    page.wait_for_selector("#question textarea")
    page.evaluate("""() => { window.__locked = false; window.__stop = false;
        new MutationObserver(() => {
          const t = document.querySelector('#question textarea');
          if (t && t.disabled) window.__locked = true;
          const s = document.querySelector('#stop');
          if (s && s.offsetParent !== null) window.__stop = true;
        }).observe(document.body, {subtree: true, childList: true, attributes: true}); }""")
    _ask(page, "How many North Korean troops did Russia deploy to Kursk?")
    assert page.evaluate("() => window.__locked && window.__stop"), "box locked and Stop shown while answering"
    page.wait_for_function(_READY, timeout=20_000)
    assert not page.locator("#stop").is_visible()
    _ask(page, "What is the range of the long Neptune missile?")
    # [1] of the older answer still opens the older answer's article and sources
    _open_citation(page, "#cite-0-1", "12,000")
    assert "Kremlin accelerates" in page.inner_text("#sources")
    page.screenshot(path=str(SHOTS / ("07-older-answer-citation.png" if device is DESKTOP
                                      else "phone-older-answer-citation.png")))
    _back_to_chat(page)
    _open_citation(page, "#cite-1-1", "1,000")
    assert "Ukraine resists Russian advances" in page.inner_text("#sources")
    page.context.close()


def test_preview_copy_source_cards_and_articles_panel(browser: Any, page_url: tuple[str, Path]) -> None:
    """Hovering [n] previews its quote; copy gives plain text with the sources; a source card opens its
    article; the articles panel lists headlines, dates and sizes; the header says what the articles are about."""
    url, _ = page_url
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#question textarea")
    assert "mostly about" in page.inner_text("#header") and "Kursk" in page.inner_text("#header")
    _ask(page, "How many North Korean troops did Russia deploy to Kursk?")
    page.hover("#chat a[href='#cite-0-1']")
    preview = page.locator("#cite-preview")
    preview.wait_for(state="visible", timeout=5_000)
    assert "about 12,000 North Korean troops" in preview.inner_text()
    assert "Kremlin accelerates" in preview.inner_text()  # the headline it comes from
    page.screenshot(path=str(SHOTS / "08-hover-preview.png"))
    page.mouse.move(5, 5)
    page.wait_for_function("() => document.querySelector('#cite-preview').style.display === 'none'")

    page.locator("#chat button[aria-label='Copy message']").last.click()
    copied = page.evaluate("() => navigator.clipboard.readText()")
    assert copied.startswith("Russia later deployed about 12,000") and "Sources:" in copied, copied
    assert "#cite" not in copied and "](" not in copied and "\\" not in copied
    assert "[1] Kremlin accelerates concerted push" in copied

    cards = page.locator("#sources .src-card[data-cite]")
    assert cards.count() >= 2
    second_quote = cards.nth(1).locator(".quote").inner_text().strip("“”")
    cards.nth(1).click()
    page.wait_for_function("q => { const m = document.querySelector('#article-view mark');"
                           " return m && q.startsWith(m.innerText.slice(0, 40)); }", arg=second_quote, timeout=20_000)

    page.locator("#cite-picker label").first.click()  # picking a citation by hand opens it too
    page.wait_for_function("() => { const m = document.querySelector('#article-view mark');"
                           " return m && m.innerText.includes('12,000'); }", timeout=20_000)

    page.get_by_text("Articles: re-sync or add your own").click()
    listing = page.locator("#articles-list")
    listing.wait_for(timeout=10_000)
    text = listing.inner_text()
    assert "Kremlin accelerates concerted push to drive Ukrainian forces from Kursk region" in text
    assert "Featured" not in text and "words" in text and "undated" in text
    page.screenshot(path=str(SHOTS / "09-articles-panel.png"), full_page=True)
    context.close()


def test_five_turns_on_a_phone(browser: Any, page_url: tuple[str, Path]) -> None:
    """A 390×844 touch screen: the box stays in reach, a pronoun follow-up is rewritten and a new topic is not,
    an older answer's [1] opens its own article over the chat without moving the page, the way back is one tap,
    and the trash button forgets the conversation. Screenshots: phone-1 … phone-6."""
    url, _ = page_url
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#question textarea")

    def in_reach() -> bool:
        box = page.locator("#question textarea").bounding_box()
        return bool(box) and box["y"] >= 0 and box["y"] + box["height"] <= 844

    _ask(page, "Who is the acting governor of the Kursk region?")
    assert "Smirnov" in _last_bot(page) and in_reach()
    page.screenshot(path=str(SHOTS / "phone-1-first-answer.png"))
    _ask(page, "What did he say about civilians?")
    assert "evacuated" in _last_bot(page) and "Interpreted as" in _last_bot(page)
    page.screenshot(path=str(SHOTS / "phone-2-follow-up.png"))
    _ask(page, "What is the range of the long Neptune missile?")
    assert "1,000" in _last_bot(page) and "Interpreted as" not in _last_bot(page) and in_reach()
    page.screenshot(path=str(SHOTS / "phone-3-new-topic.png"))

    older = page.locator("#chat a[href='#cite-0-1']")
    older.scroll_into_view_if_needed()  # the user scrolls back up to the first answer, then taps its [1]
    page.wait_for_timeout(300)
    before = page.evaluate("() => scrollY")
    older.tap()
    page.wait_for_function("() => { const m = document.querySelector('#article-view mark');"
                           " return m && m.innerText.includes('Smirnov'); }", timeout=20_000)
    page.wait_for_function("() => document.querySelector('#article').classList.contains('sheet')")
    page.wait_for_timeout(400)
    mark = page.locator("#article-view mark").bounding_box()
    assert mark and 0 <= mark["y"] <= 844, "the highlight is on screen"
    assert page.evaluate("() => scrollY") == before, "the page did not jump"
    page.screenshot(path=str(SHOTS / "phone-4-older-citation.png"))
    page.locator(".sheet-close").tap()
    page.wait_for_function("() => !document.querySelector('#article').classList.contains('sheet')")
    assert page.evaluate("() => scrollY") == before and "Neptune" in _last_bot(page)

    _ask(page, "How many North Korean troops did Russia deploy to Kursk?")
    assert "12,000" in _last_bot(page) and in_reach()
    cards = page.inner_text("#sources")  # headlines, not boilerplate or file names; no offsets or scores
    assert "Kremlin accelerates concerted push" in cards and "Featured" not in cards and "score" not in cards
    page.locator("#chat a[href='#cite-3-1']").tap()
    page.locator("#cite-preview").wait_for(state="visible", timeout=5_000)  # tapping also previews the quote
    page.wait_for_timeout(1_000)  # long enough to read: the article opening (focus moving on) keeps it
    assert page.locator("#cite-preview").is_visible()
    page.wait_for_function("() => document.querySelector('#article').classList.contains('sheet')"
                           " && document.querySelector('#article-view mark').innerText.includes('12,000')",
                           timeout=20_000)
    page.locator(".sheet-close").tap()
    page.wait_for_function("() => !document.querySelector('#article').classList.contains('sheet')")
    page.screenshot(path=str(SHOTS / "phone-5-fifth-turn.png"))

    page.locator("#chat button[aria-label*='lear' i]").first.tap()
    page.wait_for_function("() => document.querySelector('#sources').innerText.includes('appear here')",
                           timeout=20_000)
    _ask(page, "What did he say about civilians?")  # no governor left to point back to
    assert "Interpreted as" not in _last_bot(page)
    page.screenshot(path=str(SHOTS / "phone-6-after-clear.png"))
    context.close()
