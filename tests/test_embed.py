"""The embedder: length-budgeted batches that give the same vectors as one text at a time."""

from __future__ import annotations

import numpy as np
import pytest

from assistant.embed import OnnxEmbedder

TEXTS = [
    "Kursk.",
    "Ukrainian troops crossed into the Kursk region in August 2024.",
    "North Korea sent about 12,000 soldiers to help Russia push Ukrainian forces out of the Kursk region, "
    "according to South Korean and Ukrainian intelligence, and some of them were reported killed or wounded.",
    "",
    "Sudzha",
    "The salient was about 115 square miles at its largest, officials said in the report on the raid.",
] * 3


@pytest.fixture(scope="module")
def embedder() -> OnnxEmbedder:
    return OnnxEmbedder(batch_size=4, batch_tokens=256)


def test_batches_cover_every_text_once_within_both_budgets() -> None:
    e = OnnxEmbedder(batch_size=3, batch_tokens=100)
    lengths = [5, 40, 12, 90, 7, 30, 30, 120, 2, 25]
    batches = e.batches(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) <= 3
        widest = max(lengths[i] for i in b)
        assert len(b) == 1 or len(b) * widest <= 100  # a text longer than the budget goes alone
    order = [lengths[i] for b in batches for i in b]
    assert order == sorted(order)  # similar lengths share a batch: little padding


def test_batched_vectors_equal_one_text_at_a_time(embedder: OnnxEmbedder) -> None:
    together = embedder.embed(TEXTS)
    alone = np.stack([embedder.embed_one(t) for t in TEXTS])
    assert together.shape == (len(TEXTS), embedder.dimension)
    assert np.allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    assert float((together * alone).sum(axis=1).min()) > 0.9999
    assert len(embedder.batches([len(p) for p in embedder._encode(TEXTS)])) > 1  # really several batches


def test_token_count_leaves_out_padding(embedder: OnnxEmbedder) -> None:
    each = [embedder.count_tokens([t]) for t in TEXTS[:6]]
    assert embedder.count_tokens(TEXTS[:6]) == sum(each)
    assert each[3] == 2  # an empty text is [CLS] [SEP]
    assert embedder.count_tokens(["word " * 1000]) == embedder.spec.max_length  # truncated like the model


def test_no_texts_give_an_empty_matrix(embedder: OnnxEmbedder) -> None:
    assert embedder.embed([]).shape == (0, embedder.dimension)
