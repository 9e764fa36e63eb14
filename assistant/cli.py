"""Command line: a thin layer over the library.

    assistant ingest [DIR] [--rebuild]
    assistant ask QUESTION... [--json] [--stream]
    assistant search QUERY... [-k N] [--json]
    assistant eval [--answerer offline|llm] [--out DIR]
    assistant serve [--host HOST] [--port PORT]

The documents folder is --docs (or ingest's DIR), else ASSISTANT_DOCS_DIR, else the folder last ingested
(remembered in $XDG_CACHE_HOME/assistant/cli.json), else the bundled sample articles; every command says which
folder it used.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import logging
import os
import re
import shlex
import socket
import sys
import textwrap
from pathlib import Path
from typing import Any

from .errors import AssistantError, ConfigError, DocumentsError
from .redact import redact
from .text import plural, visible

log = logging.getLogger(__name__)

STATE_FILE = "cli.json"


class OutputError(Exception):
    """Standard output cannot be written (a full disk, a closed descriptor): not a bug."""


def safe(text: str) -> str:
    """Text that cannot drive the terminal: article text may carry escape sequences (window titles, links,
    colours) and control characters; they are removed (tabs and newlines kept)."""
    return visible(text)


def _json_safe(text: str) -> str:
    """JSON output keeps quotes verbatim; C1 controls (which json.dumps leaves raw) are escaped."""
    return re.sub(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]", lambda m: f"\\u{ord(m.group()):04x}", text)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def shown(name: str) -> str:
    """A file name or title on one line: control characters (a newline in a file name would forge a line of
    the sources list) are written as escapes, e.g. \\n."""
    return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], name)


def clip(text: str, limit: int) -> str:
    """The text on one line, cut at a word boundary to at most limit characters, with "…" when cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:  # a word boundary not too far back; else a very long word is cut
        cut = cut[:space]
    return cut.rstrip(" ,;:-–—") + "…"


def _write(text: str) -> None:
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise OutputError(exc.strerror or str(exc)) from None


def _out(text: str = "") -> None:
    _write(safe(text) + "\n")


def _err(text: str) -> None:
    """Everything the CLI says on stderr: no terminal escapes, no credentials (an LLM URL in an error)."""
    try:
        sys.stderr.write(safe(redact(text)) + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        pass  # nowhere left to say it


# --- which documents folder ----------------------------------------------------------------------------
def _state_path() -> Path:
    from .settings import _default_cache

    return _default_cache() / STATE_FILE


def remembered_folder() -> Path | None:
    """The folder last ingested with the CLI, if any."""
    path = _state_path()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.info("ignoring %s (%s)", path, exc)
        return None
    folder = data.get("docs_dir") if isinstance(data, dict) else None
    return Path(folder) if isinstance(folder, str) and folder else None


def remember_folder(docs: Path) -> bool:
    """Make docs the folder of the next commands that are given none; True when it was another one."""
    docs = Path(docs).resolve()
    if remembered_folder() == docs:
        return False
    path = _state_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"docs_dir": str(docs)}) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        _err(f"note: could not remember {docs} as the default folder ({exc.strerror or exc}); give it with "
             "--docs next time.")
        return False
    return True


def _folder(args: argparse.Namespace) -> tuple[str | None, str]:
    """The documents folder to use (None: the settings decide) and why: "given" (DIR or --docs), "env"
    (ASSISTANT_DOCS_DIR), "remembered" (the folder last ingested) or "samples"."""
    given = getattr(args, "dir", None) or getattr(args, "docs", None)
    if given:
        return str(given), "given"
    if os.environ.get("ASSISTANT_DOCS_DIR"):
        return None, "env"
    last = remembered_folder()
    if last is not None:
        if not last.is_dir():
            raise DocumentsError(
                f"The folder you last ingested, {str(last)!r}, is no longer there. Ingest another with: "
                "assistant ingest DIR (or choose one with --docs).")
        return str(last), "remembered"
    return None, "samples"


def _where(folder: str | Path, why: str) -> str:
    """The folder in use, said so that the user knows how it was chosen and how to choose another."""
    docs = shown(str(Path(folder).resolve()))
    return {
        "given": docs,
        "env": f"{docs} (ASSISTANT_DOCS_DIR)",
        "remembered": f"{docs}, the folder last ingested (choose another with --docs)",
        "samples": f"{docs}, the bundled sample articles (use your own: assistant ingest DIR)",
    }[why]


def _assistant(args: argparse.Namespace) -> tuple[Any, str]:
    from .assistant import Assistant

    overrides: dict[str, Any] = {}
    if getattr(args, "answerer", None):
        overrides["answerer"] = args.answerer
    docs, why = _folder(args)
    return Assistant(docs_dir=docs, index_dir=args.index, **overrides), why


