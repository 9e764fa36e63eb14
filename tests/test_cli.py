"""The CLI as a user runs it: a real process, real index, no tracebacks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def _run(args: list[str], tmp_path: Path, docs: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    env["ASSISTANT_INDEX_DIR"] = str(tmp_path / "index")
    if docs is not None:
        env["ASSISTANT_DOCS_DIR"] = str(docs)
    return subprocess.run(
        [sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_ingest_ask_search_json(tmp_path: Path, seeds_copy: Path) -> None:
    r = _run(["ingest"], tmp_path, seeds_copy)
    assert r.returncode == 0, r.stderr
    assert "5 added" in r.stdout
    r = _run(["ask", "How many North Korean troops did Russia deploy to Kursk?"], tmp_path, seeds_copy)
    assert r.returncode == 0, r.stderr
    assert "12,000" in r.stdout and "[1] 002_5fe3474391e77e48.txt" in r.stdout
    r = _run(["ask", "--json", "What range does the long Neptune missile have?"], tmp_path, seeds_copy)
    data = json.loads(r.stdout)
    assert data["citations"][0]["source"] == "003_66a1545cc8f86729.txt" and "1,000" in data["text"]
    r = _run(["search", "North Korean troops", "-k", "2"], tmp_path, seeds_copy)
    assert r.returncode == 0 and r.stdout.startswith("1. ") and "dense=" in r.stdout


def test_errors_have_no_traceback(tmp_path: Path, seeds_copy: Path) -> None:
    r = _run(["ask", "   "], tmp_path, seeds_copy)
    assert r.returncode == 1 and "question is empty" in r.stderr and "Traceback" not in r.stderr
    r = _run(["ingest", str(tmp_path / "missing")], tmp_path)
    assert r.returncode == 1 and "does not exist" in r.stderr and "Traceback" not in r.stderr
    (tmp_path / "index").mkdir(exist_ok=True)
    dbs = list((tmp_path / "index").rglob("chroma.sqlite3")) or [tmp_path / "index" / "chroma.sqlite3"]
    for db in dbs:  # the database of the index in use (whichever generation CURRENT names)
        db.parent.mkdir(parents=True, exist_ok=True)
        db.write_bytes(b"garbage" * 1000)
    r = _run(["ask", "anything about Kursk?"], tmp_path, seeds_copy)
    assert r.returncode == 1 and "--rebuild" in r.stderr and "Traceback" not in r.stderr
    r = _run(["ingest", "--rebuild"], tmp_path, seeds_copy)
    assert r.returncode == 0 and "5 added" in r.stdout


def test_folder_options_work_before_or_after_the_command(tmp_path: Path, seeds_copy: Path) -> None:
    other = tmp_path / "other-index"
    r = _run(["ingest", "--index", str(other), "--docs", str(seeds_copy)], tmp_path)
    assert r.returncode == 0 and "5 added" in r.stdout, r.stderr
    assert other.exists() and not (tmp_path / "index").exists()
    r = _run(["--index", str(other), "ask", "How many North Korean troops did Russia deploy to Kursk?",
              "--docs", str(seeds_copy)], tmp_path)
    assert r.returncode == 0 and "12,000" in r.stdout, r.stderr
