"""The Gradio chat page: streamed cited answers, a sources panel, and the article viewer.

Every [n] in an answer is a link; following it (or picking the citation in the sources panel)
opens the whole article with the quoted span highlighted and scrolled into view.
"""

from __future__ import annotations

import collections
import html
import ipaddress
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from .assistant import Assistant
from .errors import AssistantError, ConfigError, DocumentsError
from .ingest import article_text, read_bytes
from .redact import redact
from .schema import Answer
from .settings import Settings

log = logging.getLogger(__name__)

EXAMPLES = [
    "How many North Korean troops did Russia deploy to Kursk?",
    "How many villages did Ukrainian troops control in Kursk?",
    "What is the range of the long Neptune missile?",
    "Who is the acting governor of the Kursk region?",
    "Give me an overview of the fighting in Kursk.",
]

CSS = """
#article-view { max-height: 520px; overflow-y: auto; border: 1px solid #ddd; padding: 8px 12px; border-radius: 6px; }
#article-view pre { white-space: pre-wrap; font-family: inherit; font-size: 0.95em; line-height: 1.5; }
#article-view mark, .src-card mark { background: #ffe066; color: #111; padding: 1px 0; }
@media (prefers-color-scheme: dark) { #article-view mark, .src-card mark { background: #8a6d00; color: #fff; } }
.dark #article-view mark, .dark .src-card mark { background: #8a6d00; color: #fff; }
.src-card .meta { opacity: 0.8; font-size: 0.9em; }
.src-card { border-left: 3px solid #4c6ef5; padding: 4px 8px; margin: 6px 0; }
.src-card .quote { font-style: italic; }
.abstain-note { color: #8a5a00; }
#cite-target, #cite-open { display: none !important; }
.src-card[data-cite] { cursor: pointer; }
.src-card[data-cite]:hover { background: rgba(76, 110, 245, 0.08); }
#cite-preview { position: fixed; z-index: 1001; max-width: min(420px, 90vw); padding: 8px 10px; border-radius: 6px;
  background: #fffbe6; color: #111; border: 1px solid #d9c36a; box-shadow: 0 2px 8px rgba(0,0,0,.25);
  font-size: 0.9em; line-height: 1.4; display: none; }
#cite-preview .meta { display: block; opacity: 0.75; font-size: 0.85em; margin-top: 4px; }
.answer-sources summary { cursor: pointer; opacity: 0.85; }
.answer-sources li { margin: 2px 0; }
.sheet-close { display: none; }
#articles-list table { width: 100%; font-size: 0.9em; }
#articles-list td, #articles-list th { padding: 2px 6px; text-align: left; vertical-align: top; }
@media (max-width: 760px) {
  #chat { height: 62vh !important; }
  #article.sheet { position: fixed !important; inset: 0; z-index: 1000; margin: 0; padding: 8px;
    background: var(--background-fill-primary, #fff); overflow: hidden; }
  #article.sheet #article-view { max-height: calc(100vh - 70px); }
  #article.sheet .sheet-close { display: block; width: 100%; margin-bottom: 6px; padding: 10px; font-weight: 600;
    border-radius: 6px; border: 1px solid #999; background: var(--button-secondary-background-fill, #eee); }
}
"""