def _searched(kb: Any, why: str) -> None:
    _err(f"Searched {plural(len(kb.corpus.sources), 'article')} in {_where(kb.settings.docs_dir, why)}.")


def _print_answer(answer: Any) -> None:
    _out(answer.text)
    if answer.notes:
        for note in answer.notes:
            _out(f"note: {redact(note)}")
    if answer.citations:
        _out()
        _out("Sources:")
        for n, c in enumerate(answer.citations, start=1):
            dated = f" ({c.date})" if c.date else ""
            _out(f"[{n}] {shown(c.source)}  chars {c.start}-{c.end}  — {clip(shown(c.title), 70)}{dated}")
            for line in textwrap.wrap(f"“{c.quote}”", width=100):
                _out(f"    {line}")


def _skipped(note: str) -> str:
    """A sync report's "NAME: skipped, WHY" as "NAME: WHY" (it is listed under "Skipped"), on one line."""
    return shown(re.sub(r"^(.*?): skipped, ", r"\1: ", note, count=1, flags=re.S))


def cmd_ingest(args: argparse.Namespace) -> int:
    kb, why = _assistant(args)
    docs = Path(kb.settings.docs_dir).resolve()
    if why != "given":
        _err(f"Using {_where(docs, why)}.")
    report = kb.sync(rebuild=args.rebuild)
    _out(f"Synced {shown(str(docs))}: {report.summary()}")
    if report.skipped:
        _out(f"Skipped {plural(len(report.skipped), 'file')}:")
        for note in report.skipped:
            _out(f"  {_skipped(note)}")
    if report.files_total == 0 and report.chunks_total:  # the index keeps what it could not read this time
        _out(f"warning: no article in {shown(str(docs))} could be read this time (see above); the index keeps "
             f"their previous versions ({plural(report.chunks_total, 'chunk')}) and answers from them while their "
             "files still hold the quoted text. Fix what is named above, then run: "
             f"assistant ingest {shlex.quote(str(docs))}")
        return 1
    if report.files_total == 0:
        _err(f"Error: {shown(str(docs))} has no readable .txt, .md or .markdown articles, so its index is empty. "
             f"Add some, then run: assistant ingest {shlex.quote(str(docs))}")
        return 1
    kb.prepare()
    if remember_folder(docs) and not os.environ.get("ASSISTANT_DOCS_DIR"):
        _err(f"From now on ask, search and serve use {shown(str(docs))} when no --docs is given.")
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    kb, why = _assistant(args)
    question = " ".join(args.question)
    if args.stream:
        answer = None
        for piece in kb.stream(question):
            if isinstance(piece, str):
                _write(safe(piece))
            else:
                answer = piece
        _out()
        if answer is not None and not args.json:
            _out()
            _out("Verified answer:")
            _print_answer(answer)
    else:
        answer = kb.ask(question)
        if not args.json:
            _print_answer(answer)
    if args.json and answer is not None:
        _write(_json_safe(answer.model_dump_json(indent=2)) + "\n")
    _searched(kb, why)
    args.only_read = kb.last_sync is None
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    kb, why = _assistant(args)
    hits = kb.search(" ".join(args.query), k=args.k)
    if args.json:
        _write(_json_safe(json.dumps([h.model_dump() for h in hits], indent=2)) + "\n")
    else:
        for n, h in enumerate(hits, start=1):
            dense = f"{h.dense_score:.3f}" if h.dense_score is not None else "-"
            bm25 = f"{h.bm25_score:.2f}" if h.bm25_score is not None else "-"
            _out(f"{n}. {shown(h.source)} chars {h.start}-{h.end}  fused={h.score:.4f} dense={dense} bm25={bm25}")
            _out(textwrap.indent(textwrap.fill(clip(h.text, 400), 100), "    "))
    _searched(kb, why)
    args.only_read = kb.last_sync is None
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval import run_cli

    if not args.fit:  # fail now, not after the questions ran
        out = Path(args.out)
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"Cannot create the results folder {str(out)!r} ({exc.strerror or exc}). "
                              "Choose another with --out DIR.") from None
        if not os.access(out, os.W_OK | os.X_OK):
            raise ConfigError(f"Cannot write in the results folder {str(out)!r} (permission denied). "
                              "Choose another with --out DIR.")
    return run_cli(args)


