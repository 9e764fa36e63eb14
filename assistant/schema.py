"""The objects the assistant hands back: answers, citations, retrieved contexts, sync reports."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Citation(BaseModel):
    """A verbatim passage of one article. ``file_text[start:end] == quote``."""

    source: str = Field(description="Path of the article relative to the documents folder.")
    quote: str = Field(description="Verbatim text from the article.")
    start: int = Field(description="Character offset of the quote's first character.")
    end: int = Field(description="Character offset just past the quote's last character.")
    title: str = Field("", description="Title of the article (its first non-empty line).")
    date: str = Field("", description="The article's date (yyyy-mm-dd) when it states one, else empty.")
    score: float = Field(0.0, description="Retrieval score of the chunk the quote came from.")


class RetrievedContext(BaseModel):
    """One chunk handed to the answerer, with the scores that ranked it."""

    source: str
    title: str
    text: str
    start: int
    end: int
    date: str = Field("", description="The article's date (yyyy-mm-dd) when it states one.")
    score: float = Field(description="Fused (reciprocal-rank) score.")
    dense_score: float | None = Field(None, description="Cosine similarity, if dense found it.")
    bm25_score: float | None = Field(None, description="BM25 score, if BM25 found it.")
    chunk_id: str = ""


class SentenceCheck(BaseModel):
    """How the verifier judged one sentence of an LLM answer."""

    text: str
    markers: list[int] = Field(default_factory=list, description="The answer's citations it ends with (1-based).")
    model_markers: list[int] = Field(default_factory=list, description="The sources the model cited for it.")
    supported: bool
    repaired: bool = Field(False, description="Re-cited: the model's source did not support it, another did.")
    reason: str = ""


class Answer(BaseModel):
    """An answer whose every sentence ends in ``[n]`` markers; ``[n]`` is ``citations[n-1]``."""

    question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    abstained: bool = False
    conflict: bool = Field(False, description="True when the articles give different values.")
    answerer: str = Field(
        "offline",
        description="'offline', 'llm:<model>', or 'llm:<model>+extractive' when the LLM gave nothing the sources "
        "support and the offline answerer's quoted sentences answer instead.",
    )
    standalone_question: str | None = Field(
        None, description="The follow-up question rewritten with the chat history, when it was."
    )
    confidence: float = Field(0.0, description="Evidence score used for abstention (0..1).")
    contexts: list[RetrievedContext] = Field(default_factory=list)
    sentences: list[SentenceCheck] = Field(
        default_factory=list, description="Per-sentence verification (LLM answers)."
    )
    notes: list[str] = Field(default_factory=list, description="Warnings, e.g. a fallback.")
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage.")


class SyncReport(BaseModel):
    """What one sync of the documents folder did."""

    added: int = 0
    updated: int = 0
    removed: int = 0
    renamed: int = 0
    unchanged: int = 0
    skipped: list[str] = Field(default_factory=list, description="Files skipped, with reasons.")
    chunks_embedded: int = 0
    chunks_reused: int = 0
    chunks_total: int = 0
    sentences_embedded: int = Field(0, description="Sentences whose vectors were computed by this sync.")
    sentences_reused: int = Field(0, description="Sentences whose stored vectors were reused (same text).")
    files_total: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        from .text import plural

        return (
            f"{plural(self.files_total, 'article')}, {plural(self.chunks_total, 'chunk')}: "
            f"{self.added} added, {self.updated} updated, {self.renamed} renamed, "
            f"{self.removed} removed, {self.unchanged} unchanged; "
            f"{plural(self.chunks_embedded, 'chunk')} embedded, {self.chunks_reused} reused; "
            f"{plural(self.sentences_embedded, 'sentence')} embedded, {self.sentences_reused} reused "
            f"({self.seconds:.2f}s)"
        )
