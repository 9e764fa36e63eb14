"""Speed and scale benchmark: our pipeline against its own ceiling and against plain LlamaIndex.

    python -m bench.run --sizes 1000,10000,100000 [--repeats 3] [--out bench/results] [--docs FOLDER]
                        [--work DIR] [--phases ingest,query,cold,llamaindex,llamaindex-same]

Each phase runs in a fresh child process (so peak memory is per phase). With --work the generated
corpora, the indexes and each phase's JSON are kept there, and phases not named in --phases are
read back from an earlier run: a 100k-chunk index (about 75 minutes of embedding on 2 cores) is
built once and its query phases can be re-measured after a change. Writes results.json and
results.md. Not part of the unit tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "How many North Korean troops did Russia deploy to Kursk?",
    "What is the range of the long Neptune missile?",
    "Who is the acting governor of the Kursk region?",
    "How many Ukrainian soldiers did Gerasimov say had been killed?",
    "Which villages near Sudzha did Russia say it recaptured?",
    "How far is the fighting in Kursk from Moscow?",
    "What did Russian forces use to conduct surprise attacks?",
    "Who said Russian forces have made only gradual gains?",
    "How many settlements did Ukrainian troops seize?",
    "What is the capital of France?",
]


# --- corpus generator ------------------------------------------------------------------------------
def generate(target_chunks: int, out: Path, seed: int = 1234) -> dict[str, Any]:
    """Recombine the seed articles' sentences into new articles until about target_chunks chunks."""
    from assistant.ingest import Document, chunk, read_text, split_sentences
    from assistant.settings import Settings

    meta = out / ".generated.json"
    if meta.exists() and json.loads(meta.read_text()).get("target") == [target_chunks, seed]:
        return dict(json.loads(meta.read_text()))
    s = Settings()
    rng = random.Random(seed)
    sentences: list[str] = []
    for p in sorted((REPO / "seeds").glob("*.txt")):
        text = read_text(p)
        sentences += [text[a:b] for a, b in split_sentences(text) if len(text[a:b]) > 40]
    out.mkdir(parents=True, exist_ok=True)
    total, n = 0, 0
    while total < target_chunks:
        body = rng.sample(sentences, k=rng.randint(8, 24))
        paras = [" ".join(body[i : i + 3]) for i in range(0, len(body), 3)]
        text = f"{rng.choice(sentences)[:90]}\n\n" + "\n\n".join(paras) + "\n"
        name = f"gen_{n:06d}.txt"
        doc = Document(name, out / name, text, "x", "")
        total += len(chunk(doc, s.chunk_tokens, s.chunk_overlap_tokens))
        (out / name).write_text(text, encoding="utf-8")
        n += 1
    info = {"files": n, "chunks": total, "seed": seed, "target": [target_chunks, seed]}
    meta.write_text(json.dumps(info))
    return info


def _stats(xs: list[float]) -> dict[str, float]:
    xs = sorted(xs)
    return {
        "median": round(statistics.median(xs), 4),
        "p95": round(xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))], 4),
        "min": round(xs[0], 4),
        "max": round(xs[-1], 4),
        "n": len(xs),
    }


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# --- worker steps (run in child processes) ------------------------------------------------------------
def worker_ingest(docs: Path, index: Path, repeats: int) -> dict[str, Any]:
    """Sync into an empty index, the raw-model ceiling on the same texts, then unchanged re-syncs."""
    from assistant import Assistant

    shutil.rmtree(index, ignore_errors=True)
    kb = Assistant(docs_dir=docs, index_dir=index, answerer="offline")
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    report = kb.sync()
    res["ingest_s"] = time.perf_counter() - t0
    res["chunks"], res["files"] = report.chunks_total, report.files_total
    from assistant.index import get_all

    texts = [str(doc) for _, _, doc in get_all(kb.index.collection, ["metadatas", "documents"])]
    model_tokens = kb.embedder.count_tokens(texts)  # word pieces the model reads, padding not counted
    res["model_tokens"] = model_tokens
    res["ingest_tokens_per_s"] = model_tokens / res["ingest_s"]
    # what the model really embedded: each distinct chunk text and each distinct sentence text once
    embedded = set(texts) | _sentence_texts(kb)
    res["sentences_embedded"] = report.sentences_embedded
    res["embedded_tokens"] = kb.embedder.count_tokens(sorted(embedded))
    res["embedded_tokens_per_s"] = res["embedded_tokens"] / res["ingest_s"]
    res["ingest_chunks_per_s"] = report.chunks_total / res["ingest_s"]
    # raw ceiling: the model alone on (a sample of) the same texts it embedded, chunks and sentences
    pool = sorted(embedded)
    sample = pool if len(pool) <= 3000 else random.Random(0).sample(pool, 3000)
    sample_tokens = kb.embedder.count_tokens(sample)
    raw = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        kb.embedder.embed(sample)
        raw.append(sample_tokens / (time.perf_counter() - t0))
    res["raw_embed_tokens_per_s"] = _stats(raw)
    res["ingest_vs_raw"] = res["embedded_tokens_per_s"] / statistics.median(raw)
    res["resync_unchanged_s"] = _stats([_timed(kb.sync) for _ in range(repeats)])
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["index_mb"] = _dir_size(index) / 1e6
    return res


