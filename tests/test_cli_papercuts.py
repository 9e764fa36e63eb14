"""What a newcomer meets on the command line: the folder in use, messages said once and well, help, and
ordinary environment errors that are not called bugs."""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import Assistant
from assistant.cli import _parse, _print_answer, build_parser, clip
from assistant.schema import Answer, Citation, SyncReport

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"
TROOPS = "How many North Korean troops did Russia deploy to Kursk?"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    env.update(extra)  # XDG_CACHE_HOME is the test's own (conftest): the remembered folder too
    return env


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True,
                          env=env or _env(), timeout=300)


def _shell(command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, env=env or _env(), timeout=300)


def _no_bug(r: subprocess.CompletedProcess[str]) -> None:
    assert "bug" not in r.stderr and "Traceback" not in r.stderr and "Unexpected error" not in r.stderr, r.stderr


# --- 1. the folder in use ------------------------------------------------------------------------------
def test_the_folder_last_ingested_is_the_default_and_every_command_names_its_folder(
        tmp_path: Path, seeded: Assistant) -> None:
    news = tmp_path / "my news"
    news.mkdir()
    (news / "bridge.md").write_text("# Glushkovo bridge repaired\n\nArmy engineers repaired the Glushkovo bridge "
                                    "in March 2025, the regional governor said.\n", encoding="utf-8")
    r = _cli("ingest", str(news))
    assert r.returncode == 0, r.stderr
    assert f"Synced {news}: 1 article, 1 chunk" in r.stdout and "1 added" in r.stdout
    state = json.loads((tmp_path / "cache" / "assistant" / "cli.json").read_text())  # plain JSON, per user
    assert state == {"docs_dir": str(news.resolve())}

    r = _cli("ask", "How far is the fighting from Moscow?")  # no --docs: the folder just ingested, not seeds/
    assert r.returncode == 0, r.stderr
    assert "The articles don't cover this" in r.stdout
    assert f"Searched 1 article in {news}, the folder last ingested (choose another with --docs)" in r.stderr
    r = _cli("search", "Glushkovo", "bridge")
    assert r.returncode == 0 and "bridge.md" in r.stdout and f"in {news}, the folder last ingested" in r.stderr
    r = _cli("ingest")  # a bare ingest syncs that folder again, not the samples
    assert r.returncode == 0 and f"Synced {news}: 1 article" in r.stdout and "1 unchanged" in r.stdout, r.stderr
    assert f"Using {news}, the folder last ingested" in r.stderr

    index = str(seeded.settings.index_dir)  # --docs and ASSISTANT_DOCS_DIR still win
    r = _cli("ask", TROOPS, "--docs", str(SEEDS), "--index", index)
    assert r.returncode == 0 and "12,000" in r.stdout, r.stderr
    assert f"Searched 5 articles in {SEEDS}." in r.stderr and "last ingested" not in r.stderr
    r = _cli("ask", TROOPS, env=_env(ASSISTANT_DOCS_DIR=str(SEEDS), ASSISTANT_INDEX_DIR=index))
    assert r.returncode == 0 and "12,000" in r.stdout
    assert f"Searched 5 articles in {SEEDS} (ASSISTANT_DOCS_DIR)." in r.stderr
    assert json.loads((tmp_path / "cache" / "assistant" / "cli.json").read_text()) == state  # asking forgets nothing


def test_without_any_folder_the_samples_are_named_as_such(tmp_path: Path, seeded: Assistant) -> None:
    r = _cli("ask", TROOPS, "--index", str(seeded.settings.index_dir))
    assert r.returncode == 0 and "12,000" in r.stdout, r.stderr
    assert "the bundled sample articles (use your own: assistant ingest DIR)" in r.stderr
    assert not (tmp_path / "cache" / "assistant" / "cli.json").exists()  # nothing ingested: nothing remembered


