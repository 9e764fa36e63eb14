"""A new `assistant ask` process loads only what the offline answer needs.

Importing LlamaIndex took 1.2-1.5 s of a 2.4 s cold `assistant ask` (the import floor of Chroma, onnxruntime,
tokenizers and numpy is 0.9 s); the dense search now asks the Chroma collection itself, and LlamaIndex stays
for the eval's plain dense baseline. The test checks which modules are loaded, not how long it takes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from assistant import Assistant

QUESTION = "How many North Korean troops did Russia deploy to Kursk?"
NOT_NEEDED = ("llama_index", "openai", "gradio", "tiktoken")

_CHILD = """
import json, sys
from assistant.cli import main
codes = [main(["ask", sys.argv[1]]), main(["search", sys.argv[1]])]
sys.stderr.write(json.dumps({"codes": codes, "loaded": sorted({m.split(".")[0] for m in sys.modules})}) + "\\n")
"""


def test_offline_ask_in_a_new_process_never_imports_llama_index_openai_or_gradio(
    seeded: Assistant, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASSISTANT_", "OPENAI_"))}
    env.update(ASSISTANT_DOCS_DIR=str(seeded.settings.docs_dir), ASSISTANT_INDEX_DIR=str(seeded.settings.index_dir),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-c", _CHILD, QUESTION], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "12,000" in proc.stdout and "[1]" in proc.stdout  # it answered, with a citation, and searched
    assert "fused=" in proc.stdout
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    assert report["codes"] == [0, 0]
    assert [m for m in NOT_NEEDED if m in report["loaded"]] == []


def test_dense_search_agrees_with_llama_index_vector_store(seeded: Assistant) -> None:
    """The dense ranking read from the collection is the one LlamaIndex's ChromaVectorStore gives (the eval's
    baseline still goes through it): same chunks, same order, same cosines."""
    from llama_index.core.vector_stores.types import VectorStoreQuery

    retriever = seeded._ready()
    for question in (QUESTION, "What is the range of the long Neptune missile?", "capital of France"):
        ours = retriever.dense(question, 12)
        vector = retriever.query_vector(question).tolist()
        theirs = retriever.store.query(VectorStoreQuery(query_embedding=vector, similarity_top_k=12))
        assert [cid for cid, _ in ours] == theirs.ids
        for (_, cos), sim in zip(ours, theirs.similarities or []):
            assert abs(cos - retriever._cos(sim)) < 1e-9
    assert [c.chunk_id for c in retriever.dense_only(QUESTION, 3)] == [cid for cid, _ in retriever.dense(QUESTION, 3)]