def _sentence_texts(kb: Any) -> set[str]:
    """The distinct texts of the stored sentences (read back from their files at the stored offsets)."""
    from assistant.index import get_sentences
    from assistant.ingest import read_text

    meta, _ = get_sentences(kb.index.sentences)
    files: dict[str, str] = {}
    out = set()
    for m in meta:
        src = str(m["source"])
        if src not in files:
            files[src] = read_text(kb.settings.docs_dir / src)  # the text the offsets point into
        out.add(files[src][int(m["start"]) : int(m["end"])])
    return out


def worker_resync(docs: Path, index: Path, repeats: int) -> dict[str, Any]:
    """Re-sync an unchanged corpus: the first sync in a new process, then repeats in the same one."""
    from assistant import Assistant

    kb = Assistant(docs_dir=docs, index_dir=index, answerer="offline")
    first = _timed(kb.sync)
    return {"first_resync_s": first, "resync_unchanged_s": _stats([_timed(kb.sync) for _ in range(repeats)])}


def worker_query(docs: Path, index: Path, repeats: int) -> dict[str, Any]:
    """A fresh process on the built index: time to first answer, then warm ask() and retrieval latency."""
    from assistant import Assistant

    kb = Assistant(docs_dir=docs, index_dir=index, answerer="offline")
    res: dict[str, Any] = {"first_ask_s": _timed(lambda: kb.ask(QUESTIONS[0]))}
    asks, retr = [], []
    retriever = kb._ready()
    for _ in range(repeats):
        for q in QUESTIONS:
            asks.append(_timed(lambda q=q: kb.ask(q)) * 1000)
            retr.append(_timed(lambda q=q: retriever.retrieve(retriever.corpus.correct(q))) * 1000)
    res["ask_ms"], res["retrieve_ms"] = _stats(asks), _stats(retr)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["index_mb"] = _dir_size(index) / 1e6  # Chroma plus the cached manifest and retrieval state
    return res


