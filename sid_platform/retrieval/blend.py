"""The router's candidates ranked by a blend of two models' logits: the router's fused score and SASRec's.

Why: the two models are trained on the same sequences but see items differently (the router through their
Semantic-ID codes, content and id vector; SASRec through an id vector alone), and they miss different users'
targets: on Beauty's validation users the blend reached Recall@10 0.102 against SASRec's 0.093 and the router's
0.087 (``benchmarks/results/main_job_default_reevaluated_blend.json``).

Both models are trained with a softmax over the catalog, so ``logit − logsumexp`` is each one's log-probability;
the logsumexp is one number per user, so a weighted sum of logits ranks a user's items exactly as the weighted sum
of log-probabilities does, and only the candidates' logits are needed: the cost grows with the candidates, not with
the catalog. The weight is chosen on validation users only (``choose_blend``); the candidate set is the router's,
so the blend only reorders what the router's channels retrieved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sid_platform.evaluation.metrics import CHOSEN_ON, ranking_metrics
from sid_platform.retrieval.candidates import top_by_score
from sid_platform.retrieval.pipeline import Retrieval
from sid_platform.sequences import exclude_seen, ranking_depth

BLEND_WEIGHTS = tuple(i / 10 for i in range(11))  # SASRec's weight; 0 = the router's fused ranking, 1 = SASRec's


@dataclass(frozen=True)
class ScoreBlend:
    """What the ``score_blend`` asset stores: SASRec's weight in ``w · SASRec logit + (1 − w) · router logit``,
    and the validation figures of every weight tried (what the choice rests on)."""

    sasrec_weight: float
    weights: tuple[float, ...]
    valid_recall_at_10: tuple[float, ...]
    valid_ndcg_at_10: tuple[float, ...]
    valid_users: int

    def __post_init__(self) -> None:
        if not 0.0 <= self.sasrec_weight <= 1.0:
            raise ValueError(f"sasrec_weight must lie in [0, 1], got {self.sasrec_weight}")


def candidate_logits(
    user_vectors: np.ndarray, item_vectors: np.ndarray, rows: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Per user, a dot-product model's logits of the given item rows: ``item_vectors[rows[u]] @ user_vectors[u]``.

    A row of -1 (an item the model does not know, e.g. a new item it was not extended with) gets the mean logit of
    the user's known rows: no evidence either way, so the other model's score decides.
    """
    logits = []
    for user, items in zip(user_vectors, rows, strict=True):
        items = np.asarray(items, dtype=np.int64)
        known = items >= 0
        row = np.zeros(len(items), dtype=np.float32)
        row[known] = item_vectors[items[known]] @ user
        if not known.all():
            row[~known] = row[known].mean() if known.any() else 0.0
        logits.append(row)
    return logits


def blended_scores(
    found: Retrieval, sasrec_logits: Sequence[np.ndarray], weight: float, router_scale: float
) -> list[np.ndarray]:
    """Per user, ``weight · SASRec logit + (1 − weight) · router logit`` of each candidate (the router's logit is
    its fused score times ``router_scale``, the model's ``score_scale``)."""
    w, r = np.float32(weight), np.float32((1.0 - weight) * router_scale)
    return [
        (w * np.asarray(s, np.float32) + r * np.asarray(f, np.float32)).astype(np.float32)
        for s, f in zip(sasrec_logits, found.fused_scores, strict=True)
    ]


def blend_ranking(
    found: Retrieval, scores: Sequence[np.ndarray], k: int, histories: Sequence[np.ndarray] | None = None
) -> np.ndarray:
    """[users, k] each user's candidates by their ``blended_scores``; given ``histories``, seen items are dropped."""
    if histories is None:
        return top_by_score(found.candidates, scores, k)
    return exclude_seen(top_by_score(found.candidates, scores, ranking_depth(k, histories, True)), histories, k)


def choose_blend(
    found: Retrieval,
    sasrec_logits: Sequence[np.ndarray],
    router_scale: float,
    targets: np.ndarray,
    histories: Sequence[np.ndarray] | None = None,
    weights: Sequence[float] = BLEND_WEIGHTS,
) -> ScoreBlend:
    """The weight with the best ``CHOSEN_ON`` figures on these (validation) users; ties to the smaller weight.

    Given ``histories``, seen items are dropped before the figures are taken (the history-masked protocol)."""
    figures = [
        ranking_metrics(
            blend_ranking(found, blended_scores(found, sasrec_logits, w, router_scale), 10, histories), targets, (10,)
        )
        for w in weights
    ]
    keys = [tuple(f[m] for m in CHOSEN_ON) for f in figures]
    best = max(range(len(weights)), key=lambda i: (keys[i], -weights[i]))
    return ScoreBlend(
        sasrec_weight=float(weights[best]),
        weights=tuple(float(w) for w in weights),
        valid_recall_at_10=tuple(float(f["recall@10"]) for f in figures),
        valid_ndcg_at_10=tuple(float(f["ndcg@10"]) for f in figures),
        valid_users=len(targets),
    )
