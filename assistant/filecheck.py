"""What the index says is checked against the articles as they are on disk now.

The index (and a long-running process's view of it) can be behind the folder: another process edits an
article, or syncs while this one answers. A citation is only handed out if ``read_text(path)[start:end] ==
quote`` for the file as it is at that moment: retrieved chunks whose text is gone from their file are not
used, quotes that moved are re-located, and an answer that still cites vanished text is withdrawn.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .errors import DocumentsError
from .ingest import decode, inside, read_bytes
from .schema import Answer, RetrievedContext

log = logging.getLogger(__name__)

_MAX_READ = 200_000_000


class Files:
    """Current article texts, re-read only when a file's inode, size or mtime changes."""

    def __init__(self, docs_dir: Path, follow_external_links: bool = False) -> None:
        self.docs_dir = Path(docs_dir)
        self.follow_external_links = follow_external_links
        self._cache: dict[str, tuple[tuple[int, int, int], str | None]] = {}

    def text(self, source: str) -> str | None:
        """The article's text now, or None if it is gone, unreadable or (through a link) outside the folder."""
        path = self.docs_dir / source
        try:
            st = os.stat(path)
        except (OSError, ValueError):
            return None
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        hit = self._cache.get(source)
        if hit is not None and hit[0] == key:
            return hit[1]
        text: str | None = None
        if self.follow_external_links or inside(path, self.docs_dir):
            try:
                text = decode(read_bytes(path, source, _MAX_READ))
            except (DocumentsError, UnicodeDecodeError):
                text = None
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[source] = (key, text)
        return text


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
    """Every citation re-checked against its file now. In an article whose text moved, a quote gets its new
    offsets; anywhere else a quote must be exactly where it says (a mismatch there is a bug, not an edit).
    An answer that would cite text its file does not hold is withdrawn (an abstention that says why)."""
    gone: set[str] = set()
    for c in answer.citations:
        text = files.text(c.source)
        if text is not None and text[c.start : c.end] == c.quote:
            continue
        pos = None if text is None or c.source not in changes.moved else locate(text, c.quote, c.start)
        if pos is None:
            if text is not None and c.source not in changes.moved and c.source not in changes.gone:
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
