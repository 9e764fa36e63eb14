from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import Assistant

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "seeds"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """A test that fails while a server it relies on is dead says so: how the server ended (e.g. killed by
    SIGSEGV) and the end of its log, in the summary line and in a section of the report."""
    from .helpers import Server

    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    dead = Server.dead() if report.failed else []
    if dead:
        report.sections.append(("servers that died", "\n\n".join(s.death() or "" for s in dead)))
        crash = getattr(report.longrepr, "reprcrash", None)
        if crash is not None:  # the summary line: "FAILED test - [the llama.cpp server killed by ...] LLMError: ..."
            crash.message = f"[{'; '.join(s.ended() for s in dead)}] {crash.message}"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the developer's ASSISTANT_* / OPENAI_* variables or cache folder."""
    import os

    for key in list(os.environ):
        if key.startswith("ASSISTANT_") or key.startswith("OPENAI_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def seeds_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "docs"
    shutil.copytree(SEEDS, dst)
    for p in dst.iterdir():
        p.chmod(0o644)
    return dst


@pytest.fixture(scope="session")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Assistant:
    """One synced index over the seeds, shared read-only by the answer tests."""
    root = tmp_path_factory.mktemp("seeded")
    kb = Assistant(docs_dir=SEEDS, index_dir=root / "index", answerer="offline")
    kb.sync()
    return kb


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    """A real `chroma run` server on 127.0.0.1 for one test; yields its port."""
    from .helpers import free_port, start_chroma, stop

    port = free_port()
    proc, _ = start_chroma(tmp_path / "chroma-data", port)
    try:
        yield port
    finally:
        stop(proc)
