"""The same pipeline against a real `chroma run` server on 127.0.0.1, started by the test."""

from __future__ import annotations

from pathlib import Path

import pytest

from assistant import Assistant
from assistant.errors import IndexUnavailableError

from .helpers import free_port

pytestmark = pytest.mark.server


def test_sync_and_ask_through_a_chroma_server(chroma_server: int, seeds_copy: Path, tmp_path: Path) -> None:
    kb = Assistant(docs_dir=seeds_copy, chroma_host="127.0.0.1", chroma_port=chroma_server, answerer="offline")
    first = kb.sync()
    assert first.added == 5 and first.chunks_embedded == first.chunks_total > 5
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("chroma.sqlite3"))
    again = Assistant(docs_dir=seeds_copy, chroma_host="127.0.0.1", chroma_port=chroma_server).sync()
    assert (again.unchanged, again.chunks_embedded) == (5, 0)
    a = kb.ask("How many North Korean troops did Russia deploy to Kursk?")
    assert "12,000" in a.text and a.citations[0].source == "002_5fe3474391e77e48.txt"


def test_server_down_is_a_clear_error(seeds_copy: Path) -> None:
    port = free_port()  # nothing listens here
    kb = Assistant(docs_dir=seeds_copy, chroma_host="127.0.0.1", chroma_port=port)
    with pytest.raises(IndexUnavailableError, match="Cannot reach the Chroma server") as err:
        kb.sync()
    assert "chroma run" in str(err.value)