HEAD = """
<script>
// [n] in any answer (#cite-<answer>-<n>) opens that answer's citation n: the answer and citation go into a
// hidden box and a hidden button asks the server for that answer's sources and the article.
// A source card (data-cite="<answer>-<n>") opens the same way.
function assistantOpen(target) {
  const box = document.querySelector('#cite-target textarea, #cite-target input');
  const go = document.querySelector('#cite-open');
  if (!box || !go) return;
  box.value = target;
  box.dispatchEvent(new Event('input', {bubbles: true}));
  setTimeout(() => go.click(), 50);
}
document.addEventListener('click', function (e) {
  if (!e.target.closest) return;
  const close = e.target.closest('.sheet-close');
  if (close) { const s = document.querySelector('#article'); if (s) s.classList.remove('sheet'); return; }
  const copy = e.target.closest('#chat button[aria-label="Copy message"]');
  if (copy) { assistantCopy(copy, e); return; }
  const a = e.target.closest('a[href^="#cite-"]');
  if (a) {
    e.preventDefault();
    if (e.pointerType === 'touch' || window.matchMedia('(hover: none)').matches) assistantPreview(a, 4000);
    assistantOpen(a.getAttribute('href').slice(6));
    return;
  }
  const card = e.target.closest('.src-card[data-cite]');
  if (card && !e.target.closest('details')) assistantOpen(card.getAttribute('data-cite'));
}, true);
// Hovering (or focusing, or tapping) [n] previews its quote.
function assistantPreview(a, hideAfter) {
  let p = document.querySelector('#cite-preview');
  if (!p) { p = document.createElement('div'); p.id = 'cite-preview'; p.setAttribute('role', 'tooltip');
            document.body.appendChild(p); }
  if (a.title) { a.dataset.quote = a.title; a.removeAttribute('title'); }
  const q = a.dataset.quote || '';
  if (!q) return;
  const cut = q.lastIndexOf(' — ');
  p.textContent = cut > 0 ? q.slice(0, cut) : q;
  if (cut > 0) { const m = document.createElement('span'); m.className = 'meta'; m.textContent = q.slice(cut + 3);
                 p.appendChild(m); }
  p.style.display = 'block';
  const r = a.getBoundingClientRect();
  const top = r.bottom + 6 + p.offsetHeight > window.innerHeight ? r.top - p.offsetHeight - 6 : r.bottom + 6;
  p.style.top = Math.max(4, top) + 'px';
  p.style.left = Math.max(4, Math.min(r.left, window.innerWidth - p.offsetWidth - 4)) + 'px';
  clearTimeout(window.__previewTimer);
  // a tapped preview stays its time even when the tap's focus moves on (the article view takes it)
  window.__previewUntil = hideAfter ? Date.now() + hideAfter : 0;
  if (hideAfter) window.__previewTimer = setTimeout(assistantHidePreview, hideAfter);
}
function assistantHidePreview() { const p = document.querySelector('#cite-preview'); if (p) p.style.display = 'none'; }
for (const [on, off] of [['mouseover', 'mouseout'], ['focusin', 'focusout']]) {
  document.addEventListener(on, e => { const a = e.target.closest && e.target.closest('a[href^="#cite-"]');
    if (a) assistantPreview(a, 0); });
  document.addEventListener(off, e => { const a = e.target.closest && e.target.closest('a[href^="#cite-"]');
    if (a && !(window.__previewUntil > Date.now())) assistantHidePreview(); });
}
// Copy gives plain text: the answer, then its sources (title, date, quote), never link markup.
function assistantCopy(button, e) {
  // the buttons follow their message inside the chat's message list
  let row = button.closest('.message-buttons') || button.parentElement;
  while (row && !(row.querySelector && row.querySelector('.message-content'))) row = row.previousElementSibling;
  const msg = row && Array.from(row.querySelectorAll('.message-content')).pop();
  if (!msg) return;
  e.preventDefault(); e.stopImmediatePropagation();
  const clone = msg.cloneNode(true);
  const sources = Array.from(clone.querySelectorAll('.answer-sources li')).map(li => li.textContent.trim());
  clone.querySelectorAll('.answer-sources').forEach(d => d.remove());
  const holder = document.createElement('div');
  holder.style.position = 'fixed'; holder.style.left = '-10000px'; holder.appendChild(clone);
  document.body.appendChild(holder);
  let text = clone.innerText.replace(/\\n{3,}/g, '\\n\\n').trim();
  holder.remove();
  if (sources.length) text += '\\n\\nSources:\\n' + sources.join('\\n');
  navigator.clipboard.writeText(text).catch(() => {});
  window.__copied = text;
}
</script>
"""