def _check_listen(host: str, port: int) -> None:
    """Fail now, with what to do, when the page could not listen on host:port."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"Cannot serve on {host!r}: {exc.strerror}. Give an address of this machine with "
                          "--host (e.g. 127.0.0.1) or ASSISTANT_HOST.") from None
    with socket.socket(family, kind, proto) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the web server does: TIME_WAIT is no clash
        try:
            s.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                why = "it is in use (another assistant serve?)"
            elif exc.errno == errno.EACCES:
                why = "permission denied (ports under 1024 need privileges)"
            else:
                why = exc.strerror or str(exc)
            raise ConfigError(f"Cannot serve on {host} port {port}: {why}. Choose another port with --port N "
                              "or ASSISTANT_PORT.") from None


def cmd_serve(args: argparse.Namespace) -> int:
    import importlib.util

    from .settings import Settings

    if importlib.util.find_spec("gradio") is None:  # say so before the sync, not after
        raise ModuleNotFoundError("No module named 'gradio'", name="gradio")
    settings = Settings.load()
    host = args.host or settings.host
    port = args.port or settings.port
    _check_listen(host, port)
    docs, why = _folder(args)
    _err(f"Serving the articles in {_where(docs or settings.docs_dir, why)}.")
    from .ui import serve

    serve(docs_dir=docs, index_dir=args.index, host=host, port=port)
    return 0


def positive_int(text: str) -> int:
    """argparse type: a whole number of 1 or more."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {n}")
    return n


def port_number(text: str) -> int:
    """argparse type: a TCP port, 1 to 65535."""
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1 to 65535)") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"{n} is not a port number: use 1 to 65535")
    return n


def build_parser() -> argparse.ArgumentParser:
    def common(parser: argparse.ArgumentParser, default: object) -> None:
        parser.add_argument("--docs", default=default, metavar="DIR",
                            help="documents folder (default: ASSISTANT_DOCS_DIR, else the folder last ingested, "
                            "else the bundled sample articles)")
        parser.add_argument("--index", default=default, metavar="DIR",
                            help="index folder (default: ASSISTANT_INDEX_DIR, else a folder per documents folder "
                            "under ~/.cache/assistant)")
        parser.add_argument("-v", "--verbose", action="store_true", default=False if default is None else default,
                            help="log what happens (and show the traceback of an unexpected error)")

    p = argparse.ArgumentParser(prog="assistant", description="Cited answers over a folder of news articles.")
    common(p, None)
    # the same options after the command ("assistant eval --index DIR"); given there, they win
    shared = argparse.ArgumentParser(add_help=False)
    common(shared, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=help[0].upper() + help[1:] + ".", parents=[shared])

    s = command("ingest", "sync a folder of articles into the index; it becomes the folder of the next commands")
    s.add_argument("dir", nargs="?", metavar="DIR",
                   help="documents folder (default: as for --docs); sync again after articles change")
    s.add_argument("--rebuild", action="store_true",
                   help="build a new index from scratch beside the current one, which keeps answering until the "
                   "new one is complete and replaces it (use it when the index is damaged)")
    s.set_defaults(func=cmd_ingest)

    s = command("ask", "answer a question with cited sources")
    s.add_argument("question", nargs="+", metavar="QUESTION",
                   help="the question; quoting it is optional (the words are joined)")
    s.add_argument("--json", action="store_true", help="print the Answer as JSON (citations with offsets)")
    s.add_argument("--stream", action="store_true", help="print the answer as it is generated, then verified")
    s.add_argument("--answerer", choices=["auto", "offline", "llm"],
                   help="offline: no LLM; llm: require one (ASSISTANT_LLM_BASE_URL or OPENAI_API_KEY); auto "
                   "(default, ASSISTANT_ANSWERER): the LLM when one is configured, else offline")
    s.set_defaults(func=cmd_ask)

    s = command("search", "show the top retrieved chunks with their scores")
    s.add_argument("query", nargs="+", metavar="QUERY", help="what to search for; quoting it is optional")
    s.add_argument("-k", type=positive_int, default=None, metavar="N",
                   help="how many chunks to show (default: ASSISTANT_TOP_K, 6)")
    s.add_argument("--json", action="store_true", help="print the chunks as JSON, with their scores and offsets")
    s.set_defaults(func=cmd_search)

    s = command("eval", "score answers and citations on eval/questions.jsonl")
    s.add_argument("--answerer", choices=["offline", "llm"], default="offline",
                   help="which answerer to score, with its own thresholds in eval/config.json (default: offline)")
    s.add_argument("--out", default="eval/results", metavar="DIR",
                   help="folder for results.json and report.md (default: eval/results)")
    s.add_argument("--questions", default=None, metavar="FILE",
                   help="a question file of your own, over --docs (default: the corpora of eval/config.json)")
    s.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only the first N questions of each corpus (a metric they cannot measure is skipped)")
    s.add_argument("--corpus", default=None, metavar="NAME",
                   help="only this corpus of eval/config.json (default: all)")
    s.add_argument("--fit", action="store_true",
                   help="cross-validate and refit the answer selector (writes assistant/selector.json)")
    s.add_argument("--verifier", action="store_true",
                   help="measure the LLM-answer verifier on eval/verifier_cases.jsonl (exit 1 under 95%%)")
    s.set_defaults(func=cmd_eval)

    s = command("serve", "start the chat page (needs the ui extra)")
    s.add_argument("--host", default=None,
                   help="address to listen on (default: ASSISTANT_HOST, 127.0.0.1; another needs a password)")
    s.add_argument("--port", type=port_number, default=None, help="port to listen on (default: ASSISTANT_PORT, 7860)")
    s.set_defaults(func=cmd_serve)
    return p


