"""Read articles from a folder and split them into token-aware, sentence-aligned chunks.

Offsets are character offsets into the file decoded as UTF-8 *without* newline translation,
i.e. ``open(path, encoding="utf-8", newline="").read()`` (see :func:`read_text`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import DocumentsError
from .text import count_tokens, date_of, encoding, split_sentences

log = logging.getLogger(__name__)

SUFFIXES = {".txt", ".md"}


@dataclass(frozen=True)
class Document:
    source: str  # path relative to the documents folder, POSIX separators
    path: Path
    text: str
    sha256: str
    title: str
    date: str = ""


@dataclass(frozen=True)
class Chunk:
    source: str
    start: int
    end: int
    text: str
    index: int
    tokens: int


def read_text(path: Path) -> str:
    """The exact text citations point into."""
    return path.read_bytes().decode("utf-8")


def title_of(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:200]
    return ""


def discover(docs_dir: Path) -> list[Path]:
    """Every .txt/.md file under docs_dir (hidden entries and symlinked folders skipped)."""
    docs_dir = Path(docs_dir)
    if not docs_dir.exists():
        raise DocumentsError(
            f"Documents folder {str(docs_dir)!r} does not exist. "
            "Create it and put .txt or .md articles in it, or set ASSISTANT_DOCS_DIR."
        )
    if not docs_dir.is_dir():
        raise DocumentsError(f"{str(docs_dir)!r} is a file, not a folder of articles.")
    found: list[Path] = []
    for root, dirs, files in os.walk(docs_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in SUFFIXES:
                found.append(Path(root) / name)
    return found


def load(path: Path, docs_dir: Path, max_bytes: int) -> Document:
    """Read and validate one article; raises DocumentsError with the reason it was skipped."""
    source = path.relative_to(docs_dir).as_posix()
    try:
        if path.stat().st_size > max_bytes:
            raise DocumentsError(
                f"{source}: skipped, {path.stat().st_size:,} bytes is over the "
                f"{max_bytes:,}-byte limit (ASSISTANT_MAX_FILE_BYTES)"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise DocumentsError(f"{source}: skipped, it disappeared while reading") from None
    except OSError as exc:
        raise DocumentsError(f"{source}: skipped, cannot read it ({exc.strerror})") from None
    if b"\x00" in data[:8192]:
        raise DocumentsError(f"{source}: skipped, looks like a binary file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentsError(
            f"{source}: skipped, not UTF-8 text (byte {exc.start}); re-save it as UTF-8"
        ) from None
    if not text.strip():
        raise DocumentsError(f"{source}: skipped, the file is empty")
    return Document(
        source=source,
        path=path,
        text=text,
        sha256=hashlib.sha256(data).hexdigest(),
        title=title_of(text),
        date=date_of(text),
    )


def _split_word(text: str, s: int, e: int, limit: int) -> list[tuple[int, int]]:
    """Cut a span in halves (at a space near the middle when there is one) until every piece fits;
    pieces are whitespace-trimmed."""
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    if e <= s:
        return []
    if e - s <= 1 or count_tokens(text[s:e]) <= limit:
        return [(s, e)]
    mid = (s + e) // 2
    space = text.rfind(" ", s + 1, mid + 1)
    if space > s + (mid - s) // 2:
        mid = space
    return _split_word(text, s, mid, limit) + _split_word(text, mid, e, limit)


def _split_long(text: str, span: tuple[int, int], limit: int) -> list[tuple[int, int]]:
    """Cut an over-long sentence at word boundaries into pieces of at most limit tokens."""
    s, e = span
    words: list[tuple[int, int]] = []
    for w in re.finditer(r"\S+", text[s:e]):
        words.extend(_split_word(text, s + w.start(), s + w.end(), limit - 1))
    pieces: list[tuple[int, int]] = []
    piece_start: int | None = None
    piece_end = s
    used = 0
    for ws, we in words:
        n = count_tokens(text[ws:we]) + 1
        if piece_start is not None and used + n > limit:
            pieces.append((piece_start, piece_end))
            piece_start, used = None, 0
        if piece_start is None:
            piece_start = ws
        piece_end, used = we, used + n
    if piece_start is not None:
        pieces.append((piece_start, piece_end))
    return pieces


def chunk(doc: Document, chunk_tokens: int, overlap_tokens: int) -> list[Chunk]:
    """Pack whole sentences into chunks of at most chunk_tokens, overlapping by whole sentences."""
    text = doc.text
    sentences = split_sentences(text)
    if not sentences:
        return []
    enc = encoding()
    units: list[tuple[int, int]] = []
    counts: list[int] = []
    for span, toks in zip(sentences, enc.encode_ordinary_batch([text[s:e] for s, e in sentences])):
        if len(toks) <= chunk_tokens:
            units.append(span)
            counts.append(len(toks))
            continue
        for piece in _split_long(text, span, chunk_tokens):
            for sub in _split_word(text, piece[0], piece[1], chunk_tokens):  # re-check the joined piece
                units.append(sub)
                counts.append(count_tokens(text[sub[0] : sub[1]]))
    chunks: list[Chunk] = []
    i = 0
    while i < len(units):
        j, used = i, counts[i]
        while j + 1 < len(units) and used + counts[j + 1] <= chunk_tokens:
            j += 1
            used += counts[j]
        s, e = units[i][0], units[j][1]
        chunks.append(Chunk(doc.source, s, e, text[s:e], len(chunks), used))
        if j + 1 >= len(units):
            break
        k, back = j + 1, 0
        while k - 1 > i and back + counts[k - 1] <= overlap_tokens:
            k -= 1
            back += counts[k]
        i = k
    return chunks
