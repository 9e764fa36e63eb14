"""Safe to run for real (issue 17): one truth across processes, hostile folders, errors that say the right thing.

Every test here reproduces a failure found by probing the released behaviour, with real processes, a real
on-disk Chroma (and a real `chroma run` server where the item is about one), real files and real embeddings.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.errors import ConfigError, DocumentsError, IndexUnavailableError
from assistant.ingest import read_text
from assistant.text import split_sentences

from .helpers import free_port, start_chroma, stop

N002 = "002_5fe3474391e77e48.txt"
TROOPS = "How many North Korean troops did Russia deploy to Kursk?"
PY = sys.executable


def _kb(docs: Path, index: Path, **kw: object) -> Assistant:
    return Assistant(docs_dir=docs, index_dir=index, answerer="offline", **kw)


def _cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    return subprocess.run([PY, "-m", "assistant.cli", *args], capture_output=True, text=True, timeout=timeout,
                          env={**base, **(env or {})})


def _all_cite_current_files(answer: object, docs: Path) -> bool:
    return all(read_text(docs / c.source)[c.start : c.end] == c.quote for c in answer.citations)  # type: ignore[attr-defined]


def _edit_002(docs: Path, figure: str = "15,000") -> None:
    """Another writer's edit: a new first line (every offset moves) and a different figure."""
    p = docs / N002
    text = read_text(p)
    assert "12,000" in text
    p.write_text("UPDATED: corrected figures below.\n" + text.replace("12,000", figure), encoding="utf-8")


