"""Item sequences as tensors: padding, length-bucketed batching and history exclusion, in one place.

Every model reads a user's history the same way: the last ``max_len`` item indices, left-padded, so the
last column is the most recent item. SASRec pads with 0 (its tokens are item index + 1); the router pads
with -1 (its tokens are item indices). Both call ``pad_left`` with their own padding value.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pad_left(sequences: Sequence[np.ndarray], length: int, pad: int = -1) -> np.ndarray:
    """[len(sequences), length]: the last ``length`` entries of each sequence, left-padded with ``pad``."""
    out = np.full((len(sequences), length), pad, dtype=np.int64)
    for row, seq in enumerate(sequences):
        tail = np.asarray(seq)[-length:] if length > 0 else np.asarray(seq)[:0]
        if len(tail):
            out[row, -len(tail) :] = tail
    return out


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Shuffled batches of sequences of similar length, so little compute goes to padding.

    Amazon sequences are short (median 6) and padding to ``max_len`` would multiply the cost of every
    layer, dropout included, several times over. Shuffle, sort within windows of 50 batches, cut into
    batches, shuffle the batches: random enough for SGD, dense enough for the CPU.
    """
    order = rng.permutation(len(lengths))
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = order[start : start + window]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[b : b + batch_size] for b in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def exclude_seen(ranked: np.ndarray, histories: Sequence[np.ndarray], k: int) -> np.ndarray:
    """Drop history items from ranked lists and keep the first ``k`` (-1 padding)."""
    out = np.full((len(ranked), k), -1, dtype=np.int64)
    for row, (items, seen) in enumerate(zip(ranked, histories, strict=True)):
        kept = items[(items >= 0) & ~np.isin(items, seen)][:k]
        out[row, : len(kept)] = kept
    return out


def ranking_depth(k: int, histories: Sequence[np.ndarray], exclude_history: bool) -> int:
    """How deep to rank so that ``k`` items remain after dropping seen ones (``exclude_seen``)."""
    return k + (max((len(h) for h in histories), default=0) if exclude_history else 0)
