"""A server a test started (llama.cpp, chroma) that dies says how: its exit status or signal and the end of its
log, at start-up and in the report of any test that fails after it died."""

from __future__ import annotations

import signal
import sys
import textwrap
from pathlib import Path

import pytest

from .helpers import Server, ServerDied, how_it_ended, wait_http

REPO = Path(__file__).resolve().parent.parent
pytest_plugins = ["pytester"]

CRASHING = textwrap.dedent("""
    import os, signal, sys, time
    print("loading model SmolLM2 ...", flush=True)
    time.sleep(float(sys.argv[1]))
    print("ggml_backend: illegal instruction near 0xdead", flush=True)
    os.kill(os.getpid(), signal.SIGSEGV)
""")


def test_a_server_that_dies_while_starting_names_the_signal_and_its_log(tmp_path: Path) -> None:
    server = Server("fake", [sys.executable, "-c", CRASHING, "0"], tmp_path / "fake.log")
    with pytest.raises(ServerDied) as err:
        wait_http("http://127.0.0.1:9/", server, 60, tmp_path / "fake.log")
    message = str(err.value)
    assert "killed by SIGSEGV (exit -11) while starting" in message
    assert "loading model SmolLM2" in message and "illegal instruction near 0xdead" in message
    assert server not in Server.running  # said once, not again after every later test


def test_a_test_failing_after_its_server_died_says_how_it_died(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeconftest(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
                          "from tests.conftest import pytest_runtest_makereport  # noqa: F401\n")
    pytester.makepyfile(test_uses_server=f"""
        import sys
        import pytest
        from tests.helpers import Server, stop

        @pytest.fixture
        def llama(tmp_path):
            server = Server("llama.cpp", [sys.executable, "-c", {CRASHING!r}, "0"], tmp_path / "llama.log")
            yield server
            stop(server)

        def test_llm_answers(llama):
            llama.wait()  # it dies under the test
            raise ConnectionError("Cannot connect to the LLM at 127.0.0.1 (1 try). Is the server running?")

        def test_stopped_on_purpose_is_no_death(tmp_path):
            server = Server("chroma", [sys.executable, "-c", "import time; time.sleep(60)"], tmp_path / "c.log")
            stop(server)
            assert False, "fails for its own reason"
    """)
    result = pytester.runpytest_subprocess("-vv", "-p", "no:cacheprovider", "-rf")  # -vv: summary lines whole
    out = result.stdout.str()
    assert result.ret == 1
    summary = [ln for ln in out.splitlines() if ln.startswith("FAILED") and "test_llm_answers" in ln]
    assert summary and "[the llama.cpp server killed by SIGSEGV (exit -11)] ConnectionError" in summary[0], out
    assert "servers that died" in out and "illegal instruction near 0xdead" in out
    other = [ln for ln in out.splitlines() if ln.startswith("FAILED") and "stopped_on_purpose" in ln]
    assert other and "SIGSEGV" not in other[0] and "chroma" not in other[0], out


def test_how_a_process_ended_in_words() -> None:
    assert how_it_ended(-signal.SIGKILL) == "killed by SIGKILL (exit -9)"
    assert how_it_ended(3) == "exited with status 3"