# Scroll the highlight to the middle of the viewer, never the page: on a phone the viewer opens as a sheet
# over the chat with a "Back to the chat" button, so the conversation stays where it was.
SCROLL_JS = """() => { setTimeout(() => { const v = document.querySelector('#article-view');
 const m = document.querySelector('#article-view mark'); const s = document.querySelector('#article');
 if (!v || !m) return;
 if (window.matchMedia('(max-width: 760px)').matches && s) { s.classList.add('sheet'); }
 else { const r = v.getBoundingClientRect();
   if (r.bottom < 0 || r.top > window.innerHeight) v.scrollIntoView({block: 'nearest'}); }
 v.scrollTop += m.getBoundingClientRect().top - v.getBoundingClientRect().top - v.clientHeight / 2; }, 150); }"""

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str) -> str:
    """A file name that cannot escape the documents folder (no separators, no dot-dot, no hidden)."""
    base = Path(name.replace("\\", "/")).name
    stem, dot, ext = base.rpartition(".")
    if not dot:
        stem, ext = base, ""
    stem = _SAFE.sub("_", stem).strip("._") or "article"
    ext = ext.lower()
    return f"{stem[:80]}.{ext}" if ext else stem[:80]


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def save_upload(kb: Assistant, src: Path, original_name: str) -> str:
    """Copy an uploaded article into the documents folder under a safe, non-clobbering name. What a sync would
    skip (binary, not UTF-8 nor UTF-16/32 with a byte-order mark, empty) is refused before it is saved."""
    docs = Path(kb.settings.docs_dir)
    name = safe_name(original_name)
    if Path(name).suffix not in (".txt", ".md"):
        raise DocumentsError(f"{name}: only .txt and .md articles are accepted")
    size = src.stat().st_size
    if size > kb.settings.max_upload_bytes:
        raise DocumentsError(f"{name}: {size:,} bytes is over the {kb.settings.max_upload_bytes:,}-byte limit")
    data = read_bytes(src, name, kb.settings.max_upload_bytes)  # a regular file, never more than the limit
    try:
        article_text(data, name)  # the sync's own check
    except DocumentsError as exc:  # "x.md: skipped, looks like a binary file": here it is not added at all
        raise DocumentsError(str(exc).replace(": skipped, ", ": ", 1)) from None
    i = 0
    while True:  # never overwrite a different article, never write through a link or into a pipe
        target = docs / (name if i == 0 else f"{Path(name).stem}-{i}{Path(name).suffix}")
        i += 1
        if target.parent.resolve() != docs.resolve() or target.name in ("", ".", ".."):
            raise DocumentsError(f"{name}: refusing to write outside the documents folder")
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0),
                         0o644)
        except FileExistsError:  # the same bytes are already there: nothing to add; else try the next name
            if _holds(target, data, docs, kb.settings.max_upload_bytes):
                return target.name
            continue
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return target.name


def _holds(path: Path, data: bytes, docs: Path, max_bytes: int) -> bool:
    """Whether the article at path holds exactly data, read the way a sync reads it (a link, a FIFO or a
    device there holds nothing: it is never opened in a way that follows or blocks)."""
    try:
        return read_bytes(path, path.name, max_bytes + 1, docs) == data
    except (DocumentsError, OSError):
        return False


def uploaded_file(path: str | Path, uploaded: Collection[str], upload_dir: str | Path) -> Path:
    """The file of one upload, only if the browser sent its bytes: one of the files Gradio's upload route
    received, inside its upload folder. A request that names any other path (a file of the server, another
    visitor's upload) is refused, whatever Gradio itself checks."""
    p = Path(path)
    real = p.resolve()
    ours = str(p) in uploaded or str(real) in {str(Path(u).resolve()) for u in list(uploaded)}
    if not ours or not real.is_relative_to(Path(upload_dir).resolve()) or not real.is_file():
        raise DocumentsError(f"{safe_name(p.name)}: not added, it was not uploaded from this page; "
                             "choose the file with the page's upload box")
    return real


def discard_upload(path: str | Path, uploaded: set[str], upload_dir: str | Path) -> None:
    """Delete an upload's temporary copy (and its folder, when empty) once it is saved or refused: only a file
    Gradio's upload route received (a request naming another visitor's pending upload deletes nothing), and
    nothing outside Gradio's upload folder."""
    p = Path(path)
    root = Path(upload_dir).resolve()
    real = p.resolve()
    if str(p) not in uploaded and str(real) not in uploaded:  # a path a request named, not a file it sent
        return
    uploaded.discard(str(p))
    uploaded.discard(str(real))
    if real == root or not real.is_relative_to(root):
        return
    try:
        real.unlink(missing_ok=True)
        if real.parent != root:
            real.parent.rmdir()  # Gradio keeps each upload in a folder named after its hash
    except OSError:
        pass  # not empty (another upload of the same bytes), or gone already


class RateLimit:
    """At most `limit` events in any `seconds`, across threads."""

    def __init__(self, limit: int, seconds: float = 60.0) -> None:
        self.limit, self.seconds = limit, seconds
        self._times: collections.deque[float] = collections.deque()
        self._lock = threading.Lock()

    def take(self) -> bool:
        now = time.monotonic()
        with self._lock:
            while self._times and now - self._times[0] >= self.seconds:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return False
            self._times.append(now)
            return True


def _upload_parts(f: Any) -> tuple[str, str]:
    """(temporary path, the name the visitor's file had) of one uploaded file, as Gradio hands it over."""
    if isinstance(f, dict):
        path = str(f.get("path") or "")
        return path, str(f.get("orig_name") or Path(path).name)
    path = str(getattr(f, "path", None) or getattr(f, "name", None) or f)
    return path, str(getattr(f, "orig_name", None) or Path(path).name)


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~<>:/=\"'])")


