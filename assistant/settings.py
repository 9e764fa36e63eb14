"""One settings model for the whole assistant (environment prefix ``ASSISTANT_``)."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PACKAGE_ROOT = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_ROOT.parent


def shipped(name: str) -> Path:
    """A folder that ships with the package: inside it when installed from a wheel (assistant/prompts,
    assistant/seeds), at the top of the repository in a checkout or an editable install."""
    from importlib.resources import files

    packaged = Path(str(files("assistant") / name))
    return packaged if packaged.is_dir() else REPO_ROOT / name


DEFAULT_DOCS = shipped("seeds")
PROMPTS_DIR = shipped("prompts")

ENV_PREFIX = "ASSISTANT_"

#: Bumped whenever chunking logic changes in a way that changes chunk spans.
CHUNKER_VERSION = 4  # 2: a sentence collection beside the chunks; 3: headlines and datelines in chunk metadata;
# 4: a heading in capitals run into its first sentence is a sentence of its own


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "assistant"


class Settings(BaseSettings):
    """Everything that can be configured. Unknown keys are rejected."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", validate_assignment=True
    )

    # --- corpus and index -------------------------------------------------
    docs_dir: Path = Field(DEFAULT_DOCS, description="Folder of .txt/.md articles to answer from.")
    index_dir: Path | None = Field(
        None,
        description="Folder of the on-disk Chroma index. Default: a folder per docs_dir "
        "under $XDG_CACHE_HOME/assistant (or ~/.cache/assistant).",
    )
    chroma_host: str | None = Field(
        None, description="Use a Chroma server at this host instead of the on-disk index."
    )
    chroma_port: int = Field(8000, description="Port of the Chroma server (with chroma_host).")
    chroma_namespace: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$",
        description="Name that keeps this documents folder's collections apart from other folders' in one "
        "Chroma (a server or a shared index folder). Default: a hash of the folder's absolute path; set the "
        "same name on machines that share one folder under different paths.",
    )
    embed_model: str = Field(
        "all-MiniLM-L6-v2-int8", description="Embedding model id (only the bundled one ships)."
    )
    embed_batch_size: int = Field(64, ge=1, le=512, description="Most texts in one embedding batch.")
    embed_batch_tokens: int = Field(
        1024,
        ge=256,
        le=65536,
        description="Most word pieces (padding included) in one embedding batch: texts are sorted by length and "
        "grouped up to this budget. Small batches stay in the CPU cache (1,024 measured fastest on 2 cores).",
    )
    chunk_tokens: int = Field(
        160, ge=32, le=240, description="Target chunk size in tiktoken tokens (cl100k_base)."
    )
    chunk_overlap_tokens: int = Field(
        32, ge=0, le=120, description="Tokens of whole sentences repeated between neighbour chunks."
    )
    max_file_bytes: int = Field(
        20_000_000, ge=1, description="Larger files are skipped at ingest with a warning."
    )
    max_article_sentences: int = Field(
        10_000, ge=1, description="Articles with more sentences are skipped at ingest with a warning: every "
        "sentence is stored with its own vector (about 3 KB of index), so 1.25 MB of \"Yes. \" would cost 613 MB.",
    )
    follow_external_links: bool = Field(
        False,
        description="Index files reached through symbolic links that point outside the documents folder "
        "(off: such links are skipped and named in the sync report).",
    )

    # --- retrieval and answering -------------------------------------------
    top_k: int = Field(6, ge=1, le=50, description="Chunks handed to the answerer after fusion.")
    candidate_k: int = Field(
        20, ge=1, le=200, description="Chunks each retriever (dense, BM25) returns before fusion."
    )
    rrf_k: int = Field(
        5, ge=1, description="Reciprocal-rank-fusion constant (5 was best of 1-60 on the eval set)."
    )
    abstain_threshold: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="Probability under which the offline answer says the articles don't cover it. Default: the "
        "threshold fitted with the answer selector (assistant/selector.json, `assistant eval --fit`).",
    )
    max_question_chars: int = Field(
        2000, ge=10, description="Longer questions are refused with a clear error."
    )

    # --- LLM answerer ------------------------------------------------------
    answerer: Literal["auto", "offline", "llm"] = Field(
        "auto",
        description="offline: no LLM; llm: require one; auto: LLM when a base URL or "
        "OPENAI_API_KEY is set, else offline.",
    )
    llm_base_url: str | None = Field(
        None, description="OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1."
    )
    llm_api_key: str | None = Field(
        None, description="API key; OPENAI_API_KEY is used when this is unset."
    )
    llm_model: str = Field("gpt-4o-mini", description="Model name sent to the server.")
    llm_temperature: float = Field(0.0, ge=0.0, le=2.0, description="Sampling temperature.")
    llm_timeout: float = Field(60.0, gt=0, description="Seconds before one LLM request times out.")
    llm_deadline: float = Field(
        120.0, gt=0, description="Seconds one answer from the LLM may take in all, retries and streaming included "
        "(llm_timeout bounds each wait for data; a server that streams without end, or a word every few seconds, "
        "is stopped here): its connection is closed and the answer falls back as on any LLM failure.",
    )
    llm_max_retries: int = Field(2, ge=0, le=10, description="Retries on 429/5xx/connection errors.")
    llm_max_tokens: int = Field(
        400, ge=16, description="Maximum tokens in the LLM's reply (asked of the server; we cut a reply after 8 "
        "characters per token, and the answer says it was cut, and read no response past 1 KiB per token and "
        "64 KiB more).",
    )
    llm_context_window: int = Field(
        8192, ge=512, description="Model context window in tokens; the prompt is packed to fit."
    )
    llm_fallback_offline: bool = Field(
        True, description="If the LLM fails, answer offline and say so in the answer."
    )
    llm_extractive_backstop: bool = Field(
        True,
        description="When the LLM refuses or none of its sentences survives verification, but the offline "
        "answerer finds sentences that clear its calibrated threshold on the same evidence, answer with those "
        "quoted sentences and say so in the answer's notes (small models refuse answerable questions often).",
    )
    llm_max_sentences: int = Field(
        10, ge=1, le=200, description="Numbered sentences shown to the LLM as its sources (the ones closest to "
        "the question; small models answer better and faster from fewer).",
    )
    llm_attribute_uncited: bool = Field(
        True,
        description="When the LLM cites nothing for a sentence, let the verifier look for a source that "
        "supports it (every check passes) and cite that; off: such sentences are dropped.",
    )
    keep_unsupported: bool = Field(
        False, description="Keep LLM sentences the verifier could not support (marked)."
    )

    # --- web page ------------------------------------------------------------
    host: str = Field("127.0.0.1", description="Address the chat page binds to.")
    port: int = Field(7860, ge=1, le=65535, description="Port of the chat page.")
    auth_username: str | None = Field(None, description="Username for the page (needed off loopback).")
    auth_password: str | None = Field(None, description="Password for the page.")
    max_upload_bytes: int = Field(2_000_000, ge=1, description="Largest article upload accepted.")
    max_upload_files: int = Field(
        20, ge=1, description="Most articles one upload on the page may add; the others are refused with a message."
    )
    max_upload_total_bytes: int = Field(
        10_000_000, ge=1, description="Most bytes one upload on the page may add (all its files together)."
    )
    max_uploads_per_minute: int = Field(
        60, ge=1, description="Most articles the page accepts in a minute, from all visitors together (each one "
        "means a sync); beyond it visitors are asked to try again in a minute."
    )
    page_concurrency: int = Field(
        4, ge=1, le=64, description="Questions the page answers at the same time; others wait in its queue."
    )
    page_queue_size: int = Field(
        100, ge=1, description="Most requests waiting in the page's queue; beyond it a visitor is told the page is "
        "busy and to try again."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_unknown_variables(cls, data: Any) -> Any:
        """A misspelled ASSISTANT_* variable is an error, not silently ignored."""
        for key in sorted(os.environ):
            if not key.upper().startswith(ENV_PREFIX) or key[len(ENV_PREFIX):].lower() in cls.model_fields:
                continue
            valid = [ENV_PREFIX + name.upper() for name in cls.model_fields]
            close = difflib.get_close_matches(key.upper(), valid, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "the settings are listed in the README"
            raise ValueError(f"{key} is set but is not a setting ({hint}). Fix its name or unset it.")
        return data

    @classmethod
    def load(cls, base: Settings | None = None, **values: Any) -> Settings:
        """Settings from the environment (or base) with overrides, every problem as a ConfigError that
        names the variable and says what to do."""
        from pydantic import ValidationError

        from .errors import ConfigError

        try:
            if base is None:
                return cls(**values)
            merged = base.model_copy(update=values) if values else base
            return cls.model_validate(merged.model_dump()) if values else merged
        except ValidationError as exc:
            raise ConfigError(describe_errors(exc, values)) from None

    @field_validator("docs_dir", "index_dir", mode="before")
    @classmethod
    def _a_path(cls, value: Any) -> Any:
        """A folder is a non-empty path: ASSISTANT_DOCS_DIR= would otherwise mean the current folder."""
        if value is None or isinstance(value, Path):
            return value
        if not isinstance(value, (str, os.PathLike)):
            raise ValueError(f"must be a folder path (text or pathlib.Path), not {type(value).__name__}")
        if not str(os.fspath(value)).strip():
            raise ValueError("is empty (that would mean the current folder); give the folder's path")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens:
            raise ValueError("chunk_overlap_tokens must be smaller than chunk_tokens")
        if self.llm_base_url:
            from urllib.parse import urlsplit

            from .redact import redact, redact_url

            shown = redact_url(self.llm_base_url)  # errors are printed: never its password or key
            try:
                parts = urlsplit(self.llm_base_url)
                parts.port  # noqa: B018  (raises on a bad port)
            except ValueError as exc:
                raise ValueError(f"llm_base_url {shown!r} is not a valid URL ({redact(str(exc), self.llm_base_url)}); "
                                 "use e.g. http://127.0.0.1:8080/v1") from None
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"llm_base_url {shown!r} is not an http(s) URL with a host; "
                                 "use e.g. http://127.0.0.1:8080/v1")
        return self

    # ------------------------------------------------------------------------
    def resolved_index_dir(self) -> Path:
        if self.index_dir is not None:
            return Path(self.index_dir)
        docs = Path(self.docs_dir).resolve()
        tag = hashlib.sha256(str(docs).encode()).hexdigest()[:10]
        name = docs.name if len(os.fsencode(docs.name)) <= 200 else os.fsencode(docs.name)[:200].decode(errors="ignore")
        return _default_cache() / f"{name}-{tag}"  # a folder name near the 255-byte limit still gets an index

    def index_fingerprint(self) -> str:
        """Hash of every setting that shapes the stored vectors and chunk spans."""
        shape = {
            "embed_model": self.embed_model,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap_tokens": self.chunk_overlap_tokens,
            "chunker": CHUNKER_VERSION,
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:12]

    def namespace(self) -> str:
        """What keeps this folder's collections apart from other folders' in the same Chroma."""
        if self.chroma_namespace:
            return self.chroma_namespace
        return hashlib.sha256(str(Path(self.docs_dir).resolve()).encode()).hexdigest()[:10]

    def collection_name(self) -> str:
        return f"articles_{self.index_fingerprint()}_{self.namespace()}"

    def sentence_collection_name(self) -> str:
        """The collection of every article sentence with its own vector (same fingerprint as the chunks)."""
        return f"sentences_{self.index_fingerprint()}_{self.namespace()}"

    def llm_key(self) -> str | None:
        return self.llm_api_key or os.environ.get("OPENAI_API_KEY") or None

    def use_llm(self) -> bool:
        if self.answerer == "offline":
            return False
        if self.answerer == "llm":
            return True
        return bool(self.llm_base_url or self.llm_key())


def describe_errors(exc: Any, overrides: dict[str, Any]) -> str:
    """A pydantic ValidationError as sentences a user can act on: which variable, what value, what is wrong."""
    lines = []
    for err in exc.errors():
        loc = [str(x) for x in err.get("loc", ()) if x != "__root__"]
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if not loc:
            lines.append(msg)
            continue
        field = loc[0]
        env = ENV_PREFIX + field.upper()
        if field in overrides:
            where = f"{field}={overrides[field]!r}"
        elif env in os.environ:
            where = f"{env}={os.environ[env]!r}"
        else:
            where = field
        lines.append(f"{where} is not valid: {msg}. Fix or unset it.")
    from .redact import redact

    urls = [v for v in (*overrides.values(), *os.environ.values()) if isinstance(v, str) and "://" in v]
    return redact(" ".join(lines) or str(exc), *urls)  # a URL's password or key is never printed
