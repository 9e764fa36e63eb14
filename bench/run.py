"""Speed and scale benchmark: our pipeline against its own ceiling and against plain LlamaIndex.

    python -m bench.run --sizes 1000,10000 [--repeats 3] [--out bench/results] [--docs FOLDER]

Each size runs in fresh child processes (so peak memory is per size). Writes results.json and
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
    return {"files": n, "chunks": total, "seed": seed}


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
def worker_ours(docs: Path, index: Path, repeats: int) -> dict[str, Any]:
    from assistant import Assistant

    kb = Assistant(docs_dir=docs, index_dir=index, answerer="offline")
    res: dict[str, Any] = {}
    t0 = time.perf_counter()
    report = kb.sync()
    res["ingest_s"] = time.perf_counter() - t0
    res["chunks"], res["files"] = report.chunks_total, report.files_total
    texts = [r.text for r in kb.corpus.records]
    kb.embedder._load()
    model_tokens = sum(len(e.ids) for e in kb.embedder._tokenizer.encode_batch(texts))
    res["model_tokens"] = model_tokens
    res["ingest_tokens_per_s"] = model_tokens / res["ingest_s"]
    res["ingest_chunks_per_s"] = report.chunks_total / res["ingest_s"]
    # raw ceiling: the model alone on (a sample of) the same chunk texts
    sample = texts if len(texts) <= 1000 else random.Random(0).sample(texts, 1000)
    sample_tokens = sum(len(e.ids) for e in kb.embedder._tokenizer.encode_batch(sample))
    raw = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        kb.embedder.embed(sample)
        raw.append(sample_tokens / (time.perf_counter() - t0))
    res["raw_embed_tokens_per_s"] = _stats(raw)
    res["ingest_vs_raw"] = res["ingest_tokens_per_s"] / statistics.median(raw)
    res["resync_unchanged_s"] = _stats([_timed(kb.sync) for _ in range(repeats)])
    kb.ask(QUESTIONS[0])  # warm
    asks, retr = [], []
    retriever = kb._ready()
    for _ in range(repeats):
        for q in QUESTIONS:
            asks.append(_timed(lambda q=q: kb.ask(q)) * 1000)
            retr.append(_timed(lambda q=q: retriever.retrieve(q)) * 1000)
    res["ask_ms"], res["retrieve_ms"] = _stats(asks), _stats(retr)
    res["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    res["index_mb"] = _dir_size(index) / 1e6
    return res


def worker_llamaindex(docs: Path, index: Path, repeats: int) -> dict[str, Any]:
    """Plain LlamaIndex: SimpleDirectoryReader → VectorStoreIndex (default splitter) over the same
    Chroma and the same embedding model; then its default retriever."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings
    from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
    from llama_index.vector_stores.chroma import ChromaVectorStore

    from assistant.embed import OnnxEmbedder, llama_index_embedding

    res: dict[str, Any] = {}
    embed = llama_index_embedding(OnnxEmbedder())
    client = chromadb.PersistentClient(path=str(index), settings=ChromaSettings(anonymized_telemetry=False))
    col = client.get_or_create_collection("plain", metadata={"hnsw:space": "cosine"}, embedding_function=None)
    t0 = time.perf_counter()
    documents = SimpleDirectoryReader(str(docs)).load_data()
    storage = StorageContext.from_defaults(vector_store=ChromaVectorStore(chroma_collection=col))
    vindex = VectorStoreIndex.from_documents(documents, storage_context=storage, embed_model=embed)
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