def as_text(text: str) -> str:
    """Article, question or answer text for the chat's Markdown, shown as typed: HTML escaped and every
    Markdown punctuation mark backslash-escaped, so nothing in it becomes a link, an image (a request to
    another server), a heading or a table."""
    return _MD_SPECIAL.sub(r"\\\1", html.escape(" ".join(text.split()), quote=False))


def render_answer(answer: Answer, index: int = 0) -> str:
    """Answer text as chat Markdown: shown as text, with every [n] a link to citation n of this answer (the
    index-th of the conversation), which keeps working after newer answers arrive."""
    parts = re.split(r"(\[\d+\])", answer.text)
    out = []
    for p in parts:
        m = re.fullmatch(r"\[(\d+)\]", p)
        if m:
            n = int(m.group(1))
            tip = _preview(answer.citations[n - 1]) if 1 <= n <= len(answer.citations) else ""
            out.append(f'<a href="#cite-{index}-{n}" class="cite" title="{html.escape(tip)}">[{n}]</a>')
        else:  # keep the spaces around the markers: "… incursion. [1] North Korea …"
            out.append((" " if p[:1].isspace() else "") + as_text(p) + (" " if p[-1:].isspace() else ""))
    text = "".join(out)
    if answer.abstained:
        return f"**Not in the articles.** *{text}*"
    prefix = "**Sources disagree.** " if answer.conflict else ""
    asked = (f"\n\n*Interpreted as:* {as_text(answer.standalone_question)}" if answer.standalone_question else "")
    notes = "".join(f"\n\n> **Note:** {as_text(redact(n))}" for n in answer.notes)
    return prefix + text + asked + notes + _sources_footer(answer)


def _source_line(c: Any) -> str:
    return f"{' '.join(c.title.split()) or c.source} ({c.date or 'undated'})"


def _preview(c: Any) -> str:
    """What hovering or tapping [n] shows: the quote, then its article and date."""
    quote = " ".join(c.quote.split())
    return f"“{quote[:400]}{'…' if len(quote) > 400 else ''}” — {_source_line(c)}"


def _sources_footer(answer: Answer) -> str:
    """The answer's own sources under it (collapsed): kept with the answer, copied with it, in reach on a phone."""
    if not answer.citations:
        return ""
    items = "".join(f"<li>[{n}] {html.escape(_source_line(c))}: “{html.escape(' '.join(c.quote.split()))}”</li>"
                    for n, c in enumerate(answer.citations, start=1))
    return (f"\n\n<details class=\"answer-sources\"><summary>Sources ({len(answer.citations)})</summary>"
            f"<ol style=\"list-style: none; padding-left: 0\">{items}</ol></details>")


def render_sources(answer: Answer | None, index: int | None = None) -> str:
    if answer is None or not answer.citations:
        if answer is not None and answer.abstained:
            return "<p class='abstain-note'>No source answers this question, so nothing is cited.</p>"
        return "<p>Sources of the current answer appear here.</p>"
    cards = []
    opens = "" if index is None else f" data-cite='{index}-{{n}}' title='Open the article at this quote'"
    for n, c in enumerate(answer.citations, start=1):
        dated = f" · {html.escape(c.date)}" if c.date else " · undated"
        cards.append(
            f"<div class='src-card' id='cite-{n}'{opens.format(n=n)}>"
            f"<b>[{n}] {html.escape(c.title[:120] or c.source)}</b>"
            f"<span class='meta'>{dated}</span><br>"
            f"<span class='quote'>“{html.escape(c.quote)}”</span>"
            f"<details class='meta'><summary>details</summary><code>{html.escape(c.source)}</code> · characters "
            f"{c.start}–{c.end} · retrieval score {c.score:.3f}</details></div>"
        )
    return "".join(cards)


