"""The DPO reranker trained and diagnosed in one pass: the model to serve plus the five diagnostics.

Preference pairs come from the validation targets (the interaction before each user's test item), never
from the test targets. A share of those users is held out, so validation preference accuracy and
validation ranking gains are measured on users the reranker did not train on; the test users measure the
same gains on the next interaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch

from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import candidates_per_user, coverage, ranking_metrics
from sid_platform.reranking.dpo import (
    Reranker,
    RerankerConfig,
    preference_accuracy,
    preference_pairs,
    rerank,
    train_reranker,
)
from sid_platform.retrieval.pipeline import Retrieval
from sid_platform.sequences import exclude_seen, ranking_depth
from sid_platform.training import TrainingLog

KS = (5, 10)


def candidate_pools(found: Retrieval, pool_size: int) -> np.ndarray:
    """[users, pool_size] each user's top candidates by base score (-1 padding)."""
    pools = np.full((len(found.candidates), pool_size), -1, dtype=np.int64)
    for row, (items, base) in enumerate(zip(found.candidates, found.base_scores, strict=True)):
        top = np.asarray(items)[np.argsort(-np.asarray(base), kind="stable")[:pool_size]]
        pools[row, : len(top)] = top
    return pools


def reranked_metrics(
    model: Reranker | None, found: Retrieval, keys: torch.Tensor, cases: EvalCases, rows: np.ndarray,
    exclude_history: bool,
) -> tuple[dict[str, float], list[np.ndarray]]:  # fmt: skip
    """Ranking metrics of ``rows`` (users) after reranking (``model=None``: the base ranking), and their candidates."""
    candidates = [found.candidates[r] for r in rows]
    if model is None:
        return ranking_metrics(found.hybrid_cosine[rows], cases.targets[rows], KS), candidates
    histories = [cases.histories[r] for r in rows]
    base = [found.base_scores[r] for r in rows]
    depth = ranking_depth(max(KS), histories, exclude_history)
    top, order = rerank(model, found.queries[torch.from_numpy(rows)], keys, candidates, base, depth)
    if exclude_history:
        top = exclude_seen(top, histories, max(KS))
    return ranking_metrics(top[:, : max(KS)], cases.targets[rows], KS), order


@dataclass
class StudyResult:
    model: Reranker
    log: TrainingLog
    table: list[dict]  # one row per (variant, users): R@10, N@10, coverage, candidates, preference accuracy
    curves: dict[str, list[dict]]  # variant → per-epoch train/valid accuracy
    holdout_users: int
    train_users: int


def run_study(
    found_valid: Retrieval,
    found_test: Retrieval,
    keys: torch.Tensor,
    valid: EvalCases,
    test: EvalCases,
    cfg: RerankerConfig,
    exclude_history: bool = False,
) -> StudyResult:
    """Train bounded/hard (the model), unbounded/hard and bounded/random on the same pairs budget and steps."""
    rng = np.random.default_rng(cfg.seed)
    n_items = keys.shape[0]
    holdout = rng.random(len(valid)) < cfg.holdout_share
    pools = candidate_pools(found_valid, cfg.pool_size)
    variants = {
        "bounded, hard negatives": cfg,
        "unbounded, hard negatives": replace(cfg, bounded=False),
        "bounded, random negatives": replace(cfg, negatives="random"),
    }
    hard_pairs = preference_pairs(pools, valid.targets, n_items, "hard", cfg.negatives_per_user, rng)
    random_pairs = preference_pairs(pools, valid.targets, n_items, "random", cfg.negatives_per_user, rng)
    # Validation accuracy is always judged on hard pairs of held-out users: the pairs the reranker must order.
    valid_hard = hard_pairs.subset(holdout[hard_pairs.user])
    queries = found_valid.queries
    all_test = np.arange(len(test))
    held = np.flatnonzero(holdout)
    table, curves, main = [], {}, None
    base_rows = {
        "validation (held-out users)": reranked_metrics(None, found_valid, keys, valid, held, exclude_history),
        "test": reranked_metrics(None, found_test, keys, test, all_test, exclude_history),
    }
    for users, (metrics, order) in base_rows.items():
        found, cases, rows = (
            (found_valid, valid, held) if users.startswith("validation") else (found_test, test, all_test)
        )
        table.append(_row("base (cosine)", users, metrics, order, cases.targets[rows], None))
    for name, variant in variants.items():
        pairs = random_pairs if variant.negatives == "random" else hard_pairs
        train = pairs.subset(~holdout[pairs.user])
        model, log = train_reranker(queries, keys, train, valid_hard, variant)
        curves[name] = log.epochs
        accuracy = preference_accuracy(model, queries, keys, valid_hard)
        for users, (found, cases, rows) in {
            "validation (held-out users)": (found_valid, valid, held),
            "test": (found_test, test, all_test),
        }.items():
            metrics, order = reranked_metrics(model, found, keys, cases, rows, exclude_history)
            table.append(_row(name, users, metrics, order, cases.targets[rows], accuracy))
        if main is None:
            main = (model, log)
    assert main is not None
    return StudyResult(main[0], main[1], table, curves, int(holdout.sum()), int((~holdout).sum()))


def _row(
    name: str, users: str, metrics: dict, order: list[np.ndarray], targets: np.ndarray, accuracy: float | None
) -> dict:
    return {
        "variant": name,
        "users": users,
        **{key: metrics[key] for key in ("recall@10", "ndcg@10", "recall@5", "ndcg@5")},
        "coverage": coverage(order, targets),
        "candidates_per_user": candidates_per_user(order),
        "valid_preference_accuracy": accuracy,
    }


def with_deltas(table: list[dict]) -> list[dict]:
    """Each row plus its relative change in R@10 and N@10 against the base row of the same users."""
    base = {row["users"]: row for row in table if row["variant"].startswith("base")}
    out = []
    for row in table:
        ref = base[row["users"]]
        out.append(
            {
                **row,
                "delta_recall@10": (row["recall@10"] / ref["recall@10"] - 1) if ref["recall@10"] else 0.0,
                "delta_ndcg@10": (row["ndcg@10"] / ref["ndcg@10"] - 1) if ref["ndcg@10"] else 0.0,
            }
        )
    return out


def config_dict(cfg: RerankerConfig) -> dict:
    return asdict(cfg)
