"""Read articles from a folder and split them into token-aware, sentence-aligned chunks.

Offsets are character offsets into the text :func:`read_text` returns: the file decoded as UTF-8 without
newline translation (``open(path, encoding="utf-8", newline="").read()`` for a UTF-8 file without a byte-order
mark); a UTF-8 byte-order mark is not part of the text, and a file that starts with a UTF-16 or UTF-32 one is
decoded by it.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DocumentsError
from .text import count_tokens, date_of, encoding, split_sentences, title_of, visible

log = logging.getLogger(__name__)

SUFFIXES = {".txt", ".md", ".markdown"}
_READ = "only .txt, .md, .markdown are read"
#: What to do with a file of another type that holds an article: a document can be saved as text, plain text
#: under another extension renamed; an image or an archive gets no advice.
_ADVICE = {**dict.fromkeys((".pdf", ".doc", ".docx", ".odt", ".rtf", ".html", ".htm", ".xhtml", ".epub", ".pages",
                            ".wpd", ".eml", ".mht"), " (save it as text to include it)"),
           **dict.fromkeys((".text", ".rst", ".org", ".adoc", ".asciidoc", ".mdx", ".mkd", ".mdown", ".markdn"),
                           " (it is plain text: rename it to .txt or .md to include it)")}
_BOMS = (  # longest first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


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


@dataclass
class Found:
    """What discover() found: the article files, and every other entry with why it is not read."""

    paths: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def decode(data: bytes) -> str:
    """Article bytes as text: by their byte-order mark when they have one (it is not kept), else UTF-8.
    Raises UnicodeDecodeError."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data.decode(codec)
    return data.decode("utf-8")


def read_text(path: Path) -> str:
    """The exact text citations point into."""
    return decode(path.read_bytes())


def inside(path: Path, docs_dir: Path) -> bool:
    """True when path, with every link followed, is within docs_dir (links that stay inside are fine)."""
    try:
        return Path(path).resolve().is_relative_to(Path(docs_dir).resolve())
    except (OSError, RuntimeError):
        return False


def _name_ok(name: str) -> bool:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _shown(path: Path, docs_dir: Path) -> str:
    """A path relative to the folder, printable even when its name is not valid UTF-8."""
    rel = os.fsencode(path.relative_to(docs_dir))
    return rel.decode("utf-8", errors="backslashreplace")


def discover(docs_dir: Path, follow_external_links: bool = False) -> Found:
    """Every .txt/.md/.markdown file under docs_dir, and what else is there and why it is not read:
    hidden entries, other file types, linked folders, links that leave the folder (unless allowed), names
    that are not valid UTF-8."""
    docs_dir = Path(docs_dir)
    if not docs_dir.exists():
        raise DocumentsError(
            f"Documents folder {str(docs_dir)!r} does not exist. "
            "Create it and put .txt or .md articles in it, or set ASSISTANT_DOCS_DIR."
        )
    if not docs_dir.is_dir():
        raise DocumentsError(f"{str(docs_dir)!r} is a file, not a folder of articles.")
    root_real = docs_dir.resolve()
    found = Found()
    for root, dirs, files in os.walk(docs_dir, followlinks=False):
        here = Path(root)
        keep = []
        for d in sorted(dirs):
            shown = _shown(here / d, docs_dir)
            if d.startswith("."):
                found.skipped.append(f"{shown}/: skipped, hidden folder (rename it without the leading dot)")
            elif not _name_ok(d):
                found.skipped.append(f"{shown}/: skipped, the folder name is not valid UTF-8; rename it")
            elif (here / d).is_symlink():
                found.skipped.append(f"{shown}/: skipped, linked folders are not followed")
            else:
                keep.append(d)
        dirs[:] = keep
        for name in sorted(files):
            path = here / name
            shown = _shown(path, docs_dir)
            suffix = Path(name).suffix.lower()
            if name.startswith("."):
                if suffix in SUFFIXES:  # say so for articles; dot-files like .DS_Store are not worth a line
                    found.skipped.append(f"{shown}: skipped, hidden file (rename it without the leading dot)")
                continue
            if suffix not in SUFFIXES:
                why = f"{suffix} is not an article type; {_READ}" if suffix else f"no extension; {_READ}"
                found.skipped.append(f"{shown}: skipped, {why}{_ADVICE.get(suffix, '')}")
                continue
            if not _name_ok(name):
                found.skipped.append(
                    f"{shown}: skipped, the file name is not valid UTF-8; rename it (e.g. convmv -f latin1 -t utf8)"
                )
                continue
            if path.is_symlink() and not follow_external_links:
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    target = None  # dangling or a loop: load() says why
                if target is not None and not target.is_relative_to(root_real):
                    found.skipped.append(
                        f"{shown}: skipped, a link to {target} outside the documents folder "
                        "(set ASSISTANT_FOLLOW_EXTERNAL_LINKS=true to index such links)"
                    )
                    continue
            found.paths.append(path)
    return found


_KIND = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


def read_bytes(path: Path, source: str, max_bytes: int) -> bytes:
    """The bytes of a regular file, at most max_bytes of them: pipes, devices and sockets are refused
    before anything is read (opening never blocks), and the limit applies to what is read, not to what
    stat says (a link to /dev/zero says 0 bytes)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise DocumentsError(f"{source}: skipped, it disappeared while reading (or is a dangling link)") from None
    except OSError as exc:
        raise DocumentsError(f"{source}: skipped, cannot read it ({exc.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = _KIND.get(stat.S_IFMT(mode), "not a regular file")
            raise DocumentsError(f"{source}: skipped, it is {kind}, not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentsError(f"{source}: skipped, cannot read it ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise DocumentsError(
            f"{source}: skipped, it is over the {max_bytes:,}-byte limit (ASSISTANT_MAX_FILE_BYTES)"
        )
    return data


def article_text(data: bytes, source: str) -> str:
    """An article's bytes as text, or DocumentsError saying why they are not an article (binary, not UTF-8 nor
    UTF-16/32 with a byte-order mark, empty). The one check for both a sync and the page's uploads."""
    has_bom = any(data.startswith(bom) for bom, _ in _BOMS)
    if not has_bom and b"\x00" in data[:8192]:
        raise DocumentsError(f"{source}: skipped, looks like a binary file")
    try:
        text = decode(data)
    except UnicodeDecodeError as exc:
        raise DocumentsError(
            f"{source}: skipped, not UTF-8 text (byte {exc.start}); re-save it as UTF-8"
        ) from None
    if not visible(text).strip():
        raise DocumentsError(f"{source}: skipped, the file is empty")
    return text


def load(path: Path, docs_dir: Path, max_bytes: int) -> Document:
    """Read and validate one article; raises DocumentsError with the reason it was skipped."""
    source = path.relative_to(docs_dir).as_posix()
    data = read_bytes(path, source, max_bytes)
    text = article_text(data, source)
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