def render_article(kb: Assistant, answer: Answer | None, choice: str | None) -> str:
    if answer is None or not choice:
        return "<div id='article-view'><p>Pick a citation to read the article it comes from.</p></div>"
    n = int(choice.strip("[]"))
    if not 1 <= n <= len(answer.citations):
        return "<div id='article-view'><p>That citation is not in the current answer.</p></div>"
    c = answer.citations[n - 1]
    text = kb.files.text(c.source)  # only what a sync would read: never a link out of the folder
    if text is None:
        return (f"<div id='article-view'><p>Cannot open {html.escape(c.source)}: it was removed, cannot be read "
                "now, or is a link out of the documents folder.</p></div>")
    if text[c.start : c.end] != c.quote:
        return (f"<div id='article-view'><p>{html.escape(c.source)} changed since this answer; "
                "re-sync and ask again.</p></div>")
    body = (html.escape(text[: c.start]) + f"<mark id='hl'>{html.escape(c.quote)}</mark>"
            + html.escape(text[c.end :]))
    dated = html.escape(c.date) if c.date else "no date given"
    return (f"<button class='sheet-close' type='button'>← Back to the chat</button>"
            f"<div id='article-view'><h3>{html.escape(c.title)}</h3><p>{dated} · <code>{html.escape(c.source)}</code>"
            f"</p><pre>{body}</pre></div>")


def public_text(kb: Assistant, text: str) -> str:
    """A message for visitors without credentials: no URL's password or key, no configured secret."""
    s = kb.settings
    return redact(text, s.llm_base_url, s.llm_key(), s.auth_password)


def header(kb: Assistant) -> str:
    try:
        corpus = kb.corpus
        articles, chunks = len(corpus.sources), len(corpus.records)
    except AssistantError as exc:
        return f"### assistant\nError: {as_text(public_text(kb, str(exc)))}"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(kb.last_sync_at)) if kb.last_sync_at else "never"
    about = topics(corpus)
    # the LLM's address as text (never a link a visitor could follow), without its password or key
    return (f"### assistant — cited answers from the articles\n"
            f"**Answering:** {as_text(public_text(kb, kb.describe_answerer()))} · **Corpus:** {articles} articles, "
            f"{chunks} chunks · "
            f"**Last sync:** {when}" + (f"\n\n**The articles are mostly about:** {as_text(', '.join(about))}"
                                        if about else ""))


def _status(msg: str) -> str:
    """A status message as Markdown: its lines shown as text (file names may hold Markdown), "- " items kept."""
    return "\n".join("- " + as_text(line[2:]) if line.startswith("- ") else as_text(line)
                     for line in msg.strip().splitlines())


#: topics() per corpus state: a Corpus is replaced, never changed, by a sync, so a visit never rescans the chunks
_TOPICS: weakref.WeakKeyDictionary[Any, list[str]] = weakref.WeakKeyDictionary()


def topics(corpus: Any, k: int = 8) -> list[str]:
    """What the articles are about: the names most of them mention (by how many articles, then how often)."""
    if corpus not in _TOPICS:
        _TOPICS[corpus] = _topics(corpus)
    return _TOPICS[corpus][:k]


def _topics(corpus: Any) -> list[str]:
    from .text import MONTHS, NAME_SPAN

    by_article: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for r in corpus.records:
        for m in NAME_SPAN.finditer(r.text):
            name = m.group(0)
            if name.lower() in MONTHS or len(name) < 3:
                continue
            by_article.setdefault(name, set()).add(r.source)
            counts[name] = counts.get(name, 0) + 1
    out: list[str] = []
    for name in sorted(by_article, key=lambda n: (-len(by_article[n]), -counts[n], n)):
        if not any(name.lower()[:5] == o.lower()[:5] for o in out):  # Russia and Russian: once
            out.append(name)
    return out


def articles_table(kb: Assistant) -> str:
    """The articles panel: each article's headline, date and size, newest first (undated last)."""
    try:
        corpus = kb.corpus
    except AssistantError as exc:
        return f"<p>Error: {html.escape(public_text(kb, str(exc)))}</p>"
    if not corpus.sources:
        return "<p>No articles are indexed yet: add some below.</p>"
    rows = []
    dates = {r.source: r.date for r in corpus.records}
    for src in sorted(corpus.sources, key=lambda s: (dates.get(s) or "", s), reverse=True):
        text = kb.files.text(src)
        size = f"{len(text.split()):,} words" if text is not None else "unreadable now"
        rows.append(f"<tr><td>{html.escape(' '.join(corpus.titles.get(src, '').split()) or src)}</td>"
                    f"<td>{html.escape(dates.get(src) or 'undated')}</td><td>{size}</td>"
                    f"<td><code>{html.escape(src)}</code></td></tr>")
    return (f"<div id='articles-list'><p>{len(corpus.sources)} articles</p><table><thead><tr><th>headline</th>"
            f"<th>date</th><th>size</th><th>file</th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>")


