"""Recall@K, NDCG@K, coverage and candidates per user: the only implementation in the project.

Every model hands over a ranked list of item indices per user (generative models produce it
directly; scoring models go through ``top_k_from_scores``), so all models are measured by the same code
on the same protocol: one held-out target per user, ranked against the full catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from sid_platform.policy import POLICY

DEFAULT_KS = POLICY.ks  # the policy's Ks, the default of every ranking_metrics call


# What every choice made on validation users ranks by, in order (the serving ranking, the blend weight).
CHOSEN_ON = ("recall@10", "ndcg@10")


def hit_ranks(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of each user's target in its ranked list, or -1 when it is absent.

    ``ranked`` is [users, K] of item indices (-1 pads lists shorter than K).
    """
    ranked = np.asarray(ranked)
    targets = np.asarray(targets)
    if ranked.ndim != 2 or ranked.shape[0] != targets.shape[0]:
        raise ValueError(
            f"ranked must be [users, K] with one row per target; got {ranked.shape} for {targets.shape[0]} targets"
        )
    hits = ranked == targets[:, None]
    return np.where(hits.any(axis=1), hits.argmax(axis=1), -1)


def recall_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Share of users whose target is in their top ``k`` (with one target, recall = hit rate)."""
    ranks = hit_ranks(ranked[:, :k], targets)
    return float(np.mean(ranks >= 0)) if len(ranks) else 0.0


def ndcg_at_k(ranked: np.ndarray, targets: np.ndarray, k: int) -> float:
    """Mean of 1/log2(rank+2) over users whose target is in the top ``k`` (0 otherwise); ideal DCG is 1."""
    ranks = hit_ranks(ranked[:, :k], targets)
    gains = np.where(ranks >= 0, 1.0 / np.log2(np.maximum(ranks, 0) + 2.0), 0.0)
    return float(np.mean(gains)) if len(ranks) else 0.0


def ranking_metrics(ranked: np.ndarray, targets: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """``{"recall@5": ..., "ndcg@5": ..., ...}`` for every K in ``ks``."""
    if ranked.shape[1] < max(ks):
        raise ValueError(f"ranked lists have {ranked.shape[1]} entries; need at least {max(ks)} for K={max(ks)}")
    out: dict[str, float] = {}
    for k in ks:
        out[f"recall@{k}"] = recall_at_k(ranked, targets, k)
        out[f"ndcg@{k}"] = ndcg_at_k(ranked, targets, k)
    return out


def coverage(candidates: Sequence[np.ndarray], targets: np.ndarray) -> float:
    """Share of users whose target is anywhere in their candidate set (order does not matter)."""
    if not len(targets):
        return 0.0
    return float(np.mean([bool(np.any(np.asarray(c) == t)) for c, t in zip(candidates, targets, strict=True)]))


def candidates_per_user(candidates: Sequence[np.ndarray]) -> float:
    """Mean number of distinct candidates per user."""
    return float(np.mean([_distinct(c) for c in candidates])) if len(candidates) else 0.0


def _distinct(items: np.ndarray) -> int:
    """How many distinct items; a strictly increasing list (a union is built sorted) is counted without sorting."""
    items = np.asarray(items)
    if items.ndim == 1 and (len(items) < 2 or bool(np.all(items[1:] > items[:-1]))):
        return len(items)
    return len(np.unique(items))


def top_k_from_scores(scores: np.ndarray, k: int, histories: Sequence[np.ndarray] | None = None) -> np.ndarray:
    """Indices of the ``k`` highest scores per row, best first.

    With ``histories`` given, items already in a user's history are excluded (scored -inf) first;
    this is the ``exclude_history`` setting of the evaluation and must be the same for all models in a table.
    """
    scores_t = torch.tensor(
        np.asarray(scores), dtype=torch.float32
    )  # a copy: masking must not touch the caller's array
    if histories is not None:
        rows = np.repeat(np.arange(len(histories)), [len(h) for h in histories])
        cols = np.concatenate(histories) if len(histories) else np.zeros(0, dtype=np.int64)
        scores_t[torch.from_numpy(rows), torch.from_numpy(cols.astype(np.int64))] = float("-inf")
    k = min(k, scores_t.shape[1])
    return torch.topk(scores_t, k, dim=1, sorted=True).indices.numpy()


def rank_with_scorer(
    score_batch: Callable[[Sequence[np.ndarray]], np.ndarray],
    histories: Sequence[np.ndarray],
    k: int,
    exclude_history: bool,
    batch_size: int = 1024,
    on_users: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Full-catalog top-``k`` for a model that scores every item, in batches to bound memory.

    ``on_users`` is called after each batch with the number of users ranked so far (progress).
    """
    out = []
    for start in range(0, len(histories), batch_size):
        batch = histories[start : start + batch_size]
        scores = score_batch(batch)
        out.append(top_k_from_scores(scores, k, batch if exclude_history else None))
        if on_users is not None:
            on_users(start + len(batch))
    return np.concatenate(out) if out else np.zeros((0, k), dtype=np.int64)
