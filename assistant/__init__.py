"""assistant: cited answers over a folder of news articles."""

from __future__ import annotations

import os
from pathlib import Path

# tiktoken must never reach for the network: its encodings ship inside llama-index-core. The folder is found
# without importing llama_index (find_spec of "llama_index.core" would import the parent package): answering
# never imports it.
if "TIKTOKEN_CACHE_DIR" not in os.environ:
    import importlib.util

    _spec = importlib.util.find_spec("llama_index")
    for _root in (_spec.submodule_search_locations or []) if _spec is not None else []:
        _cache = Path(_root) / "core" / "_static" / "tiktoken_cache"
        if _cache.is_dir():
            os.environ["TIKTOKEN_CACHE_DIR"] = str(_cache)
            break
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

from .assistant import Assistant, ask  # noqa: E402
from .errors import AssistantError  # noqa: E402
from .schema import Answer, Citation  # noqa: E402
from .settings import Settings  # noqa: E402

__all__ = ["Answer", "Assistant", "AssistantError", "Citation", "Settings", "ask"]
__version__ = "0.1.0"
