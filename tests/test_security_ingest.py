"""Reading articles and citing them when the folder is hostile (issue 29, items 7, 8, 9, 11, 12, 13).

Each test reproduces what a probe found: a link swapped in between the check and the open, an edit that keeps
a file's size, inode and mtime, an article's own [n] markers and invisible characters in an answer, a file of
"Yes. " that costs hundreds of MB of index, an article 400 folders deep, and settings that silently meant
something else.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from assistant import Assistant, Settings, filecheck, ingest
from assistant.citations import CitedAnswer, Source
from assistant.errors import AssistantError, ConfigError, DocumentsError
from assistant.ingest import read_text
from assistant.text import split_sentences

N002 = "002_5fe3474391e77e48.txt"
TROOPS = "How many North Korean troops did Russia deploy to Kursk?"
SECRET = "The launch code for the Kursk vault is 7731-ALPHA."
NOTES = "The Kursk vault notes were filed by the regional archive in August, officials said.\n"


def _kb(docs: Path, index: Path, **kw: Any) -> Assistant:
    return Assistant(docs_dir=docs, index_dir=index, answerer="offline", **kw)


def _cites_current_files(answer: Any, docs: Path) -> bool:
    return all(read_text(docs / c.source)[c.start : c.end] == c.quote for c in answer.citations)


def _indexed_text(kb: Assistant) -> str:
    return " ".join(r.text for r in kb.corpus.records)


def _swap_to_link(path: Path, target: Path) -> None:
    path.unlink()
    os.symlink(target, path)


# --- 7. a link swapped in between the check and the open is never read -------------------------------------
@pytest.mark.parametrize("when", ["before the read", "between lstat and open"])
def test_a_link_swapped_in_after_the_check_is_never_indexed(seeds_copy: Path, tmp_path: Path, when: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """discover() sees a regular notes.txt; by the time it is opened it is a link to a file outside the folder.
    Deterministic version of a race the probe won 8 times in 40 syncs."""
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET + "\n", encoding="utf-8")
    notes = seeds_copy / "notes.txt"
    notes.write_text(NOTES, encoding="utf-8")
    swapped: list[bool] = []

    def swap_once() -> None:
        if not swapped:
            swapped.append(True)
            _swap_to_link(notes, secret)

    if when == "before the read":
        real_read = ingest.read_bytes

        def read_bytes(path: Path, *args: Any, **kw: Any) -> bytes:
            if Path(path).name == "notes.txt":
                swap_once()
            return real_read(path, *args, **kw)

        monkeypatch.setattr(ingest, "read_bytes", read_bytes)
    else:
        real_lstat = os.lstat

        def lstat(path: Any, *args: Any, **kw: Any) -> os.stat_result:
            st = real_lstat(path, *args, **kw)
            if os.fspath(path) == os.fspath(notes):  # what was checked is a regular file; then it is swapped
                swap_once()
            return st

        monkeypatch.setattr(os, "lstat", lstat)
    kb = _kb(seeds_copy, tmp_path / "index")
    report = kb.sync()
    monkeypatch.undo()
    assert swapped
    assert "7731" not in _indexed_text(kb)
    assert any(s.startswith("notes.txt: skipped") for s in report.skipped), report.skipped
    a = kb.ask("What is the launch code for the Kursk vault?")
    assert "7731" not in a.text and all("7731" not in c.quote for c in a.citations)


def test_the_citation_check_never_reads_through_a_link_swapped_in(seeds_copy: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The file-text check of a long-running process: notes.txt is checked, then swapped for a link out."""
    secret = tmp_path / "secret.txt"
    secret.write_text(NOTES + SECRET + "\n", encoding="utf-8")
    notes = seeds_copy / "notes.txt"
    notes.write_text(NOTES, encoding="utf-8")
    files = filecheck.Files(seeds_copy)
    assert files.text("notes.txt") == NOTES
    os.utime(notes, (1, 1))  # so the cached text is not trusted: the file is read again
    real_read = filecheck.read_bytes

    def read_bytes(path: Path, *args: Any, **kw: Any) -> bytes:
        _swap_to_link(notes, secret)  # after any check of the path, before the open
        return real_read(path, *args, **kw)

    monkeypatch.setattr(filecheck, "read_bytes", read_bytes)
    text = files.text("notes.txt")
    assert text is None or "7731" not in text


