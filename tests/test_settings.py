from __future__ import annotations

import pytest
from pydantic import ValidationError

from assistant import Settings


def test_unknown_keys_are_rejected() -> None:
    with pytest.raises(ValidationError):
        Settings(chunk_size=3)  # type: ignore[call-arg]


def test_env_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_TOP_K", "9")
    assert Settings().top_k == 9


def test_every_field_is_described() -> None:
    for name, field in Settings.model_fields.items():
        assert field.description, name


def test_collection_name_changes_with_what_shapes_vectors() -> None:
    base = Settings()
    assert Settings(chunk_tokens=120).collection_name() != base.collection_name()
    assert Settings(chunk_overlap_tokens=10).collection_name() != base.collection_name()
    assert Settings(top_k=3).collection_name() == base.collection_name()


def test_overlap_must_be_smaller_than_chunk() -> None:
    with pytest.raises(ValidationError):
        Settings(chunk_tokens=40, chunk_overlap_tokens=40)


def test_an_assistant_takes_its_settings_first_or_by_name(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from assistant import Assistant

    s = Settings(docs_dir=tmp_path / "docs", index_dir=tmp_path / "index", top_k=4)
    assert Assistant(s).settings.top_k == 4
    assert Assistant(settings=s).settings.top_k == 4
    with pytest.raises(TypeError, match="two Settings"):
        Assistant(s, settings=s)
