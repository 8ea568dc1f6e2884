"""Item vectors from co-occurrence in the training sequences: Semantic IDs for a catalog with no text.

Items a user touched within ``window`` steps of each other co-occur, weighted ``1/distance``. The counts
become positive pointwise mutual information with the context distribution smoothed (``α = 0.75``, Levy,
Goldberg & Dagan 2015, so rare items do not get inflated PMI), a truncated SVD keeps ``dim`` factors, and
item vectors are ``U·sqrt(S)`` normalized per row. Only training interactions go in, so validation and
test targets leak nothing.

An item with no positive association in training (never seen, or seen only alone) gets the zero vector;
downstream code should treat such items as cold.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

from sid_platform.embed.fusion import normalize_rows

CONTEXT_SMOOTHING = 0.75


def cooccurrence(train_sequences: Sequence[np.ndarray], n_items: int, window: int = 3) -> sp.csr_matrix:
    """Symmetric ``[n_items, n_items]`` counts of pairs at most ``window`` apart, each weighted ``1/distance``."""
    if window < 1:
        raise ValueError(f"window must be at least 1, got {window}")
    sequences = [np.asarray(s, dtype=np.int64) for s in train_sequences if len(s) >= 2]
    if not sequences:
        return sp.csr_matrix((n_items, n_items), dtype=np.float64)
    flat = np.concatenate(sequences)
    if flat.min() < 0 or flat.max() >= n_items:
        raise ValueError(f"item indices must lie in 0..{n_items - 1}, found {flat.min()}..{flat.max()}")
    owner = np.repeat(np.arange(len(sequences)), [len(s) for s in sequences])
    rows, cols, weights = [], [], []
    for distance in range(1, window + 1):
        same = owner[:-distance] == owner[distance:]
        left, right = flat[:-distance][same], flat[distance:][same]
        keep = left != right  # an item next to itself says nothing about its neighbours
        rows.append(left[keep])
        cols.append(right[keep])
        weights.append(np.full(int(keep.sum()), 1.0 / distance))
    r, c, w = np.concatenate(rows), np.concatenate(cols), np.concatenate(weights)
    counts = sp.coo_matrix((w, (r, c)), shape=(n_items, n_items)).tocsr()
    return (counts + counts.T).tocsr()


def ppmi(counts: sp.csr_matrix, smoothing: float = CONTEXT_SMOOTHING) -> sp.csr_matrix:
    """``max(0, log p(i, j) / (p(i) p_α(j)))`` on the non-zero counts; the rest stays zero."""
    coo = counts.tocoo()
    row_mass = np.asarray(counts.sum(axis=1)).ravel()
    context = np.asarray(counts.sum(axis=0)).ravel() ** smoothing
    pmi = np.log(coo.data * context.sum() / (row_mass[coo.row] * context[coo.col]))
    keep = pmi > 0
    return sp.csr_matrix((pmi[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape)


def collaborative_item_vectors(
    train_sequences: Sequence[np.ndarray], n_items: int, dim: int = 64, window: int = 3, seed: int = 0
) -> np.ndarray:
    """``[n_items, dim]`` float32 unit rows (zero rows for items with no association), deterministic per ``seed``."""
    if not 0 < dim < n_items:
        raise ValueError(f"dim must be between 1 and n_items - 1 = {n_items - 1}, got {dim}")
    matrix = ppmi(cooccurrence(train_sequences, n_items, window))
    if matrix.nnz == 0:
        return np.zeros((n_items, dim), dtype=np.float32)
    start = np.random.default_rng(seed).uniform(-1.0, 1.0, size=n_items)
    u, s, _ = svds(matrix, k=dim, v0=start)  # ARPACK from a fixed start vector: the same run gives the same vectors
    order = np.argsort(-s)  # svds returns ascending singular values; keep the strongest factor first
    return normalize_rows(u[:, order] * np.sqrt(s[order]))
