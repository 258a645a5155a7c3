"""Co-occurrence vectors: tokens used in the same contexts end up close, special tokens are never counted."""

from __future__ import annotations

import numpy as np
import pytest

from naba.training.embeddings import cooccurrence_counts, cooccurrence_vectors, ppmi


def test_counts_are_symmetric_weighted_by_distance_and_skip_special_tokens() -> None:
    counts = cooccurrence_counts([[0, 5, 6, 7]], vocab_size=8, window=2, skip={0}).toarray()
    assert counts[5, 6] == counts[6, 5] == 1.0
    assert counts[5, 7] == counts[7, 5] == 0.5
    assert counts[0].sum() == counts[:, 0].sum() == 0  # the special token is invisible
    assert np.allclose(counts, counts.T)


def test_ppmi_keeps_only_positive_associations() -> None:
    counts = cooccurrence_counts([[1, 2, 1, 2, 3, 4, 3, 4]] * 5, vocab_size=5, window=1)
    matrix = ppmi(counts).toarray()
    assert (matrix >= 0).all()
    assert matrix[1, 2] > 0 and matrix[3, 4] > 0


def test_tokens_with_the_same_contexts_get_similar_vectors() -> None:
    rng = np.random.default_rng(0)
    # Tokens 10 and 11 are interchangeable (both follow 2 and precede 3); 20 lives among 4 and 5.
    blocks = [[2, int(rng.choice([10, 11])), 3, 4, 20, 5] * 4 for _ in range(200)]
    vectors, seen = cooccurrence_vectors(blocks, vocab_size=30, dim=4, window=1)
    assert seen[[2, 3, 10, 11, 20]].all() and not seen[29]
    assert np.allclose(np.linalg.norm(vectors[seen], axis=1), 1.0) and not vectors[29].any()
    assert vectors[10] @ vectors[11] > 0.9
    assert vectors[10] @ vectors[20] < vectors[10] @ vectors[11] - 0.3


def test_vectors_are_deterministic() -> None:
    blocks = [[1, 2, 3, 4, 5, 6, 7, 8, 2, 4, 6, 8]] * 10
    first, _ = cooccurrence_vectors(blocks, vocab_size=10, dim=3)
    second, _ = cooccurrence_vectors(blocks, vocab_size=10, dim=3)
    assert first == pytest.approx(second)