def worker_llamaindex(docs: Path, index: Path, repeats: int, same_chunks: bool = False) -> dict[str, Any]:
    """Plain LlamaIndex: SimpleDirectoryReader → VectorStoreIndex over the same Chroma and the same
    embedding model; then its default retriever. Default splitter (1024-token chunks), or with
    same_chunks our chunk size and overlap, so that both embed the same amount of text."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.embed import OnnxEmbedder, llama_index_embedding
    from assistant.settings import Settings

    res: dict[str, Any] = {}
    shutil.rmtree(index, ignore_errors=True)
    embed = llama_index_embedding(OnnxEmbedder())
    ours = Settings()
    splitter = SentenceSplitter(chunk_size=ours.chunk_tokens, chunk_overlap=ours.chunk_overlap_tokens)
    client = chromadb.PersistentClient(path=str(index), settings=ChromaSettings(anonymized_telemetry=False))
    col = client.get_or_create_collection("plain", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    t0 = time.perf_counter()
    documents = SimpleDirectoryReader(str(docs)).load_data()
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=col))
    vindex = VectorStoreIndex.from_documents(
        documents, storage_context=storage, embed_model=embed, transformations=[splitter] if same_chunks else None
    )
    res["ingest_s"] = time.perf_counter() - t0
    res["chunks"] = col.count()
    retriever = vindex.as_retriever()
    retriever.retrieve(QUESTIONS[0])
    lat = []
    for _ in range(repeats):
        for q in QUESTIONS:
            lat.append(_timed(lambda q=q: retriever.retrieve(q)) * 1000)
    res["retrieve_ms"] = _stats(lat)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["index_mb"] = _dir_size(index) / 1e6
    return res


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


WORKERS = {
    "ingest": worker_ingest,
    "resync": worker_resync,
    "query": worker_query,
    "llamaindex": worker_llamaindex,
    "llamaindex-same": lambda d, i, r: worker_llamaindex(d, i, r, same_chunks=True),
}
PHASES = ["ingest", "resync", "query", "cold", "llamaindex", "llamaindex-same"]


def _child(kind: str, docs: Path, index: Path, repeats: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.run", "--worker", kind, "--docs", str(docs), "--index", str(index),
         "--repeats", str(repeats)],
        cwd=REPO, capture_output=True, text=True, check=False,
        env=dict(os.environ, ASSISTANT_ANSWERER="offline", TOKENIZERS_PARALLELISM="false"),
    )
    if out.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{out.stderr[-3000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


IMPORT_FLOOR = "import chromadb, onnxruntime, tokenizers, numpy"


def cold_start(docs: Path, index: Path, repeats: int) -> dict[str, Any]:
    """`assistant ask` as a user runs it: process start to printed answer, index already built; and the import
    floor, a process that only imports what answering cannot do without (Chroma, onnxruntime, tokenizers,
    numpy), timed in turn with it so that both see the same machine. The target: cold ask <= 1.5x the floor."""
    exe = Path(sys.executable).parent / "assistant"
    env = dict(os.environ, ASSISTANT_DOCS_DIR=str(docs), ASSISTANT_INDEX_DIR=str(index), ASSISTANT_ANSWERER="offline")
    ask = [str(exe), "ask", QUESTIONS[0]]
    floor = [sys.executable, "-c", IMPORT_FLOOR]
    for cmd in (ask, floor):  # caches warm
        subprocess.run(cmd, env=env, capture_output=True, check=True)
    times, floors = [], []
    for _ in range(repeats):
        floors.append(_timed(lambda: subprocess.run(floor, env=env, capture_output=True, check=True)))
        times.append(_timed(lambda: subprocess.run(ask, env=env, capture_output=True, check=True)))
    prof = subprocess.run([sys.executable, "-X", "importtime", *ask], env=env, capture_output=True, text=True,
                          check=True)
    return {"cold_ask_s": _stats(times), "import_floor_s": _stats(floors),
            "cold_vs_floor": statistics.median(times) / statistics.median(floors),
            "import_s_by_package": _import_profile(prof.stderr)}


def _import_profile(stderr: str) -> dict[str, float]:
    """Seconds spent importing each top-level package (python -X importtime), largest first."""
    totals: dict[str, float] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:") or line.count("|") != 2:
            continue
        _, cumulative, name = line.split("|")
        if name.startswith("  ") or not cumulative.strip().isdigit():  # nested: counted in its parent
            continue
        pkg = name.strip().split(".")[0]
        totals[pkg] = totals.get(pkg, 0.0) + int(cumulative) / 1e6
    top = sorted(totals.items(), key=lambda kv: -kv[1])
    return {k: round(v, 3) for k, v in top[:8]} | {"all": round(sum(totals.values()), 3)}


def run_size(label: str, docs: Path, work: Path, repeats: int, phases: list[str]) -> dict[str, Any]:
    """Run the named phases for one corpus; the others are read back from work/ if an earlier run left them."""
    row: dict[str, Any] = {"size": label}
    for phase in PHASES:
        saved = work / f"{phase}.json"
        plain = phase.startswith("llamaindex")
        index = work / (f"{phase}-index" if plain else "ours-index")
        if phase in phases:
            t0 = time.perf_counter()
            res = cold_start(docs, index, repeats) if phase == "cold" else _child(phase, docs, index, repeats)
            if plain:
                shutil.rmtree(index, ignore_errors=True)
            saved.write_text(json.dumps(res, indent=1))
            print(f"{label}: {phase} done in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
        if saved.exists():
            row[phase] = json.loads(saved.read_text())
    ing, qry = row.get("ingest"), row.get("query")
    for kind in ("llamaindex", "llamaindex-same"):
        plain = row.get(kind)
        if plain:
            # the model sees at most max_length word pieces per chunk, whatever the chunk's size
            row[f"{kind}_tokens_per_s_max"] = plain["chunks"] * _model_max_length() / plain["ingest_s"]
        if plain and ing:
            row[f"{kind}_ingest_ratio"] = ing["ingest_s"] / plain["ingest_s"]
        if plain and qry:
            row[f"{kind}_query_ratio"] = qry["retrieve_ms"]["median"] / plain["retrieve_ms"]["median"]
    return row


def _model_max_length() -> int:
    """Word pieces the embedding model reads per text; the rest of a longer chunk is cut off."""
    from assistant.embed import MODELS
    from assistant.settings import Settings

    return MODELS[Settings().embed_model].max_length


def _f(d: dict[str, Any] | None, *path: str, fmt: str = "{:.1f}") -> str:
    """A figure from nested results, or – when that phase did not run."""
    v: Any = d
    for key in path:
        if not isinstance(v, dict) or key not in v:
            return "–"
        v = v[key]
    return fmt.format(v)


def _spread(d: dict[str, Any] | None, key: str, fmt: str) -> str:
    return f"{_f(d, key, 'median', fmt=fmt)} ({_f(d, key, 'min', fmt=fmt)}–{_f(d, key, 'max', fmt=fmt)})"


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = ["# Benchmark", "", f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['python']}, "
             f"{machine['date']}. Medians over {machine['repeats']} repeats, with p95 (latencies) or min–max.", ""]
    lines += ["## Ours", ""]
    head = ("| corpus | chunks | sentences | raw embed tok/s (min–max) | ingest: chunk tok/s | embedded tok/s "
            "(chunks + sentences) | ingest chunks/s | embedded/raw | "
            "re-sync s (min–max) | first re-sync in a new process s | ask p50 / p95 ms | retrieve p50 / p95 ms | "
            "first ask after ingest s | "
            "cold `assistant ask` s (min–max) | import floor s (min–max) | cold / floor | "
            "peak RSS ingest / query MB | index MB (with caches) |")
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        i, q, c, rs = r.get("ingest"), r.get("query"), r.get("cold"), r.get("resync") or r.get("ingest")
        raw = _spread(i, "raw_embed_tokens_per_s", "{:.0f}")
        resync = _spread(rs, "resync_unchanged_s", "{:.2f}")
        cold = _spread(c, "cold_ask_s", "{:.2f}")
        floor = _spread(c, "import_floor_s", "{:.2f}")
        lines.append(
            f"| {r['size']} | {_f(i, 'chunks', fmt='{}')} | {_f(i, 'sentences_embedded', fmt='{}')} | {raw} | "
            f"{_f(i, 'ingest_tokens_per_s', fmt='{:.0f}')} | {_f(i, 'embedded_tokens_per_s', fmt='{:.0f}')} | "
            f"{_f(i, 'ingest_chunks_per_s')} | {_f(i, 'ingest_vs_raw', fmt='{:.0%}')} | {resync} | "
            f"{_f(rs, 'first_resync_s', fmt='{:.2f}')} | "
            f"{_f(q, 'ask_ms', 'median')} / {_f(q, 'ask_ms', 'p95')} | "
            f"{_f(q, 'retrieve_ms', 'median')} / {_f(q, 'retrieve_ms', 'p95')} | "
            f"{_f(q, 'first_ask_s', fmt='{:.2f}')} | "
            f"{cold} | {floor} | {_f(c, 'cold_vs_floor', fmt='{:.2f}x')} | "
            f"{_f(i, 'peak_rss_mb', fmt='{:.0f}')} / {_f(q, 'peak_rss_mb', fmt='{:.0f}')} | "
            f"{_f(i, 'index_mb')} ({_f(q, 'index_mb')}) |"
        )
    lines += ["", f"Import floor: a process that only runs `{IMPORT_FLOOR}`, timed in turn with the cold "
              "`assistant ask` (target: cold / floor <= 1.5x).", "",
              "Cold `assistant ask`: seconds spent importing Python packages (`python -X importtime`, one run):", ""]
    for r in rows:
        prof = (r.get("cold") or {}).get("import_s_by_package")
        if prof:
            parts = ", ".join(f"{k} {v:.2f}" for k, v in prof.items() if k != "all" and v >= 0.05)
            lines.append(f"- {r['size']}: {prof['all']:.2f} s of imports ({parts}) of "
                         f"{_f(r.get('cold'), 'cold_ask_s', 'median', fmt='{:.2f}')} s")
    lines += ["", "## Against plain LlamaIndex", ""]
    head = ("| corpus | ours: ingest s | ours: embedded tok/s | LlamaIndex defaults: chunks | ingest s | "
            "embedded tok/s (at most) | retrieve p50 ms | ours/theirs ingest time | ours/theirs query | "
            "LlamaIndex, our chunk size: chunks | ingest s | retrieve p50 ms | ours/theirs ingest time | "
            "ours/theirs query |")
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        i = r.get("ingest")
        cells = [r["size"], _f(i, "ingest_s"), _f(i, "ingest_tokens_per_s", fmt="{:.0f}")]
        for kind in ("llamaindex", "llamaindex-same"):
            p = r.get(kind)
            cells += [_f(p, "chunks", fmt="{}"), _f(p, "ingest_s")]
            if kind == "llamaindex":
                cells.append(_f(r, f"{kind}_tokens_per_s_max", fmt="{:.0f}"))
            cells += [_f(p, "retrieve_ms", "median"), _f(r, f"{kind}_ingest_ratio", fmt="{:.2f}"),
                      _f(r, f"{kind}_query_ratio", fmt="{:.2f}")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "ours/theirs < 1 means we are faster. Both LlamaIndex runs use the same Chroma and the same "
              "embedding model, dense retrieval only, its default top-k; the first with all its defaults "
              "(SentenceSplitter, 1024-token chunks), the second with our chunk size and overlap. The model "
              f"reads at most {_model_max_length()} word pieces of a chunk and drops the rest, so "
              "LlamaIndex's embedded tok/s is bounded by chunks × that limit / ingest time: its defaults embed "
              "a fraction of the text, which is why they finish sooner. – : not run."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000", help="chunk counts to generate, comma separated")
    ap.add_argument("--docs", help="also benchmark this folder of articles (or, with --worker, the folder)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--work", help="keep corpora, indexes and per-phase results here (default: a temporary folder)")
    ap.add_argument("--phases", default="ingest,resync,query,cold,llamaindex",
                    help=f"phases to run, from {','.join(PHASES)}; others are read back from --work")
    ap.add_argument("--no-seeds", action="store_true", help="skip the seeds row")
    ap.add_argument("--worker", choices=list(WORKERS))
    ap.add_argument("--index")
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(WORKERS[args.worker](Path(args.docs), Path(args.index), args.repeats)))
        return 0
    phases = [x for x in args.phases.split(",") if x]
    if unknown := set(phases) - set(PHASES):
        ap.error(f"unknown phases {sorted(unknown)}; choose from {PHASES}")
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        targets: list[tuple[str, str, Path]] = [] if args.no_seeds else [("seeds", "seeds", REPO / "seeds")]
        if args.docs:
            targets.append((Path(args.docs).name, f"docs-{Path(args.docs).name}", Path(args.docs)))
        for size in [int(x) for x in args.sizes.split(",") if x]:
            gen = generate(size, work / f"docs-{size}", args.seed)
            targets.append((f"generated {size:,} (seed {args.seed}, {gen['files']} files)", f"run-{size}",
                            work / f"docs-{size}"))
        for label, key, docs in targets:
            sub = work / key
            sub.mkdir(parents=True, exist_ok=True)
            rows.append(run_size(label, docs, sub, args.repeats, phases))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    (out / "results.md").write_text(markdown(rows, machine))
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
