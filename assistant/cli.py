"""Command line: a thin layer over the library.

    assistant ingest [DIR] [--rebuild]
    assistant ask "question" [--json] [--stream]
    assistant search "query" [-k N]
    assistant eval [--answerer offline|llm] [--out DIR]
    assistant serve
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import textwrap
from typing import Any

from .errors import AssistantError
from .text import visible


def safe(text: str) -> str:
    """Text that cannot drive the terminal: article text may carry escape sequences (window titles, links,
    colours) and control characters; they are removed (tabs and newlines kept)."""
    return visible(text)


def _json_safe(text: str) -> str:
    """JSON output keeps quotes verbatim; C1 controls (which json.dumps leaves raw) are escaped."""
    return re.sub(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069]", lambda m: f"\\u{ord(m.group()):04x}", text)


def _out(text: str = "") -> None:
    sys.stdout.write(safe(text) + "\n")
    sys.stdout.flush()


def _assistant(args: argparse.Namespace, docs: str | None = None) -> Any:
    from .assistant import Assistant

    overrides: dict[str, Any] = {}
    if getattr(args, "answerer", None):
        overrides["answerer"] = args.answerer
    return Assistant(docs_dir=docs or args.docs, index_dir=args.index, **overrides)


def _print_answer(answer: Any) -> None:
    _out(answer.text)
    if answer.notes:
        for note in answer.notes:
            _out(f"note: {note}")
    if answer.citations:
        _out()
        _out("Sources:")
        for n, c in enumerate(answer.citations, start=1):
            dated = f" ({c.date})" if c.date else ""
            _out(f"[{n}] {c.source}  chars {c.start}-{c.end}  — {c.title[:70]}{dated}")
            for line in textwrap.wrap(f"“{c.quote}”", width=100):
                _out(f"    {line}")


def cmd_ingest(args: argparse.Namespace) -> int:
    kb = _assistant(args, docs=args.dir)
    report = kb.sync(rebuild=args.rebuild)
    _out(report.summary())
    for skipped in report.skipped:
        _out(f"skipped: {skipped}")
    if report.files_total == 0 and report.chunks_total:  # the index keeps what it could not read this time
        _out(f"warning: no article in {kb.settings.docs_dir} could be read this time (see skipped above); the index "
             f"keeps their previous versions ({report.chunks_total} chunks) and answers from them while their files "
             "still hold the quoted text. Fix what is named above and run assistant ingest again.")
        return 1
    if report.files_total == 0:
        _out(f"warning: {kb.settings.docs_dir} has no readable .txt/.md/.markdown articles, so the index is empty; "
             "add some and run assistant ingest again.")
        return 1
    kb.prepare()
    return 0


def cmd_ask(args: argparse.Namespace) -> int:
    kb = _assistant(args)
    if args.stream:
        answer = None
        for piece in kb.stream(args.question):
            if isinstance(piece, str):
                sys.stdout.write(safe(piece))
                sys.stdout.flush()
            else:
                answer = piece
        _out()
        if answer is not None and not args.json:
            _out()
            _out("Verified answer:")
            _print_answer(answer)
    else:
        answer = kb.ask(args.question)
        if not args.json:
            _print_answer(answer)
    if args.json and answer is not None:
        sys.stdout.write(_json_safe(answer.model_dump_json(indent=2)) + "\n")
    args.only_read = kb.last_sync is None
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    kb = _assistant(args)
    hits = kb.search(args.query, k=args.k)
    if args.json:
        sys.stdout.write(_json_safe(json.dumps([h.model_dump() for h in hits], indent=2)) + "\n")
        return 0
    for n, h in enumerate(hits, start=1):
        dense = f"{h.dense_score:.3f}" if h.dense_score is not None else "-"
        bm25 = f"{h.bm25_score:.2f}" if h.bm25_score is not None else "-"
        _out(f"{n}. {h.source} chars {h.start}-{h.end}  fused={h.score:.4f} dense={dense} bm25={bm25}")
        _out(textwrap.indent(textwrap.fill(" ".join(h.text.split())[:400], 100), "    "))
    args.only_read = kb.last_sync is None
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .eval import run_cli

    return run_cli(args)


def cmd_serve(args: argparse.Namespace) -> int:
    from .ui import serve

    serve(docs_dir=args.docs, index_dir=args.index, host=args.host, port=args.port)
    return 0


def build_parser() -> argparse.ArgumentParser:
    def common(parser: argparse.ArgumentParser, default: object) -> None:
        parser.add_argument("--docs", default=default,
                            help="documents folder (default: ASSISTANT_DOCS_DIR or the repo's seeds/)")
        parser.add_argument("--index", default=default,
                            help="index folder (default: ASSISTANT_INDEX_DIR or a cache folder)")
        parser.add_argument("-v", "--verbose", action="store_true", default=False if default is None else default,
                            help="log what happens")

    p = argparse.ArgumentParser(prog="assistant", description="Cited answers over a folder of news articles.")
    common(p, None)
    # the same options after the command ("assistant eval --index DIR"); given there, they win
    shared = argparse.ArgumentParser(add_help=False)
    common(shared, argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, parents=[shared])

    s = command("ingest", "sync a folder of articles into the index")
    s.add_argument("dir", nargs="?", help="documents folder")
    s.add_argument("--rebuild", action="store_true", help="delete the index and build it again")
    s.set_defaults(func=cmd_ingest)

    s = command("ask", "answer a question with cited sources")
    s.add_argument("question")
    s.add_argument("--json", action="store_true", help="print the Answer as JSON")
    s.add_argument("--stream", action="store_true", help="print the answer as it is generated")
    s.add_argument("--answerer", choices=["auto", "offline", "llm"])
    s.set_defaults(func=cmd_ask)

    s = command("search", "show the top retrieved chunks")
    s.add_argument("query")
    s.add_argument("-k", type=int, default=None, help="how many chunks")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_search)

    s = command("eval", "score answers and citations on eval/questions.jsonl")
    s.add_argument("--answerer", choices=["offline", "llm"], default="offline")
    s.add_argument("--out", default="eval/results", help="folder for results.json and report.md")
    s.add_argument("--questions", default=None, help="question file (default eval/questions.jsonl)")
    s.add_argument("--limit", type=int, default=None, help="only the first N questions")
    s.add_argument("--corpus", default=None, help="only this corpus of eval/config.json (default: all)")
    s.add_argument("--fit", action="store_true",
                   help="cross-validate and refit the answer selector (writes assistant/selector.json)")
    s.add_argument("--verifier", action="store_true",
                   help="measure the LLM-answer verifier on eval/verifier_cases.jsonl (exit 1 under 95%%)")
    s.set_defaults(func=cmd_eval)

    s = command("serve", "start the chat page")
    s.add_argument("--host", default=None)
    s.add_argument("--port", type=int, default=None)
    s.set_defaults(func=cmd_serve)
    return p


def _exit_at_once(code: int) -> None:
    """End a process that only read the index without tearing down its memory: freeing the retrieval state and
    Chroma's vector index one object at a time took 0.5 s of a 2.2 s `assistant ask` at 100k chunks. Nothing is
    left to save (the answer is printed, the output flushed); a command that synced never comes here."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    for noisy in ("bm25s", "chromadb", "httpx", "onnxruntime"):
        logging.getLogger(noisy).setLevel(logging.WARNING if args.verbose else logging.ERROR)
    try:
        code = int(args.func(args))
        if argv is None and getattr(args, "only_read", False):
            _exit_at_once(code)
        return code
    except BrokenPipeError:  # `assistant ask … | head -1`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except AssistantError as exc:
        sys.stderr.write(safe(f"Error: {exc}") + "\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        return 130
    except Exception as exc:  # the user never sees a traceback; -v shows it
        if args.verbose:
            raise
        sys.stderr.write(safe(
            f"Unexpected error: {type(exc).__name__}: {exc}\n"
            "This is a bug in assistant, not a problem with your articles or index. Run again with -v for the "
            "details and report them.") + "\n")
        return 2


if __name__ == "__main__":
    sys.exit(main())
