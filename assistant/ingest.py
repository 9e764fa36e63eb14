"""Read articles from a folder and split them into token-aware, sentence-aligned chunks.

Offsets are character offsets into the text :func:`read_text` returns: the file decoded as UTF-8 without
newline translation (``open(path, encoding="utf-8", newline="").read()`` for a UTF-8 file without a byte-order
mark); a UTF-8 byte-order mark is not part of the text, and a file that starts with a UTF-16 or UTF-32 one is
decoded by it.
"""

from __future__ import annotations

import codecs
import errno
import hashlib
import logging
import os
import re
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DocumentsError
from .text import TooManySentences, count_tokens, date_of, encoding, split_sentences, title_of, visible

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
    #: folders (relative, POSIX) that could not be listed: what was indexed from them is kept, not removed
    unlisted: list[str] = field(default_factory=list)

    def unseen(self, source: str) -> bool:
        """True when source lies in a folder that could not be listed (so it may well still exist)."""
        return any(source.startswith(folder + "/") for folder in self.unlisted)


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
    """A path relative to the folder, printable even when its name is not valid UTF-8; a very long one
    (hundreds of folders deep) keeps its start and end."""
    rel = os.fsencode(path.relative_to(docs_dir)).decode("utf-8", errors="backslashreplace")
    return shorten(rel)


def shorten(name: str, limit: int = 240) -> str:
    """A name for a message: as it is, or its start and end with the length between (a path 400 folders
    deep is still named, not pasted whole)."""
    if len(name) <= limit:
        return name
    return f"{name[: limit // 2]}…{name[-(limit // 2):]} ({len(name):,} characters)"


def discover(docs_dir: Path, follow_external_links: bool = False) -> Found:
    """Every .txt/.md/.markdown file under docs_dir, and what else is there and why it is not read:
    hidden entries, other file types, linked folders, links that leave the folder (unless allowed), names
    that are not valid UTF-8."""
    docs_dir = Path(docs_dir)
    shown_dir = shorten(str(docs_dir))
    try:
        mode = os.stat(docs_dir).st_mode
    except FileNotFoundError:
        raise DocumentsError(
            f"Documents folder {shown_dir!r} does not exist. "
            "Create it and put .txt or .md articles in it, or set ASSISTANT_DOCS_DIR."
        ) from None
    except OSError as exc:  # a path too long, a folder not searchable, a loop of links
        raise DocumentsError(
            f"The documents folder {shown_dir!r} cannot be used ({exc.strerror or exc}). "
            "Check the path given in ASSISTANT_DOCS_DIR (or --docs)."
        ) from None
    if not stat.S_ISDIR(mode):
        raise DocumentsError(f"{shown_dir!r} is a file, not a folder of articles.")
    root_real = docs_dir.resolve()
    found = Found()

    # Depth first, in name order, like os.walk(topdown=True), but without recursion (a folder 2,000 deep must
    # not end the sync with a RecursionError) and with every folder that cannot be listed named.
    stack = [docs_dir]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(here) as it:
                entries = list(it)
        except OSError as exc:  # a path over the system's limit (ENAMETOOLONG), no permission, ...
            if here == docs_dir:  # syncing it as empty would remove every article
                raise DocumentsError(
                    f"Cannot list the documents folder {shown_dir!r} ({exc.strerror or exc}); nothing was "
                    "changed. Give yourself read access to it, or set ASSISTANT_DOCS_DIR to another folder."
                ) from None
            found.skipped.append(f"{_shown(here, docs_dir)}/: skipped, cannot list this folder "
                                 f"({exc.strerror or exc}); what was indexed from it is kept")
            found.unlisted.append(here.relative_to(docs_dir).as_posix())
            continue
        dirs: list[os.DirEntry[str]] = []
        files: list[os.DirEntry[str]] = []
        for entry in entries:
            try:
                (dirs if entry.is_dir() else files).append(entry)
            except OSError:
                files.append(entry)
        keep = []
        for entry in sorted(dirs, key=lambda e: e.name):
            d = entry.name
            shown = _shown(here / d, docs_dir)
            if d.startswith("."):
                found.skipped.append(f"{shown}/: skipped, hidden folder (rename it without the leading dot)")
            elif not _name_ok(d):
                found.skipped.append(f"{shown}/: skipped, the folder name is not valid UTF-8; rename it")
            elif _is_link(entry):
                found.skipped.append(f"{shown}/: skipped, linked folders are not followed")
            else:
                keep.append(here / d)
        stack.extend(reversed(keep))
        for entry in sorted(files, key=lambda e: e.name):
            name = entry.name
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
            if _is_link(entry) and not follow_external_links:
                try:
                    target = path.resolve(strict=True)
                except (OSError, RuntimeError):
                    target = None  # dangling or a loop (or a path over the system's limit): load() says why
                if target is not None and not target.is_relative_to(root_real):
                    found.skipped.append(
                        f"{shown}: skipped, a link to {shorten(str(target))} outside the documents folder "
                        "(set ASSISTANT_FOLLOW_EXTERNAL_LINKS=true to index such links)"
                    )
                    continue
            found.paths.append(path)
    return found


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False  # opening it says why


