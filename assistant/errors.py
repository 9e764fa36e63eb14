"""Errors raised by the assistant. Every message says what happened and what to do."""

from __future__ import annotations


class AssistantError(Exception):
    """Base class of every error the assistant raises on purpose."""


class QuestionError(AssistantError, ValueError):
    """The question cannot be answered as given (empty, too long, ...)."""


class DocumentsError(AssistantError):
    """The documents folder is missing, empty or unreadable."""


class IndexUnavailableError(AssistantError):
    """The on-disk index or the Chroma server cannot be used."""


class ModelError(AssistantError):
    """The embedding model files are missing or do not match their pinned checksum."""


class LLMError(AssistantError):
    """The configured LLM cannot be reached or gave an unusable reply."""


class ConfigError(AssistantError):
    """The settings are inconsistent (e.g. LLM requested but no key or URL)."""
