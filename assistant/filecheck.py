"""What the index says is checked against the articles as they are on disk now.

The index (and a long-running process's view of it) can be behind the folder: another process edits an
article, or syncs while this one answers. A citation is only handed out if ``read_text(path)[start:end] ==
quote`` for the file as it is at that moment: retrieved chunks whose text is gone from their file are not
used, quotes that moved are re-located, and an answer that still cites vanished text is withdrawn.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path

from .errors import DocumentsError
from .ingest import decode, read_bytes
from .schema import Answer, RetrievedContext

log = logging.getLogger(__name__)

_MAX_READ = 200_000_000


#: A file whose timestamps are this recent when it is read may change again within the same tick of a
#: coarse clock (1 s on many filesystems) with every stamp unchanged: its text is not trusted from the cache.
_RACY_SECONDS = 2.0


class Files:
    """Current article texts.

    ``text(source)`` trusts its cache while the file's device, inode, size, mtime and ctime are what they
    were (a ctime cannot be set back, unlike an mtime with os.utime) and the file was already older than a
    clock tick when it was read. ``current(source)`` reads the file whatever the stamps say: what a citation
    shows is checked against that (a text read before is recognised by its sha256, not decoded again)."""

    def __init__(self, docs_dir: Path, follow_external_links: bool = False) -> None:
        self.docs_dir = Path(docs_dir)
        self.follow_external_links = follow_external_links
        self._cache: dict[str, tuple[tuple[int, ...] | None, str | None, str]] = {}

    def text(self, source: str) -> str | None:
        """The article's text now, or None if it is gone, unreadable or (through a link) outside the folder."""
        return self._read(source, trust=True)[0]

    def current(self, source: str) -> tuple[str | None, bool]:
        """The article's text read now, and whether it differs from the text the cache held (an edit that
        kept the file's size and timestamps)."""
        return self._read(source, trust=False)

    def _read(self, source: str, trust: bool) -> tuple[str | None, bool]:
        path = self.docs_dir / source
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None, False
        key: tuple[int, ...] | None = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        hit = self._cache.get(source)
        if trust and hit is not None and hit[0] == key:
            return hit[1], False
        text: str | None = None
        sha = ""
        try:  # what is read is checked on the open file: a link swapped in is never followed out of the folder
            data = read_bytes(path, source, _MAX_READ, self.docs_dir, self.follow_external_links)
            sha = hashlib.sha256(data).hexdigest()
            text = hit[1] if hit is not None and hit[2] == sha else decode(data)
        except (DocumentsError, UnicodeDecodeError):
            pass
        if time.time() - max(st.st_mtime, st.st_ctime) < _RACY_SECONDS:
            key = None  # it may change again within this clock tick, stamps and all: read it again next time
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[source] = (key, text, sha)
        return text, hit is not None and hit[2] != sha


def locate(text: str, quote: str, start: int) -> int | None:
    """Where quote is in text now: at start if it still is, else its occurrence nearest to start."""
    if not quote:
        return None
    if text[start : start + len(quote)] == quote:
        return start
    best: int | None = None
    pos = text.find(quote)
    while pos != -1:
        if best is None or abs(pos - start) < abs(best - start):
            best = pos
        pos = text.find(quote, pos + 1)
    return best


class Changes:
    """What the files showed while one question was answered: articles whose retrieved text is gone
    (not used), and articles whose text only moved (quotes are re-located there)."""

    def __init__(self) -> None:
        self.gone: set[str] = set()
        self.moved: set[str] = set()


def current_contexts(contexts: list[RetrievedContext], files: Files, changes: Changes) -> list[RetrievedContext]:
    """The retrieved chunks whose text is still in their article, with offsets where it is now."""
    kept: list[RetrievedContext] = []
    for ctx in contexts:
        text = files.text(ctx.source)
        pos = None if text is None else locate(text, ctx.text, ctx.start)
        if pos is None:
            changes.gone.add(ctx.source)
            continue
        if pos != ctx.start:
            changes.moved.add(ctx.source)
            ctx = ctx.model_copy(update={"start": pos, "end": pos + len(ctx.text)})
        kept.append(ctx)
    return kept


def stale_note(sources: set[str]) -> str:
    names = ", ".join(sorted(sources)[:5]) + (" …" if len(sources) > 5 else "")
    return (f"{names} changed on disk since the index was built (or was removed); what it said before was not "
            "used. Run assistant ingest (or Assistant.sync()) to answer from the new version.")


def check_answer(answer: Answer, files: Files, changes: Changes) -> Answer:
    """Every citation re-checked against its file read now (no timestamp is trusted for what is shown). In an
    article whose text moved, or that changed since this question read it, a quote gets its new offsets;
    anywhere else a quote must be exactly where it says (a mismatch there is a bug, not an edit). An answer
    that would cite text its file does not hold is withdrawn (an abstention that says why)."""
    gone: set[str] = set()
    now: dict[str, tuple[str | None, bool]] = {}  # each cited file read once, whatever its stamps say
    for c in answer.citations:
        if c.source not in now:
            now[c.source] = files.current(c.source)
        text, changed = now[c.source]
        if text is not None and text[c.start : c.end] == c.quote:
            continue
        edited = changed or c.source in changes.moved
        pos = None if text is None or not edited else locate(text, c.quote, c.start)
        if pos is None:
            if text is not None and not edited and c.source not in changes.gone:
                log.error("a citation of %s does not match the file at %d-%d", c.source, c.start, c.end)
            gone.add(c.source)
        else:
            c.start, c.end = pos, pos + len(c.quote)
    if not gone:
        return answer
    log.warning("withdrawing an answer: %s changed while it was made", ", ".join(sorted(gone)))
    return answer.model_copy(update={
        "text": "The articles changed while this answer was made, so it is not shown; ask again.",
        "citations": [], "abstained": True, "conflict": False, "sentences": [],
        "notes": [*answer.notes, stale_note(gone)],
    })