_KIND = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
         stat.S_IFSOCK: "a socket", stat.S_IFDIR: "a folder"}


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_roots: dict[tuple[str, int, int], Path] = {}


def real_root(docs_dir: Path) -> Path:
    """The documents folder with every link resolved (cached while the folder is the same directory)."""
    st = os.stat(docs_dir)
    key = (str(docs_dir), st.st_dev, st.st_ino)
    real = _roots.get(key)
    if real is None:
        if len(_roots) > 64:
            _roots.clear()
        real = _roots[key] = Path(docs_dir).resolve()
    return real


def _opened_path(fd: int) -> str | None:
    """Where an open file is, by the kernel's account (every link followed): None where the platform
    cannot say."""
    if sys.platform.startswith("linux"):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
    if sys.platform == "darwin":
        import fcntl

        try:
            return os.fsdecode(fcntl.fcntl(fd, fcntl.F_GETPATH, bytes(1024)).split(b"\0", 1)[0])  # type: ignore[attr-defined]
        except (OSError, AttributeError):
            return None
    return None


def _check_opened(fd: int, path: Path, name: str, checked: os.stat_result | None, root: Path | None) -> None:
    """The file that was opened is the one that was checked: a regular file, the same one lstat saw at the
    path (when that was no link), and, unless links may leave the folder (root None), inside the folder by
    where the kernel says it is, so a link swapped in between the check and the open is never read."""
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        kind = _KIND.get(stat.S_IFMT(st.st_mode), "not a regular file")
        raise DocumentsError(f"{name}: skipped, it is {kind}, not a regular file")
    if checked is not None and (checked.st_dev, checked.st_ino) != (st.st_dev, st.st_ino):
        raise DocumentsError(f"{name}: skipped, it was replaced while being read; sync again")
    if root is None:
        return
    where = _opened_path(fd)
    if where is None:  # no /proc: the path resolved now must be this same file
        try:
            target = path.resolve(strict=True)
            same = os.stat(target)
        except (OSError, RuntimeError):
            raise DocumentsError(f"{name}: skipped, it changed while being read; sync again") from None
        if (same.st_dev, same.st_ino) != (st.st_dev, st.st_ino):
            raise DocumentsError(f"{name}: skipped, it changed while being read; sync again")
        where = str(target)
    if not Path(where).is_relative_to(root):
        raise DocumentsError(
            f"{name}: skipped, it leads outside the documents folder (to {shorten(where)}); set "
            "ASSISTANT_FOLLOW_EXTERNAL_LINKS=true to index such links"
        )