# --- 8. an edit that keeps size, inode and mtime is never cited with its old text ----------------------------
def _edit_in_place(path: Path, old: str, new: str) -> None:
    """Same length, same inode, and the mtime put back: only the bytes (and the ctime) tell."""
    assert len(old.encode()) == len(new.encode())
    st = os.stat(path)
    data = path.read_bytes()
    assert old.encode() in data
    with open(path, "r+b") as fh:
        fh.write(data.replace(old.encode(), new.encode()))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)


def test_an_edit_that_keeps_size_and_mtime_is_never_cited_with_the_old_text(seeds_copy: Path,
                                                                            tmp_path: Path) -> None:
    os.utime(seeds_copy / N002, (1_700_000_000, 1_700_000_000))  # an article that has not changed for a while
    kb = _kb(seeds_copy, tmp_path / "index")
    assert "12,000" in kb.ask(TROOPS).text
    _edit_in_place(seeds_copy / N002, "12,000", "15,000")
    a = kb.ask(TROOPS)  # same process, nobody synced
    assert "12,000" not in a.text
    assert _cites_current_files(a, seeds_copy)
    assert any(N002 in n for n in a.notes)  # says the article changed since it was indexed


class _StampsThatNeverChange:
    """os as seen by filecheck on a filesystem whose timestamps do not move (coarse or not kept): every stat
    of the file returns what it returned first."""

    def __init__(self) -> None:
        self.first: dict[str, os.stat_result] = {}

    def stat(self, path: Any, *args: Any, **kw: Any) -> os.stat_result:
        return self.first.setdefault(os.fspath(path), os.stat(path, *args, **kw))

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def test_what_is_cited_is_checked_against_the_bytes_not_the_timestamps(seeds_copy: Path, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    os.utime(seeds_copy / N002, (1_700_000_000, 1_700_000_000))
    monkeypatch.setattr(filecheck, "os", _StampsThatNeverChange())
    kb = _kb(seeds_copy, tmp_path / "index")
    assert "12,000" in kb.ask(TROOPS).text
    _edit_in_place(seeds_copy / N002, "12,000", "15,000")
    a = kb.ask(TROOPS)
    assert "12,000" not in a.text
    assert _cites_current_files(a, seeds_copy)
    assert a.citations or any(N002 in n for n in a.notes)  # re-read, or withdrawn saying the article changed


# --- 9. an article's own [n] markers and invisible characters are not in the answer's prose --------------------
def _markers_are_ours(answer: Any) -> bool:
    groups = re.findall(r"\[([^\]]*)\]", answer.text)
    return all(g.isdigit() and 1 <= int(g) <= len(answer.citations) for g in groups)


def test_an_articles_own_reference_markers_never_reach_the_answer(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "pentagon.txt").write_text(
        "Pentagon briefing on Kursk\n\nRussia deployed about 12,000 North Korean troops [2] to the Kursk region, "
        "according to the Pentagon [1].\nThe troops arrived in October [3, 4].\n", encoding="utf-8")
    (docs / "other.txt").write_text("Weather report\n\nIt rained in Lisbon on Tuesday, forecasters said.\n",
                                    encoding="utf-8")
    kb = _kb(docs, tmp_path / "index")
    a = kb.ask(TROOPS)
    assert len(a.citations) == 1 and "12,000" in a.text
    assert "[2]" not in a.text and _markers_are_ours(a), a.text
    assert "troops [2]" in a.citations[0].quote  # the quote stays verbatim
    assert _cites_current_files(a, docs)


def test_a_quoted_sentence_loses_the_articles_markers_in_the_llm_path_too() -> None:
    sentence = ("Russia deployed about 12,000 North Korean troops [2] to the Kursk region, according to the "
                "Pentagon [1].")
    built = CitedAnswer([Source(1, "pentagon.txt", "Pentagon briefing", "", 40, 40 + len(sentence), sentence)])
    shown = built.add(sentence, [1])  # an overview sentence quoted as it stands
    assert shown is not None and shown.endswith("[1]")
    assert re.findall(r"\[\d+\]", shown) == ["[1]"], shown
    assert built.citations[0].quote == sentence


def test_nul_and_right_to_left_overrides_are_not_in_the_answer(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    filler = "".join(f"The weather in Lisbon was mild on day {i} of the spring season.\n" for i in range(160))
    assert len(filler) > 8192  # a NUL past the first 8 KB is not taken for a binary file
    text = ("Bridge report\n\n" + filler + "The Glushkovo bridge over the Seym was destroyed by HIMARS\x00 strikes "
            "in August, \u202eslaiciffo\u202c said.\u2066\u200f\n")
    (docs / "bridge.txt").write_text(text, encoding="utf-8")
    kb = _kb(docs, tmp_path / "index")
    a = kb.ask("What happened to the Glushkovo bridge over the Seym?")
    assert a.citations and "Glushkovo" in a.text and "HIMARS strikes" in a.text
    for ch in ("\x00", "\u202e", "\u202c", "\u2066", "\u200f"):
        assert ch not in a.text
    quote = a.citations[0].quote
    assert "\x00" in quote and "\u202e" in quote  # the citation keeps the file's exact text and offsets
    assert read_text(docs / "bridge.txt")[a.citations[0].start : a.citations[0].end] == quote


# --- 11. a file of very short sentences does not blow the index up --------------------------------------------
def test_an_article_of_twenty_thousand_sentences_is_skipped_and_named(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "yes.txt").write_text("Yes. " * 20_000, encoding="utf-8")  # 100 KB
    (docs / "real.txt").write_text("Kursk\n\nRussia deployed about 12,000 North Korean troops to the Kursk "
                                   "region, officials said.\n", encoding="utf-8")
    kb = _kb(docs, tmp_path / "index")
    report = kb.sync()
    assert any(s.startswith("yes.txt: skipped") and "ASSISTANT_MAX_ARTICLE_SENTENCES" in s for s in report.skipped)
    assert report.files_total == 1
    assert kb.index.sentences.count() < 50  # was 20,002 rows, one vector each
    assert kb.index.count() < 10
    assert "12,000" in kb.ask(TROOPS).text
    raised = _kb(docs, tmp_path / "index2", max_article_sentences=30_000)
    assert raised.sync().skipped == [] and raised.index.sentences.count() > 20_000  # the limit is a setting


def test_splitting_many_short_sentences_is_linear(tmp_path: Path) -> None:
    """ "a. a. a. …" searched for an abbreviation from the sentence start at every full stop, and every full
    stop copied the rest of the line: 30 KB took 12.6 s, 90 KB about two minutes. A deadline, not a speed test."""
    out: dict[str, int] = {}
    t = threading.Thread(target=lambda: out.update(a=len(split_sentences("a. " * 30_000)),
                                                   yes=len(split_sentences("Yes. " * 100_000))), daemon=True)
    t.start()
    t.join(timeout=30)
    assert not t.is_alive(), "splitting 590 KB of short sentences did not finish in 30 s"
    assert out == {"a": 1, "yes": 100_000}


# --- 12. an article 400 folders deep is skipped and named; the sync goes on -----------------------------------
def _deep(docs: Path, name: str, depth: int, article: bytes) -> None:
    """Folders created through directory descriptors: the path is longer than the system lets a path be."""
    fd = os.open(docs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        f = os.open("deep.txt", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(f, article)
        os.close(f)
    finally:
        os.close(fd)


def _remove_deep(top: Path) -> None:
    """Remove a one-branch tree too deep for shutil.rmtree (it recurses) and for paths: walk down and back up
    by relative steps."""
    cwd = os.getcwd()
    try:
        os.chdir(top)
        depth = 0
        while sub := [e.name for e in os.scandir(".") if e.is_dir(follow_symlinks=False)]:
            os.chdir(sub[0])
            depth += 1
        for _ in range(depth + 1):
            for e in os.scandir("."):
                (os.rmdir if e.is_dir(follow_symlinks=False) else os.unlink)(e.name)
            os.chdir("..")
        os.rmdir(top)
    finally:
        os.chdir(cwd)


def test_an_article_too_deep_for_a_path_is_skipped_and_named(seeds_copy: Path, tmp_path: Path) -> None:
    article = b"Deep report\n\nThe deep article says 4,100 soldiers crossed the river.\n"
    _deep(seeds_copy, "d" * 10, 400, article)  # 4,400 bytes of path: ENAMETOOLONG
    (seeds_copy / "short").mkdir()
    _deep(seeds_copy / "short", "a", 1_100, article)  # 2,200 bytes of path, but deeper than os.walk recurses
    try:
        report = _kb(seeds_copy, tmp_path / "index").sync()  # was: "… failed during the sync … rebuild"
        assert report.files_total == 6  # the five seeds and the one 1,100 folders deep
        skipped = [s for s in report.skipped if s.startswith("dddddddddd/")]
        assert len(skipped) == 1 and "File name too long" in skipped[0] and len(skipped[0]) < 600
    finally:
        _remove_deep(seeds_copy / ("d" * 10))
        _remove_deep(seeds_copy / "short")


def _failing_scandir(broken: Path) -> Callable[..., Any]:
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if isinstance(path, (str, os.PathLike)) and Path(path) == broken:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    return scandir


def test_a_folder_that_cannot_be_listed_is_named_and_its_articles_kept(seeds_copy: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    (seeds_copy / "sub").mkdir()
    (seeds_copy / "sub" / "bridge.txt").write_text(
        "Bridge report\n\nThe Glushkovo bridge over the Seym was destroyed by HIMARS strikes in August.\n",
        encoding="utf-8")
    kb = _kb(seeds_copy, tmp_path / "index")
    assert kb.sync().added == 6
    monkeypatch.setattr(os, "scandir", _failing_scandir(seeds_copy / "sub"))  # as for chmod 000 (tests run as root)
    report = kb.sync()
    assert report.removed == 0 and any(s.startswith("sub/: skipped, cannot list") for s in report.skipped)
    monkeypatch.setattr(os, "scandir", _failing_scandir(seeds_copy))
    with pytest.raises(DocumentsError, match="Cannot list the documents folder"):
        kb.sync()  # was: an empty folder, every article removed
    monkeypatch.undo()
    a = kb.ask("What happened to the Glushkovo bridge?")
    assert a.citations and a.citations[0].source == "sub/bridge.txt"


# --- 13. settings that silently meant something else ------------------------------------------------------------
def test_an_empty_docs_dir_is_an_error_not_the_current_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DOCS_DIR", "")
    with pytest.raises(ConfigError, match="ASSISTANT_DOCS_DIR='' is not valid: is empty"):
        Settings.load()
    monkeypatch.setenv("ASSISTANT_DOCS_DIR", "  ")
    with pytest.raises(ConfigError, match="is empty"):
        Assistant()


def test_a_docs_dir_that_is_not_a_path_is_our_error() -> None:
    with pytest.raises(ConfigError, match=r"docs_dir=123 is not valid: must be a folder path .* not int"):
        Assistant(docs_dir=123)  # type: ignore[arg-type]
    assert issubclass(ConfigError, AssistantError)


def test_a_long_docs_path_is_blamed_on_the_docs_path_not_the_index(tmp_path: Path) -> None:
    too_long = tmp_path / "/".join(["y" * 200] * 25)  # 5,000 characters
    with pytest.raises(DocumentsError, match="documents folder .* cannot be used .*File name too long"):
        Assistant(docs_dir=too_long, answerer="offline").sync()
    name = tmp_path / ("z" * 250)  # a legal name, too long to have "-<hash>" added for the index folder
    name.mkdir()
    (name / "a.txt").write_text("Bridge report\n\nThe Glushkovo bridge was destroyed in August.\n", encoding="utf-8")
    assert Assistant(docs_dir=name, answerer="offline").sync().added == 1