#: streamed text reaches the page at most this often (or every STREAM_PIECES pieces): every update is a message
#: and a diff of the whole chat, which cost far more than an offline answer's milliseconds
STREAM_SECONDS = 0.1
STREAM_PIECES = 8


def _gradio() -> Any:
    """Gradio with its usage analytics off: it reads GRADIO_ANALYTICS_ENABLED when imported and when a Blocks is
    made, and would otherwise report to Gradio's servers (and check its version there) from the operator's
    machine."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    import gradio as gr

    return gr


def build(kb: Assistant) -> Any:
    gr = _gradio()
    settings: Settings = kb.settings
    uploads_per_minute = RateLimit(settings.max_uploads_per_minute)

    def respond(message: str, history: list[dict[str, Any]], convo: list[dict[str, str]],
                answers: list[dict[str, Any]]) -> Iterator[Any]:
        """stream_answer's outputs, and the question taken emptied: it is being answered (see release)."""
        for out in stream_answer(message, history, convo, answers):
            yield (*out, "")

    def stream_answer(message: str, history: list[dict[str, Any]], convo: list[dict[str, str]],
                      answers: list[dict[str, Any]]) -> Iterator[Any]:
        """Stream one answer. Outputs: chat, conversation memory, answers so far, sources, picker, article."""
        history = list(history or [])
        convo = list(convo or [])
        answers = list(answers or [])
        message = (message or "").strip()
        keep = gr.update()
        if not message:
            history.append({"role": "assistant", "content": "Error: The question is empty: type a question first."})
            yield history, convo, answers, keep, keep, keep
            return
        history.append({"role": "user", "content": as_text(message)})
        history.append({"role": "assistant", "content": "…"})
        yield history, convo, answers, keep, keep, keep
        messages = convo + [{"role": "user", "content": message}]
        answer: Answer | None = None
        try:
            standalone = kb.rewrite(messages)
            streamed, unsent, last = "", 0, 0.0
            for piece in kb.stream(standalone):
                if isinstance(piece, str):
                    streamed += piece
                    unsent += 1
                    if unsent >= STREAM_PIECES or time.monotonic() - last >= STREAM_SECONDS:
                        history[-1] = {"role": "assistant", "content": as_text(streamed) + " ▌"}
                        unsent, last = 0, time.monotonic()
                        yield history, convo, answers, keep, keep, keep
                else:
                    answer = piece
        except AssistantError as exc:
            history[-1] = {"role": "assistant", "content": f"Error: {as_text(public_text(kb, str(exc)))}"}
            yield history, convo, answers, keep, keep, keep
            return
        except Exception as exc:  # never a traceback in the page
            log.exception("unexpected error answering %r", message)
            history[-1] = {"role": "assistant", "content": f"Error: Something went wrong ({type(exc).__name__}). "
                           "Try again, or re-sync the articles."}
            yield history, convo, answers, keep, keep, keep
            return
        assert answer is not None
        answer.question = message
        if standalone != message:
            answer.standalone_question = standalone
        history[-1] = {"role": "assistant", "content": render_answer(answer, len(answers))}
        answers.append(answer.model_dump(mode="json", exclude={"contexts"}))
        convo = messages + [{"role": "assistant", "content": answer.text}]
        choices = [f"[{n}]" for n in range(1, len(answer.citations) + 1)]
        yield (history, convo[-12:], answers, render_sources(answer, len(answers) - 1),
               gr.update(choices=choices, value=None), render_article(kb, None, None))

    def shown_answer(answers: list[dict[str, Any]], index: int | None) -> Answer | None:
        if not answers:
            return None
        i = len(answers) - 1 if index is None else index
        return Answer.model_validate(answers[i]) if 0 <= i < len(answers) else None

    def open_citation(choice: str | None, answers: list[dict[str, Any]], index: int | None) -> str:
        return render_article(kb, shown_answer(answers, index), choice)

    def open_target(target: str, answers: list[dict[str, Any]]) -> tuple[Any, Any, Any, int | None]:
        """A click on [n] of answer i: that answer's sources, its citation n picked, the article."""
        m = re.fullmatch(r"(\d+)-(\d+)", (target or "").strip())
        if not m:
            return gr.update(), gr.update(), gr.update(), None
        i, n = int(m.group(1)), int(m.group(2))
        answer = shown_answer(answers, i)
        if answer is None:
            return gr.update(), "<div id='article-view'><p>That answer is no longer here.</p></div>", gr.update(), None
        choices = [f"[{k}]" for k in range(1, len(answer.citations) + 1)]
        return (render_sources(answer, i), render_article(kb, answer, f"[{n}]"),
                gr.update(choices=choices, value=f"[{n}]"), i)

    def resync() -> tuple[str, str, str]:
        try:
            report = kb.sync()
        except AssistantError as exc:
            return header(kb), _status(public_text(kb, f"Error: {exc}")), articles_table(kb)
        skipped = "".join(f"\n- skipped: {s}" for s in report.skipped)
        return header(kb), _status(f"Synced: {report.summary()}{skipped}"), articles_table(kb)

    def upload(files: list[Any] | None) -> tuple[str, str, None, str]:
        """Add the articles a visitor uploaded: only files the browser sent (see uploaded_file), within the
        limits on count, total size and articles a minute; every temporary copy is deleted afterwards."""
        if not files:
            return header(kb), "No file chosen.", None, articles_table(kb)
        upload_dir = upload_box.GRADIO_CACHE
        saved: list[str] = []
        problems: list[str] = []
        total = 0
        try:
            for n, f in enumerate(files):
                path, name = _upload_parts(f)
                try:
                    if n >= settings.max_upload_files:
                        raise DocumentsError(
                            f"{safe_name(name)}: one upload adds at most {settings.max_upload_files} articles "
                            "(ASSISTANT_MAX_UPLOAD_FILES); add it in another upload")
                    src = uploaded_file(path, demo.upload_file_set, upload_dir)
                    total += src.stat().st_size
                    if total > settings.max_upload_total_bytes:
                        raise DocumentsError(
                            f"{safe_name(name)}: this upload is over {settings.max_upload_total_bytes:,} bytes in "
                            "all (ASSISTANT_MAX_UPLOAD_TOTAL_BYTES); add it in another upload")
                    if not uploads_per_minute.take():
                        raise DocumentsError(
                            f"{safe_name(name)}: the page accepts at most {settings.max_uploads_per_minute} "
                            "articles a minute (ASSISTANT_MAX_UPLOADS_PER_MINUTE); try again in a minute")
                    saved.append(save_upload(kb, src, name))
                except AssistantError as exc:
                    problems.append(str(exc))
        finally:
            for f in files:
                discard_upload(_upload_parts(f)[0], demo.upload_file_set, upload_dir)
        msg = ""
        if saved:
            try:
                report = kb.sync()
                msg = f"Added {', '.join(saved)}. {report.summary()}"
            except AssistantError as exc:
                msg = public_text(kb, f"Error: Saved {', '.join(saved)} but the sync failed: {exc}")
        if problems:
            msg += "".join(f"\n- Not added: {p}" for p in problems)
        return header(kb), _status(msg), None, articles_table(kb)

    # analytics off; Gradio deletes what its cache keeps (uploads never followed by an event among them)
    with gr.Blocks(title="assistant — cited answers", analytics_enabled=False, delete_cache=(300, 900)) as demo:
        head_md = gr.Markdown(header(kb), elem_id="header")
        convo = gr.State([])
        answers = gr.State([])  # every answer of the conversation, so old citations keep working
        shown = gr.State(None)  # which answer the sources panel shows (None: the latest)
        pending = gr.State("")
        with gr.Row():
            with gr.Column(scale=3):
                chat = gr.Chatbot(
                    label="Chat", height=480, elem_id="chat", sanitize_html=True, buttons=["copy"],
                    placeholder="Ask about the articles. Every sentence cites its source.",
                )
                with gr.Row():
                    box = gr.Textbox(placeholder="Ask a question about the articles…", show_label=False,
                                     scale=5, elem_id="question", max_lines=4)
                    send = gr.Button("Ask", variant="primary", scale=1, elem_id="ask")
                    stop_btn = gr.Button("Stop", variant="stop", scale=1, elem_id="stop", visible=False)
                gr.Examples(EXAMPLES, inputs=[box], label="Try one of these")
                with gr.Accordion("Articles: re-sync or add your own, and what is indexed", open=False,
                                  elem_id="articles-panel"):
                    listing = gr.HTML(articles_table(kb), elem_id="articles")
                    with gr.Row():
                        sync_btn = gr.Button("Re-sync articles", elem_id="resync")
                        upload_box = gr.File(label="Add .txt / .md articles", file_count="multiple",
                                             file_types=[".txt", ".md"], elem_id="upload")
                    status = gr.Markdown("", elem_id="status")
            with gr.Column(scale=2):
                gr.Markdown("#### Sources")
                sources = gr.HTML(render_sources(None), elem_id="sources")
                picker = gr.Radio(choices=[], label="Open a citation", elem_id="cite-picker")
                article = gr.HTML(render_article(kb, None, None), elem_id="article")
                target = gr.Textbox(elem_id="cite-target", show_label=False, container=False)
                target_go = gr.Button("open", elem_id="cite-open")

        def take(message: str) -> tuple[str, str, Any, Any, Any]:
            """The question leaves the box (which is locked with the Ask button until the answer is in)."""
            return (message, "", gr.update(interactive=False), gr.update(visible=False),
                    gr.update(visible=True))

        def release(question: str) -> tuple[Any, Any, Any, None]:
            """Unlock the box. A question that was never answered (the page was too busy to queue it, or Stop
            came first) goes back into it, to send again."""
            unlocked = gr.update(interactive=True, value=question) if question else gr.update(interactive=True)
            return unlocked, gr.update(visible=True), gr.update(visible=False), None

        answering = [chat, convo, answers, sources, picker, article]
        locks = [box, send, stop_btn]
        running = []
        for trigger in (box.submit, send.click):
            started = trigger(take, [box], [pending, box, *locks], queue=False)
            # answers share one limit, whichever way the question was sent; more wait in the queue
            streaming = started.then(respond, [pending, chat, convo, answers], [*answering, pending],
                                     concurrency_id="answer", concurrency_limit=settings.page_concurrency)
            streaming.then(release, [pending], [*locks, shown], queue=False)
            # when the queue is full Gradio refuses the answer ("This application is currently busy. Please try
            # again."), which is a failure: .then does not run, this does (not queued, or it would be refused too)
            streaming.failure(release, [pending], [*locks, shown], queue=False)
            running.append(streaming)
        stop_btn.click(release, [pending], [*locks, shown], cancels=running, queue=False)
        picker.input(open_citation, [picker, answers, shown], [article]).then(None, None, None, js=SCROLL_JS)
        target_go.click(open_target, [target, answers], [sources, article, picker, shown]).then(
            None, None, None, js=SCROLL_JS)
        # syncs take the index's lock one at a time anyway: they wait in the queue, not in the answers' threads
        sync_btn.click(resync, None, [head_md, status, listing], concurrency_id="sync", concurrency_limit=1)
        # not an API endpoint (only the page's own upload box uses it); the files as Gradio received them
        upload_box.upload(upload, [upload_box], [head_md, status, upload_box, listing], concurrency_id="sync",
                          concurrency_limit=1, api_visibility="private", preprocess=False)
        demo.load(lambda: (header(kb), articles_table(kb)), None, [head_md, listing])  # the corpus as it is now

        def clear() -> tuple[list[Any], list[Any], list[Any], str, Any, str, None]:
            """The trash button forgets the whole conversation: memory, answers, sources, viewer."""
            empty = render_article(kb, None, None)
            return [], [], [], render_sources(None), gr.update(choices=[], value=None), empty, None

        chat.clear(clear, None, [chat, convo, answers, sources, picker, article, shown])
    return demo