def read_bytes(path: Path, source: str, max_bytes: int, docs_dir: Path | None = None,
               follow_external_links: bool = False) -> bytes:
    """The bytes of a regular file, at most max_bytes of them: pipes, devices and sockets are refused
    before anything is read (opening never blocks), and the limit applies to what is read, not to what
    stat says (a link to /dev/zero says 0 bytes).

    With docs_dir, what is read is checked on the open file itself, not on the path before opening it: a
    path that was no link is opened without following one (a link swapped in fails to open), and the file
    opened must be inside docs_dir unless follow_external_links."""
    name = shorten(source)  # for messages: a path 400 folders deep is named by its start and end
    root: Path | None = None
    checked: os.stat_result | None = None
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        if docs_dir is not None:
            root = None if follow_external_links else real_root(docs_dir)
            checked = os.lstat(path)
            if stat.S_ISLNK(checked.st_mode):
                checked = None  # a link: where it leads is checked on the open file
            else:
                flags |= _NOFOLLOW
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise DocumentsError(f"{name}: skipped, it disappeared while reading (or is a dangling link)") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK) and flags & _NOFOLLOW:
            raise DocumentsError(f"{name}: skipped, it was replaced by a link while being read; sync again") from None
        raise DocumentsError(f"{name}: skipped, cannot read it ({exc.strerror})") from None
    try:
        _check_opened(fd, path, name, checked, root)
        with os.fdopen(fd, "rb", closefd=False) as fh:
            data = fh.read(max_bytes + 1)
    except OSError as exc:
        raise DocumentsError(f"{name}: skipped, cannot read it ({exc.strerror})") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise DocumentsError(
            f"{name}: skipped, it is over the {max_bytes:,}-byte limit (ASSISTANT_MAX_FILE_BYTES)"
        )
    return data


def article_text(data: bytes, source: str) -> str:
    """An article's bytes as text, or DocumentsError saying why they are not an article (binary, not UTF-8 nor
    UTF-16/32 with a byte-order mark, empty). The one check for both a sync and the page's uploads."""
    has_bom = any(data.startswith(bom) for bom, _ in _BOMS)
    if not has_bom and b"\x00" in data[:8192]:
        raise DocumentsError(f"{shorten(source)}: skipped, looks like a binary file")
    try:
        text = decode(data)
    except UnicodeDecodeError as exc:
        raise DocumentsError(
            f"{shorten(source)}: skipped, not UTF-8 text (byte {exc.start}); re-save it as UTF-8"
        ) from None
    if not visible(text).strip():
        raise DocumentsError(f"{shorten(source)}: skipped, the file is empty")
    return text


def load(path: Path, docs_dir: Path, max_bytes: int, follow_external_links: bool = False) -> Document:
    """Read and validate one article; raises DocumentsError with the reason it was skipped. What is read is
    the file opened, checked to be inside docs_dir (see read_bytes), not what a check of its path saw."""
    source = path.relative_to(docs_dir).as_posix()
    data = read_bytes(path, source, max_bytes, docs_dir, follow_external_links)
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


def sentence_spans(doc: Document, max_sentences: int | None = None) -> list[tuple[int, int]]:
    """The article's sentence spans. Each becomes a stored row with its own vector (about 3 KB of index),
    so an article with more than max_sentences is refused, before anything is chunked or embedded: 1.25 MB
    of "Yes. " is 250,000 sentences, which took 187 s and 613 MB of index to sync, and 2 GB of memory."""
    try:
        return split_sentences(doc.text, limit=max_sentences)
    except TooManySentences:
        raise DocumentsError(
            f"{shorten(doc.source)}: skipped, it has more than {max_sentences:,} sentences "
            "(ASSISTANT_MAX_ARTICLE_SENTENCES); split it into several articles or raise the limit"
        ) from None


def chunk(doc: Document, chunk_tokens: int, overlap_tokens: int, max_sentences: int | None = None) -> list[Chunk]:
    """Pack whole sentences into chunks of at most chunk_tokens, overlapping by whole sentences. Raises
    DocumentsError for an article of more than max_sentences sentences (see sentence_spans)."""
    text = doc.text
    sentences = sentence_spans(doc, max_sentences)
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
