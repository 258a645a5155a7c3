"""Token vectors from corpus co-occurrence (positive PMI, truncated SVD), to start a fresh BERT's embeddings.

Masked-LM pretraining on two CPU cores sees a few million tokens in an hour and barely moves a random BERT.
Counting which tokens occur near which, over the whole corpus, takes a minute or two and gives every token a
vector that already places words used alike close together (Levy & Goldberg, 2014: PPMI + SVD is what
word2vec implicitly factorises). `naba pretrain --embedding-init cooccurrence` copies these vectors into the
new model's token embeddings (tied to the MLM output layer) before masked-LM training starts.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import svds

logger = logging.getLogger(__name__)


def cooccurrence_counts(
    blocks: Sequence[Sequence[int]], vocab_size: int, window: int = 4, skip: Collection[int] = ()
) -> sparse.csr_matrix:
    """Symmetric (vocab, vocab) counts of token pairs at most `window` apart, each weighted 1/distance.

    Tokens in `skip` (special tokens) are never counted; pairs never cross a block boundary.
    """
    width = max((len(b) for b in blocks), default=0)
    ids = np.full((len(blocks), width), -1, dtype=np.int64)
    for row, block in enumerate(blocks):
        ids[row, : len(block)] = block
    ids[np.isin(ids, list(skip))] = -1
    counts = sparse.csr_matrix((vocab_size, vocab_size), dtype=np.float64)
    for distance in range(1, min(window, width - 1) + 1):
        left, right = ids[:, :-distance].ravel(), ids[:, distance:].ravel()
        keep = (left >= 0) & (right >= 0)
        left, right = left[keep], right[keep]
        weight = np.full(len(left), 1.0 / distance)
        pairs = sparse.coo_matrix((weight, (left, right)), shape=(vocab_size, vocab_size)).tocsr()
        counts = counts + pairs + pairs.T
    return counts


def ppmi(counts: sparse.csr_matrix, smoothing: float = 0.75) -> sparse.csr_matrix:
    """Positive pointwise mutual information, with context counts raised to `smoothing` (as word2vec does)."""
    counts = counts.tocoo()
    rows = np.asarray(counts.sum(axis=1)).ravel()
    contexts = np.asarray(counts.sum(axis=0)).ravel() ** smoothing
    pmi = np.log(counts.data * contexts.sum() / (rows[counts.row] * contexts[counts.col]) + 1e-12)
    keep = pmi > 0
    shape = counts.shape
    return sparse.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=shape)


def cooccurrence_vectors(
    blocks: Sequence[Sequence[int]],
    vocab_size: int,
    dim: int,
    window: int = 4,
    skip: Collection[int] = (),
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(vocab, dim) unit-length vectors from the truncated SVD of the PPMI matrix, and a mask of the tokens
    that occurred (the others get zero vectors and should keep their random initialisation)."""
    matrix = ppmi(cooccurrence_counts(blocks, vocab_size, window, skip))
    seen = np.asarray(matrix.getnnz(axis=1)).ravel() > 0
    k = min(dim, min(matrix.shape) - 1)
    v0 = np.random.default_rng(seed).standard_normal(min(matrix.shape))  # svds is deterministic given v0
    u, s, _ = svds(matrix, k=k, v0=v0)
    vectors = np.zeros((vocab_size, dim))
    vectors[:, :k] = u * np.sqrt(s)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)
    logger.info("co-occurrence vectors for %d of %d tokens (%d non-zero PPMI cells)", seen.sum(), vocab_size,
                matrix.nnz)  # fmt: skip
    return vectors, seen