def cold_start(docs: Path, index: Path, repeats: int) -> dict[str, float]:
    exe = Path(sys.executable).parent / "assistant"
    env = dict(os.environ, ASSISTANT_DOCS_DIR=str(docs), ASSISTANT_INDEX_DIR=str(index), ASSISTANT_ANSWERER="offline")
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run([str(exe), "ask", QUESTIONS[0]], env=env, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return _stats(times)


def run_size(label: str, docs: Path, work: Path, repeats: int) -> dict[str, Any]:
    ours = _child("ours", docs, work / "ours-index", repeats)
    plain = _child("llamaindex", docs, work / "plain-index", repeats)
    row = {"size": label, "ours": ours, "llamaindex": plain,
           "cold_ask_s": cold_start(docs, work / "ours-index", repeats)}
    row["ratio_ingest_time_ours_over_theirs"] = ours["ingest_s"] / plain["ingest_s"]
    row["ratio_query_ms_ours_over_theirs"] = ours["retrieve_ms"]["median"] / plain["retrieve_ms"]["median"]
    return row


def markdown(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    lines = ["# Benchmark", "", f"Machine: {machine['cpu']} ({machine['cores']} cores), {machine['python']}, "
             f"{machine['date']}. Medians over {machine['repeats']} repeats (p95 for latencies).", ""]
    head = ("| corpus | chunks | raw embed tok/s | ingest tok/s | ingest chunks/s | ingest/raw | re-sync s | "
            "ask p50/p95 ms | retrieve p50/p95 ms | cold ask s | peak RSS MB | index MB | "
            "LlamaIndex ingest s | ours/theirs ingest | LlamaIndex retrieve p50 ms | ours/theirs query |")
    lines += [head, "|" + " --- |" * (head.count("|") - 1)]
    for r in rows:
        o, p = r["ours"], r["llamaindex"]
        lines.append(
            f"| {r['size']} | {o['chunks']} | {o['raw_embed_tokens_per_s']['median']:.0f} | "
            f"{o['ingest_tokens_per_s']:.0f} | {o['ingest_chunks_per_s']:.1f} | {o['ingest_vs_raw']:.0%} | "
            f"{o['resync_unchanged_s']['median']:.2f} | {o['ask_ms']['median']:.1f} / {o['ask_ms']['p95']:.1f} | "
            f"{o['retrieve_ms']['median']:.1f} / {o['retrieve_ms']['p95']:.1f} | {r['cold_ask_s']['median']:.2f} | "
            f"{o['peak_rss_mb']:.0f} | {o['index_mb']:.1f} | {p['ingest_s']:.1f} | "
            f"{r['ratio_ingest_time_ours_over_theirs']:.2f} | {p['retrieve_ms']['median']:.1f} | "
            f"{r['ratio_query_ms_ours_over_theirs']:.2f} |"
        )
    lines += ["", "ours/theirs < 1 means we are faster. LlamaIndex runs with its defaults (SentenceSplitter, "
              "1024-token chunks, dense only), the same Chroma and the same embedding model."]
    return "\n".join(lines) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000", help="chunk counts to generate, comma separated")
    ap.add_argument("--docs", help="also benchmark this folder of articles (or, with --worker, the folder)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default=str(REPO / "bench" / "results"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--worker", choices=["ours", "llamaindex"])
    ap.add_argument("--index")
    args = ap.parse_args()
    if args.worker:
        fn = worker_ours if args.worker == "ours" else worker_llamaindex
        print(json.dumps(fn(Path(args.docs), Path(args.index), args.repeats)))
        return 0
    machine = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
               "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"), "repeats": args.repeats}
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        targets: list[tuple[str, Path]] = [("seeds", REPO / "seeds")]
        if args.docs:
            targets.append((Path(args.docs).name, Path(args.docs)))
        for size in [int(x) for x in args.sizes.split(",") if x]:
            gen = generate(size, work / f"docs-{size}", args.seed)
            targets.append((f"generated {size:,} (seed {args.seed}, {gen['files']} files)", work / f"docs-{size}"))
        for label, docs in targets:
            sub = work / f"run-{len(rows)}"
            sub.mkdir()
            t0 = time.perf_counter()
            rows.append(run_size(label, docs, sub, args.repeats))
            print(f"{label}: done in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
            shutil.rmtree(sub, ignore_errors=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    (out / "results.md").write_text(markdown(rows, machine))
    print((out / "results.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
