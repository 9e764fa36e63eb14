"""Starting and stopping real local servers for integration tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server at {url} did not come up in {timeout}s: {log.read_text(errors='replace')[-2000:]}")


def chroma_binary() -> str:
    exe = Path(sys.executable).parent / "chroma"
    return str(exe) if exe.exists() else (shutil.which("chroma") or "chroma")


def start_chroma(path: Path, port: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = path.parent / f"chroma-{port}.log"
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    proc = subprocess.Popen(
        [chroma_binary(), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(path)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env,
    )
    wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, 60, log)
    return proc, log


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