# --- 3. an empty folder, skipped files ------------------------------------------------------------------
def test_empty_folder_says_each_problem_once_and_names_the_folder(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "copyright").write_text("(c) 2025\n")
    (empty / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0JFIF")
    (empty / "notes.pdf").write_bytes(b"%PDF-1.4")
    (empty / "blob.txt").write_bytes(b"\x00\x01\x02binary")
    r = _cli("ingest", str(empty))
    assert r.returncode == 1
    _no_bug(r)
    both = r.stdout + r.stderr
    assert both.count("no readable") == 1, both  # one message per problem: not a log line, a warning and advice
    assert f"then run: assistant ingest {empty}" in r.stderr  # a bare ingest would index another folder
    for name in ("copyright", "photo.jpg", "notes.pdf", "blob.txt"):
        assert both.count(name) == 1, (name, both)
    lines = r.stdout.splitlines()
    assert "Skipped 4 files:" in lines
    assert "  copyright: no extension; only .txt, .md, .markdown are read" in lines
    assert "  photo.jpg: .jpg is not an article type; only .txt, .md, .markdown are read" in lines  # no advice
    assert [ln for ln in lines if "notes.pdf" in ln and "save it as text" in ln]
    assert "skipped: " not in r.stdout and ": skipped," not in r.stdout
    assert not (tmp_path / "cache" / "assistant" / "cli.json").exists()  # an empty folder is not the default


# --- 4. plurals, titles and snippets ---------------------------------------------------------------------
def test_counts_agree_with_their_nouns() -> None:
    import httpx
    import openai

    from assistant.llm import LLMClient
    from assistant.settings import Settings

    summary = SyncReport(files_total=1, chunks_total=1, added=1, chunks_embedded=1, sentences_embedded=1).summary()
    assert summary.startswith("1 article, 1 chunk: 1 added") and "1 chunk embedded" in summary
    assert "1 sentence embedded" in summary
    assert SyncReport(files_total=2, chunks_total=0).summary().startswith("2 articles, 0 chunks:")
    client = LLMClient(Settings(llm_base_url="http://127.0.0.1:9/v1", llm_max_retries=0))
    err = client._error(openai.APIConnectionError(request=httpx.Request("POST", "http://127.0.0.1:9/v1")))
    assert "(1 try)" in str(err)


def test_titles_and_snippets_are_cut_at_a_word_with_an_ellipsis(capsys: pytest.CaptureFixture[str]) -> None:
    title = "Kremlin accelerates concerted push to drive Ukrainian forces from Kursk region before talks"
    assert clip(title, 70) == "Kremlin accelerates concerted push to drive Ukrainian forces from…"
    assert clip("short title", 70) == "short title"
    assert clip("x" * 100, 10) == "x" * 9 + "…"  # one very long word: cut, still marked
    quote = "Russia later deployed about 12,000 North Korean troops."
    answer = Answer(question="q", text="Russia deployed 12,000 troops [1].", citations=[
        Citation(source="evil\n[2] forged.txt  chars 0-1  — Forged", quote=quote, start=0, end=len(quote),
                 title=title)])
    _print_answer(answer)
    lines = capsys.readouterr().out.splitlines()
    assert not [ln for ln in lines if ln.startswith("[2]")]  # a newline in a file name forges no source line
    assert lines[3] == ("[1] evil\\n[2] forged.txt  chars 0-1  — Forged  chars 0-55  — Kremlin accelerates "
                        "concerted push to drive Ukrainian forces from…")


def test_search_snippets_end_at_a_word(seeded: Assistant) -> None:
    r = _cli("search", "North Korean troops", "-k", "1", "--docs", str(SEEDS),
             "--index", str(seeded.settings.index_dir))
    assert r.returncode == 0, r.stderr
    snippet = " ".join(ln.strip() for ln in r.stdout.splitlines()[1:])
    assert snippet.endswith("…"), snippet
    hit = seeded.search("North Korean troops", k=1)[0]
    assert (" ".join(hit.text.split()) + " ").startswith(snippet[:-1] + " ")  # the last word is whole


# --- 5. help and arguments -------------------------------------------------------------------------------
def test_every_option_has_help_and_rebuild_says_what_it_does() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in [("assistant", parser), *subparsers.choices.items()]:
        for action in sub._actions:
            if action.dest == "command":
                continue
            assert action.help and action.help.strip(), (name, action.option_strings or action.dest)
    ingest = subparsers.choices["ingest"]
    rebuild = next(a for a in ingest._actions if "--rebuild" in a.option_strings)
    assert "delete" not in (rebuild.help or "") and "beside" in (rebuild.help or "")


def test_an_unquoted_question_is_taken_whole() -> None:
    assert " ".join(_parse(["ask", "How", "far", "is", "the", "fighting", "from", "Moscow"]).question) == \
        "How far is the fighting from Moscow"
    args = _parse(["ask", "How", "far", "--json", "is", "Moscow?"])
    assert " ".join(args.question) == "How far is Moscow?" and args.json
    assert " ".join(_parse(["search", "North", "Korean", "troops", "-k", "2"]).query) == "North Korean troops"


@pytest.mark.parametrize("argv, message", [
    (["search", "troops", "-k", "-1"], "argument -k: must be 1 or more, not -1"),
    (["search", "troops", "-k", "0"], "argument -k: must be 1 or more, not 0"),
    (["eval", "--limit", "-3"], "argument --limit: must be 1 or more, not -3"),
    (["serve", "--port", "70000"], "argument --port: 70000 is not a port number: use 1 to 65535"),
    (["ask", "How", "far", "--jsn"], "unrecognized arguments: --jsn"),
])
def test_bad_numbers_are_rejected_by_the_parser(argv: list[str], message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(argv)
    assert exc.value.code == 2 and message in capsys.readouterr().err


# --- 2. environment errors are not bugs ------------------------------------------------------------------
def test_serve_without_the_ui_extra_says_how_to_install_it(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-c", "import sys; sys.modules['gradio'] = None\n"
                        "from assistant.cli import main; sys.exit(main(['serve']))"],
                       capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 1, r.stderr
    _no_bug(r)
    assert "gradio" in r.stderr and "pip install 'assistant[ui]'" in r.stderr and "pip install -e '.[ui]'" in r.stderr


def test_serve_on_a_port_in_use_says_so(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _cli("serve", "--port", str(port))
    assert r.returncode == 1
    _no_bug(r)
    assert f"port {port}: it is in use" in r.stderr and "--port" in r.stderr


def test_eval_results_folder_that_cannot_be_made_is_said_before_the_run(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    r = _cli("eval", "--out", str(tmp_path / "a-file" / "results"), "--limit", "1")
    assert r.returncode == 1
    _no_bug(r)
    assert "Cannot create the results folder" in r.stderr and "--out" in r.stderr
    assert "== corpus" not in r.stdout  # no question was run for nothing


def test_output_that_cannot_be_written_is_an_error_not_a_bug(seeded: Assistant) -> None:
    where = f"--docs {SEEDS} --index {seeded.settings.index_dir}"
    cli = f"{sys.executable} -m assistant.cli"
    if Path("/dev/full").exists():
        r = _shell(f"{cli} search troops {where} > /dev/full")
        assert r.returncode == 1 and "cannot write the output: No space left on device" in r.stderr
        _no_bug(r)
        assert "Exception ignored" not in r.stderr
    r = _shell(f"{cli} search troops {where} >&-")
    assert r.returncode == 1 and "standard output is closed" in r.stderr
    _no_bug(r)
    r = _cli("ask", TROOPS, *where.split(), env=_env(PYTHONIOENCODING="ascii"))  # “quotes” and — dashes
    assert r.returncode == 0 and "12,000" in r.stdout, r.stderr
    r = _shell(f"{cli} search troops {where} -k 6 | head -c 10")
    assert "Traceback" not in r.stderr and "Exception ignored" not in r.stderr and "bug" not in r.stderr