def serve(docs_dir: str | None = None, index_dir: str | None = None, host: str | None = None,
          port: int | None = None, block: bool = True) -> Any:
    """Start the page; off loopback it requires a username and password."""
    kb = Assistant(docs_dir=docs_dir, index_dir=index_dir)
    host = host or kb.settings.host
    port = port or kb.settings.port
    auth = None
    if kb.settings.auth_username and kb.settings.auth_password:
        auth = (kb.settings.auth_username, kb.settings.auth_password)
    if not is_loopback(host) and auth is None:
        raise ConfigError(
            f"Refusing to serve on {host} without a password: anyone on the network could use it. Set "
            "ASSISTANT_AUTH_USERNAME and ASSISTANT_AUTH_PASSWORD, or bind to 127.0.0.1."
        )
    kb.sync()
    demo = build(kb)
    # beyond max_size Gradio refuses at once (HTTP 503; the page says "This application is currently busy. Please
    # try again.") instead of letting every visitor wait behind everyone else
    demo.queue(default_concurrency_limit=kb.settings.page_concurrency, max_size=kb.settings.page_queue_size)
    log.info("serving on http://%s:%s", host, port)
    # share=False whatever GRADIO_SHARE says or a hosted notebook would choose: never a public link
    return demo.launch(server_name=host, server_port=port, auth=auth, css=CSS, head=HEAD, prevent_thread_lock=not block,
                       max_file_size=kb.settings.max_upload_bytes, quiet=not block, show_error=False, share=False)