def _parse(argv: list[str] | None) -> argparse.Namespace:
    """The arguments; words of a question that come after an option (`ask How far --json is it`) join it."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    words = getattr(args, "question", None) or getattr(args, "query", None)
    if extra:
        if words is None or any(e.startswith("-") for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        words.extend(extra)
    return args


def _exit_at_once(code: int) -> None:
    """End a process that only read the index without tearing down its memory: freeing the retrieval state and
    Chroma's vector index one object at a time took 0.5 s of a 2.2 s `assistant ask` at 100k chunks. Nothing is
    left to save (the answer is printed, the output flushed); a command that synced never comes here."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _open_streams() -> bool:
    """Standard streams a command can use whatever it was started with: a closed descriptor 0-2 is opened on
    /dev/null (else the next file opened, an index file, would take its number and receive what a library
    prints), and text that the output's encoding cannot hold is replaced, not an error. False when standard
    output was closed."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    if closed:
        devnull = os.open(os.devnull, os.O_RDWR)  # takes the lowest closed number
        for fd in closed:
            if fd != devnull:
                os.dup2(devnull, fd)
        if devnull not in closed:
            os.close(devnull)
    if sys.stderr is None:
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (for the life of the process)
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="replace")
    return sys.stdout is not None and 1 not in closed


def _quiet_stdout() -> None:
    """Send what is left in stdout's buffer to /dev/null: Python's flush at exit would fail again, loudly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _extra_for(module: str) -> str | None:
    """The optional extra of the assistant package that installs this module (gradio: ui), if any."""
    from importlib import metadata

    try:
        requires = metadata.requires("assistant") or []
    except metadata.PackageNotFoundError:
        return None
    key = re.sub(r"[-_.]+", "", module).lower()
    for req in requires:
        name = re.match(r"[A-Za-z0-9._-]+", req)
        extra = re.search(r"""extra\s*==\s*["']([^"']+)["']""", req)
        if name and extra and re.sub(r"[-_.]+", "", name.group()).lower() == key:
            return extra.group(1)
    return None


def _missing(exc: ModuleNotFoundError) -> str:
    module = (exc.name or "").split(".")[0] or "a module"
    extra = _extra_for(module)
    if extra:
        return (f"Error: this needs {module}, which is not installed (the {extra!r} extra). Install it with: "
                f"pip install 'assistant[{extra}]'  (in a checkout: pip install -e '.[{extra}]')")
    return (f"Error: the Python package {module} is not installed in {sys.prefix}. Reinstall assistant there "
            "(pip install assistant, or pip install -e . in a checkout).")


def main(argv: list[str] | None = None) -> int:
    stdout_open = _open_streams()
    args = _parse(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("bm25s", "chromadb", "httpx", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING if args.verbose else logging.ERROR)
    if not stdout_open:
        _err("Error: standard output is closed, so nothing could be printed. To discard the output, send it to "
             "/dev/null instead (assistant … > /dev/null).")
        return 1
    try:
        code = int(args.func(args))
        _write("")  # what is still buffered fails here, not in the interpreter's exit
        if argv is None and getattr(args, "only_read", False):
            _exit_at_once(code)
        return code
    except BrokenPipeError:  # `assistant ask … | head -1`: the reader has what it wanted
        _quiet_stdout()
        return 141
    except OutputError as exc:  # e.g. > /dev/full
        _quiet_stdout()
        _err(f"Error: cannot write the output: {exc}.")
        return 1
    except AssistantError as exc:
        _err(f"Error: {exc}")
        return 1
    except KeyboardInterrupt:
        _err("Interrupted.")
        return 130
    except ModuleNotFoundError as exc:  # an install problem, not a bug
        if args.verbose:
            raise
        _err(_missing(exc))
        return 1
    except OSError as exc:  # the system said no (a path, a permission, a full disk): not a bug
        if args.verbose:
            raise
        what = exc.strerror or str(exc)
        _err(f"Error: {shown(str(exc.filename))}: {what}. Check the path and its permissions." if exc.filename
             else f"Error: {what} (run again with -v for the details).")
        return 1
    except Exception as exc:  # the user never sees a traceback; -v shows it
        if args.verbose:
            raise
        _err(f"Unexpected error: {type(exc).__name__}: {exc}\n"
             "This is a bug in assistant, not a problem with your articles or index. Run again with -v for the "
             "details and report them.")
        return 2


if __name__ == "__main__":
    sys.exit(main())