# --- 1. a long-running process never serves a stale index -----------------------------------------------
def test_long_running_process_answers_from_another_process_sync(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    assert "12,000" in kb.ask(TROOPS).text
    _edit_002(seeds_copy)
    done = _cli("--docs", str(seeds_copy), "--index", str(index), "ingest")
    assert done.returncode == 0, done.stderr
    a = kb.ask(TROOPS)  # same object, same process: it must see the other process's sync
    assert "15,000" in a.text and "12,000" not in a.text
    assert a.citations and _all_cite_current_files(a, seeds_copy)


def test_edited_article_is_never_cited_with_its_old_text(seeds_copy: Path, tmp_path: Path) -> None:
    kb = _kb(seeds_copy, tmp_path / "index")
    kb.sync()
    _edit_002(seeds_copy)  # nobody syncs
    a = kb.ask(TROOPS)
    assert "12,000" not in a.text
    assert _all_cite_current_files(a, seeds_copy)
    assert any(N002 in n and "assistant ingest" in n for n in a.notes)
    # a quote that only moved (the first line added) is still cited, at its new place
    b = kb.ask("What did the Ukrainian military say about the Kursk operation?")
    assert _all_cite_current_files(b, seeds_copy)


def test_another_process_with_other_chunk_sizes_does_not_break_asking(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    assert "12,000" in kb.ask(TROOPS).text
    other = _cli("--docs", str(seeds_copy), "--index", str(index), "ingest",
                 env={"ASSISTANT_CHUNK_TOKENS": "100", "ASSISTANT_CHUNK_OVERLAP_TOKENS": "20"})
    assert other.returncode == 0, other.stderr  # drops this folder's collection built with other settings
    a = kb.ask(TROOPS)
    assert "12,000" in a.text and _all_cite_current_files(a, seeds_copy)


def test_sync_after_another_process_rebuilt_the_index(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    kb.sync()
    rebuilt = _cli("--docs", str(seeds_copy), "--index", str(index), "ingest", "--rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    _edit_002(seeds_copy)  # so that this process's next sync has to write
    report = kb.sync()  # was: "attempt to write a readonly database"
    assert (report.unchanged, report.updated) == (4, 1)
    a = kb.ask(TROOPS)
    assert "15,000" in a.text and _all_cite_current_files(a, seeds_copy)


_ASKER = """
import json, sys, time
from pathlib import Path
from assistant import Assistant
from assistant.ingest import read_text
docs, index, until = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
kb = Assistant(docs_dir=docs, index_dir=index, answerer="offline")
n = bad = 0
while time.time() < until:
    before = read_text(docs / sys.argv[6])
    answer = kb.ask("How many North Korean troops did Russia deploy to Kursk?")
    after = read_text(docs / sys.argv[6])
    for c in answer.citations:
        n += 1
        # the file as it is now; only when it changed during the question may the quote match the other
        texts = ([after] if before == after else [before, after]) if c.source == sys.argv[6] \
            else [read_text(docs / c.source)]
        bad += all(t[c.start:c.end] != c.quote for t in texts)
print(json.dumps({"citations": n, "bad": bad}))
"""


def test_askers_and_a_syncing_writer_only_ever_cite_real_text(seeds_copy: Path, tmp_path: Path) -> None:
    """Four asking processes while a fifth keeps changing an article and syncing: every citation matches the
    file it cites as it was when the answer was made (either version only if it changed during the question)."""
    import time

    index = tmp_path / "index"
    _kb(seeds_copy, index).sync()
    v1 = tmp_path / "v1.txt"
    v2 = tmp_path / "v2.txt"
    shutil.copy(seeds_copy / N002, v1)
    _edit_002(seeds_copy)
    shutil.copy(seeds_copy / N002, v2)
    shutil.copy(v1, seeds_copy / N002)
    until = time.time() + 25
    askers = [subprocess.Popen([PY, "-c", _ASKER, str(seeds_copy), str(index), str(until), str(v1), str(v2), N002],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)]
    writer = _kb(seeds_copy, index)
    flips = 0
    while time.time() < until:
        shutil.copy(v2 if flips % 2 == 0 else v1, seeds_copy / N002)
        writer.sync()
        flips += 1
    outs = [p.communicate(timeout=120) for p in askers]
    assert all(p.returncode == 0 for p in askers), [o[1][-1500:] for o in outs]
    results = [json.loads(o[0].strip().splitlines()[-1]) for o in outs]
    assert flips >= 2 and sum(r["citations"] for r in results) > 0
    assert sum(r["bad"] for r in results) == 0, results


# --- 2. names that are not UTF-8; --rebuild keeps the working index until the new one is complete -------------
def test_file_name_that_is_not_utf8_is_skipped_and_named(seeds_copy: Path, tmp_path: Path) -> None:
    bad = os.path.join(os.fsencode(seeds_copy), b"caf\xe9.txt")
    with open(bad, "wb") as fh:
        fh.write(b"A cafe in Kursk served tea to 40 soldiers.\n")
    report = _kb(seeds_copy, tmp_path / "index").sync()
    assert report.files_total == 5
    assert any("caf\\xe9.txt" in s and "not valid UTF-8" in s and "rename" in s for s in report.skipped)
    assert _kb(seeds_copy, tmp_path / "index").sync(rebuild=True).files_total == 5


def test_failed_rebuild_keeps_the_working_index(seeds_copy: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.embed import OnnxEmbedder

    index = tmp_path / "index"
    _kb(seeds_copy, index).sync()

    def broken(self: object, texts: list[str]) -> object:
        raise RuntimeError("embedding failed half way")

    monkeypatch.setattr(OnnxEmbedder, "embed", broken)
    with pytest.raises(IndexUnavailableError):
        _kb(seeds_copy, index).sync(rebuild=True)
    monkeypatch.undo()
    survivor = _kb(seeds_copy, index)
    assert "12,000" in survivor.ask(TROOPS).text
    assert survivor.sync().chunks_embedded == 0  # nothing was lost, nothing to redo
    assert len(list(index.glob("gen-*"))) == 1  # the half-built generation was cleaned up


# --- 3. one Chroma server, two folders ---------------------------------------------------------------------
@pytest.mark.server
def test_two_folders_on_one_chroma_server_stay_apart(chroma_server: int, seeds_copy: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "bridge.md").write_text("# Bridge\n\nThe Glushkovo bridge over the Seym was destroyed in August.\n",
                                     encoding="utf-8")
    server = {"chroma_host": "127.0.0.1", "chroma_port": chroma_server}
    a = Assistant(docs_dir=seeds_copy, answerer="offline", **server)
    b = Assistant(docs_dir=other, answerer="offline", **server)
    assert a.sync().added == 5
    assert b.sync().added == 1  # was: removed folder A's five articles
    again = Assistant(docs_dir=seeds_copy, answerer="offline", **server).sync()
    assert (again.unchanged, again.removed, again.chunks_embedded) == (5, 0, 0)
    assert a.ask(TROOPS).citations[0].source == N002
    assert {c.source for c in b.ask("What happened to the Glushkovo bridge?").citations} == {"bridge.md"}


@pytest.mark.server
def test_chroma_server_killed_mid_sync_says_so(seeds_copy: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.embed import OnnxEmbedder

    port = free_port()
    proc, _ = start_chroma(tmp_path / "chroma-data", port)
    real = OnnxEmbedder.embed

    def kill_then_embed(self: OnnxEmbedder, texts: list[str]) -> object:
        stop(proc)  # the server dies while the sync is embedding
        return real(self, texts)

    kb = Assistant(docs_dir=seeds_copy, chroma_host="127.0.0.1", chroma_port=port, answerer="offline")
    monkeypatch.setattr(OnnxEmbedder, "embed", kill_then_embed)
    with pytest.raises(IndexUnavailableError, match="stopped answering during the sync") as err:
        kb.sync()
    assert "chroma run" in str(err.value) or "start the server again" in str(err.value)
    assert "--rebuild" not in str(err.value)


# --- 4. an emptied folder empties the index ------------------------------------------------------------------
def test_emptied_folder_stops_citing_deleted_files(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    kb = _kb(seeds_copy, index)
    kb.sync()
    for p in seeds_copy.iterdir():
        p.unlink()
    done = _cli("--docs", str(seeds_copy), "--index", str(index), "ingest")
    assert done.returncode == 1 and "5 removed" in done.stdout and "index is empty" in done.stderr
    with pytest.raises(DocumentsError, match="No articles are indexed"):
        kb.ask(TROOPS)


# --- 5, 6. pipes, devices and links out of the folder --------------------------------------------------------
def _sync_in_thread(kb: Assistant) -> object:
    out: dict[str, object] = {}
    t = threading.Thread(target=lambda: out.setdefault("report", kb.sync()), daemon=True)
    t.start()
    t.join(timeout=240)
    assert not t.is_alive(), "the sync hangs"
    return out["report"]


def test_fifo_and_devices_are_never_read(seeds_copy: Path, tmp_path: Path) -> None:
    os.mkfifo(seeds_copy / "pipe.txt")
    os.symlink("/dev/zero", seeds_copy / "zero.txt")
    report = _sync_in_thread(_kb(seeds_copy, tmp_path / "index"))
    assert report.files_total == 5  # type: ignore[attr-defined]
    skipped = " ".join(report.skipped)  # type: ignore[attr-defined]
    assert "pipe.txt: skipped, it is a named pipe (FIFO)" in skipped
    assert "zero.txt: skipped, a link to /dev/zero outside the documents folder" in skipped
    allowed = _sync_in_thread(_kb(seeds_copy, tmp_path / "index2", follow_external_links=True))
    assert "zero.txt: skipped, it is a character device" in " ".join(allowed.skipped)  # type: ignore[attr-defined]


def test_links_out_of_the_folder_are_not_followed(seeds_copy: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("The launch code for the Kursk vault is 7731-ALPHA.\n", encoding="utf-8")
    os.symlink(secret, seeds_copy / "notes.txt")
    (seeds_copy / "inner").mkdir()
    os.symlink(seeds_copy / N002, seeds_copy / "inner" / "copy-of-002.txt")  # stays inside: fine
    kb = _kb(seeds_copy, tmp_path / "index")
    report = kb.sync()
    assert report.files_total == 6
    assert any(s.startswith("notes.txt: skipped, a link to") and "ASSISTANT_FOLLOW_EXTERNAL_LINKS" in s
               for s in report.skipped)
    a = kb.ask("What is the launch code for the Kursk vault?")
    assert "7731" not in a.text and all(c.source != "notes.txt" for c in a.citations)
    from assistant.ui import render_article

    leaked = a.model_copy(update={"citations": [a.citations[0].model_copy(update={"source": "notes.txt"})]}) \
        if a.citations else None
    if leaked is not None:
        assert "7731" not in render_article(kb, leaked, "[1]")  # the page's viewer never opens it either
    allowed = _kb(seeds_copy, tmp_path / "index2", follow_external_links=True)
    assert allowed.sync().files_total == 7
    assert "7731" in allowed.ask("What is the launch code for the Kursk vault?").text


# --- 7. readers never wait for the writer; a 2 MB line syncs in seconds ---------------------------------------
_HOLD = ("import fcntl, sys, time; fh = open(sys.argv[1], 'w'); fcntl.flock(fh, fcntl.LOCK_EX); "
         "print('held', flush=True); time.sleep(600)")


def test_asking_never_waits_for_a_running_sync(seeds_copy: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    _kb(seeds_copy, index).sync()
    holder = subprocess.Popen([PY, "-c", _HOLD, str(index / ".sync.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"  # a writer is busy
        done = _cli("--docs", str(seeds_copy), "--index", str(index), "ask", TROOPS, timeout=120)
        assert done.returncode == 0 and "12,000" in done.stdout, done.stderr
        out: dict[str, str] = {}
        t = threading.Thread(target=lambda: out.setdefault("text", _kb(seeds_copy, index).ask(TROOPS).text))
        t.start()
        t.join(timeout=120)
        assert not t.is_alive() and "12,000" in out["text"]
    finally:
        holder.kill()
        holder.wait()


def test_two_megabyte_single_line_embeds_each_distinct_text_once(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "line.txt").write_text("Kursk troops advance " * 100_000, encoding="utf-8")  # 2.1 MB, no newline
    report = _kb(docs, tmp_path / "index").sync()
    assert report.files_total == 1 and report.chunks_total > 1000
    assert report.chunks_embedded <= 10  # the repeated chunk texts are embedded once, not 5,000 times


# --- 8. encodings, invisible characters, CJK, what is skipped ------------------------------------------------
def test_utf16_bom_and_invisible_characters(seeds_copy: Path, tmp_path: Path) -> None:
    (seeds_copy / "utf16.txt").write_bytes(
        "Bridge report\n\nThe Glushkovo bridge over the Seym river was destroyed by HIMARS strikes.\n"
        .encode("utf-16"))
    (seeds_copy / "bom-only.txt").write_bytes(b"\xef\xbb\xbf")
    (seeds_copy / "bom.md").write_bytes("\ufeffHarvest news\n\nFarmers near Sud\u200bzha harvested 4,200 tonnes "
                                        "of wheat in 2025.\n".encode())
    kb = _kb(seeds_copy, tmp_path / "index")
    report = kb.sync()
    assert report.files_total == 7
    assert any(s.startswith("bom-only.txt: skipped, the file is empty") for s in report.skipped)
    assert {r.title for r in kb.corpus.records if r.source == "bom.md"} == {"Harvest news"}
    a = kb.ask("What happened to the Glushkovo bridge?")
    assert a.citations and a.citations[0].source == "utf16.txt" and _all_cite_current_files(a, seeds_copy)
    b = kb.ask("How much wheat did farmers near Sudzha harvest?")  # the article writes Sud<ZWSP>zha
    assert "4,200" in b.text and _all_cite_current_files(b, seeds_copy)
    c = kb.ask("How many North Korean troops did Russia deploy to Kur\u200bsk?")
    assert "12,000" in c.text


def test_cjk_full_stops_end_sentences() -> None:
    text = "俄军在库尔斯克部署了一万二千名士兵。乌克兰否认了这一说法！真的吗？"
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "俄军在库尔斯克部署了一万二千名士兵。", "乌克兰否认了这一说法！", "真的吗？"]


def test_what_is_skipped_is_said_once_with_why(seeds_copy: Path, tmp_path: Path) -> None:
    (seeds_copy / ".draft.txt").write_text("Hidden draft about Kursk.\n", encoding="utf-8")
    (seeds_copy / "report.pdf").write_bytes(b"%PDF-1.4")
    (seeds_copy / "notes.markdown").write_text("# Notes\n\nThe Seym river runs through Glushkovo.\n",
                                               encoding="utf-8")
    report = _kb(seeds_copy, tmp_path / "index").sync()
    assert report.files_total == 6  # .markdown is an article type
    lines = report.skipped
    assert [s for s in lines if s.startswith(".draft.txt: skipped, hidden file")]
    assert [s for s in lines if s.startswith("report.pdf: skipped, .pdf is not an article type")]
    assert len(lines) == 2


# --- 9, 10, 11. errors and the terminal -------------------------------------------------------------------------
def test_errors_that_are_not_about_the_index_say_what_they_are(seeded: Assistant, tmp_path: Path) -> None:
    docs, index = str(seeded.settings.docs_dir), str(seeded.settings.index_dir)
    bad = subprocess.run([PY, "-m", "assistant.cli", "--docs", docs, "--index", index, "ask", b"\xff troops"],
                         capture_output=True, text=True, env={**os.environ, "LANG": "C.UTF-8"})
    assert bad.returncode == 1 and "not valid UTF-8" in bad.stderr and "rebuild" not in bad.stderr
    top_k = _cli("--docs", docs, "--index", index, "ask", TROOPS, env={"ASSISTANT_TOP_K": "abc"})
    assert top_k.returncode == 1 and "ASSISTANT_TOP_K='abc' is not valid" in top_k.stderr
    assert "rebuild" not in top_k.stderr
    proc_dir = _cli("--docs", docs, "ask", TROOPS, env={"ASSISTANT_INDEX_DIR": "/proc/nope"})
    assert proc_dir.returncode == 1 and "Cannot create the index folder /proc/nope" in proc_dir.stderr
    assert "rebuild" not in proc_dir.stderr and "Traceback" not in proc_dir.stderr


def test_output_piped_into_head_is_not_an_error(seeded: Assistant) -> None:
    docs, index = str(seeded.settings.docs_dir), str(seeded.settings.index_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    cmd = f"{PY} -m assistant.cli --docs {docs} --index {index} search troops -k 20 | head -1"
    done = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, env=env, timeout=120)
    assert done.stdout.count("\n") == 1
    assert done.stderr == ""  # no "Unexpected error", no BrokenPipeError traceback


def test_misspelled_settings_are_errors_that_name_the_right_one(monkeypatch: pytest.MonkeyPatch,
                                                                seeded: Assistant) -> None:
    monkeypatch.setenv("ASSISTANT_LLM_BASEURL", "http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="ASSISTANT_LLM_BASEURL is set but is not a setting "
                                          r"\(did you mean ASSISTANT_LLM_BASE_URL\?\)"):
        Assistant(docs_dir=seeded.settings.docs_dir)
    done = _cli("ask", TROOPS, env={"ASSISTANT_LLM_BASEURL": "http://127.0.0.1:9/v1"})
    assert done.returncode == 1 and "did you mean ASSISTANT_LLM_BASE_URL" in done.stderr


def test_terminal_escapes_in_articles_never_reach_the_terminal(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "evil.txt").write_text(
        "Evil\x1b]0;pwned-title\x07 report\n\nThe \x1b[31mGlushkovo\x1b[0m bridge was destroyed by "
        "\x1b]8;;http://evil.example/\x1b\\HIMARS strikes\x1b]8;;\x1b\\ in August.\u202e\x9b2J\n", encoding="utf-8")
    index = str(tmp_path / "index")
    plain = _cli("--docs", str(docs), "--index", index, "ask", "What happened to the Glushkovo bridge?")
    assert plain.returncode == 0 and "HIMARS" in plain.stdout
    for ch in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert ch not in plain.stdout
    as_json = _cli("--docs", str(docs), "--index", index, "ask", "--json", "What happened to the Glushkovo bridge?")
    assert "\x1b" not in as_json.stdout and "\x9b" not in as_json.stdout
    quote = json.loads(as_json.stdout)["citations"][0]["quote"]
    assert "\x1b[31m" in quote  # --json keeps the quote verbatim, escaped as JSON


# --- 12. the package carries its prompts and sample articles ------------------------------------------------------
def test_prompts_and_sample_articles_are_package_resources() -> None:
    from assistant.llm import load_prompt
    from assistant.settings import DEFAULT_DOCS, shipped

    assert len(list(DEFAULT_DOCS.glob("*.txt"))) == 5
    assert "NOT IN THE ARTICLES" in load_prompt("system.txt")
    assert shipped("prompts").is_dir()


def test_holding_the_lock_file_is_per_index(tmp_path: Path) -> None:
    """The writers' lock is the flock of <index>/.sync.lock (what test_asking_never_waits_… holds)."""
    from assistant.index import sync_lock
    from assistant.settings import Settings

    s = Settings(index_dir=tmp_path / "i")
    with (sync_lock(s), sync_lock(s),  # re-entrant in one thread
          open(tmp_path / "i" / ".sync.lock") as fh, pytest.raises(BlockingIOError)):
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
