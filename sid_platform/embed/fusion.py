"""Several views of an item (CLIP, T5, collaborative) made into one vector by weighted concatenation.

Each part is L2-normalized per row first, so a part's weight, not its dimension or scale, sets its share
of a dot product: for fused rows ``x, y`` with parts ``x_k, y_k``, ``x·y = Σ w_k² cos(x_k, y_k)``. The
result is not renormalized; a row with every part present has norm ``sqrt(Σ w_k²)``.
"""

from __future__ import annotations

import numpy as np


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """float32 rows of unit L2 norm; an all-zero row (an item with nothing to go on) stays zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


def fuse(parts: list[np.ndarray], weights: list[float] | None = None) -> np.ndarray:
    """``[n, Σ d_k]`` float32: each ``[n, d_k]`` part row-normalized, times its weight (default 1), side by side."""
    if not parts:
        raise ValueError("fuse needs at least one part")
    weights = [1.0] * len(parts) if weights is None else list(weights)
    if len(weights) != len(parts):
        raise ValueError(f"fuse got {len(parts)} parts but {len(weights)} weights")
    if any(not np.isfinite(w) or w < 0 for w in weights):
        raise ValueError(f"fuse weights must be finite and non-negative, got {weights}")
    shapes = [np.shape(p) for p in parts]
    if any(len(s) != 2 for s in shapes):
        raise ValueError(f"fuse parts must be 2-d [items, dim] arrays, got shapes {shapes}")
    if len({s[0] for s in shapes}) != 1:
        raise ValueError(f"fuse parts must have one row per item, the same count in each; got shapes {shapes}")
    return np.hstack([normalize_rows(p) * np.float32(w) for p, w in zip(parts, weights, strict=True)])
