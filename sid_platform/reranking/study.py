"""The DPO reranker trained and diagnosed in one pass: the model to serve plus the five diagnostics.

Preference pairs come from the validation targets (the interaction before each user's test item), never
from the test targets. A share of those users is held out, so validation preference accuracy and
validation ranking gains are measured on users the reranker did not train on; the test users measure the
same gains on the next interaction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import candidates_per_user, coverage, ranking_metrics
from sid_platform.evaluation.report import markdown_table
from sid_platform.reranking.dpo import (
    Reranker,
    RerankerCheckpoint,
    RerankerConfig,
    preference_accuracy,
    preference_pairs,
    rerank,
    train_reranker,
)
from sid_platform.retrieval.candidates import ChannelReport
from sid_platform.retrieval.pipeline import Retrieval
from sid_platform.sequences import exclude_seen, ranking_depth
from sid_platform.training import TrainingLog

KS = (5, 10)


@dataclass(frozen=True)
class Name:
    """A row of the study: its label in the table, and the name metric keys carry for it."""

    label: str
    key: str


BASE = Name("base (cosine)", "base")
SERVED = Name("bounded, hard negatives", "bounded_hard_negatives")  # the reranker the study returns
# Every variant trained on the same pairs budget and steps: the changes it makes to the configured reranker.
VARIANTS: dict[Name, dict[str, Any]] = {
    SERVED: {},
    Name("unbounded, hard negatives", "unbounded_hard_negatives"): {"bounded": False},
    Name("bounded, random negatives", "bounded_random_negatives"): {"negatives": "random"},
}
VALIDATION = Name("validation (held-out users)", "valid")
TEST = Name("test", "test")
# The headline figures compare these two rows per user group, e.g. ``test_recall10_dpo``.
FIGURE_ROWS = {BASE: "base", SERVED: "dpo"}


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
    hard_pairs = preference_pairs(pools, valid.targets, n_items, "hard", cfg.negatives_per_user, rng)
    random_pairs = preference_pairs(pools, valid.targets, n_items, "random", cfg.negatives_per_user, rng)
    # Validation accuracy is always judged on hard pairs of held-out users: the pairs the reranker must order.
    valid_hard = hard_pairs.subset(holdout[hard_pairs.user])
    queries = found_valid.queries
    all_test = np.arange(len(test))
    held = np.flatnonzero(holdout)
    table, curves, main = [], {}, None
    groups = {VALIDATION: (found_valid, valid, held), TEST: (found_test, test, all_test)}
    for users, (found, cases, rows) in groups.items():
        metrics, order = reranked_metrics(None, found, keys, cases, rows, exclude_history)
        table.append(_row(BASE.label, users.label, metrics, order, cases.targets[rows], None))
    for name, changes in VARIANTS.items():
        variant = replace(cfg, **changes)
        pairs = random_pairs if variant.negatives == "random" else hard_pairs
        train = pairs.subset(~holdout[pairs.user])
        model, log = train_reranker(queries, keys, train, valid_hard, variant)
        curves[name.label] = log.epochs
        accuracy = preference_accuracy(model, queries, keys, valid_hard)
        for users, (found, cases, rows) in groups.items():
            metrics, order = reranked_metrics(model, found, keys, cases, rows, exclude_history)
            table.append(_row(name.label, users.label, metrics, order, cases.targets[rows], accuracy))
        if name == SERVED:
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


def study_figures(rows: list[dict]) -> dict[str, float]:
    """R@10 and N@10 of the base and the served rows per user group, under metric-safe names."""
    by = {(row["variant"], row["users"]): row for row in rows}
    return {
        f"{users.key}_{metric.replace('@', '')}_{alias}": round(by[(name.label, users.label)][metric], 4)
        for name, alias in FIGURE_ROWS.items()
        for users in (TEST, VALIDATION)
        for metric in ("recall@10", "ndcg@10")
    }


def preference_accuracies(rows: list[dict]) -> dict[str, float]:
    """Each variant's validation preference accuracy (held-out users' hard pairs), keyed by its name."""
    by = {(row["variant"], row["users"]): row for row in rows}
    return {name.key: round(by[(name.label, TEST.label)]["valid_preference_accuracy"], 4) for name in VARIANTS}


def study_table(rows: list[dict]) -> str:
    """The study as a markdown table, deltas against the base row of the same users (``with_deltas`` rows)."""
    headers = ["variant", "users", "R@10", "ΔR@10", "N@10", "ΔN@10", "coverage", "candidates", "valid pref. acc."]
    body = [
        (
            r["variant"],
            r["users"],
            r["recall@10"],
            f"{r['delta_recall@10']:+.1%}",
            r["ndcg@10"],
            f"{r['delta_ndcg@10']:+.1%}",
            r["coverage"],
            round(r["candidates_per_user"], 1),
            "" if r["valid_preference_accuracy"] is None else round(r["valid_preference_accuracy"], 4),
        )
        for r in rows
    ]
    return markdown_table(headers, body)


def study_report(rows: list[dict], utilization: list[float], channels: ChannelReport) -> str:
    """The study table, then what it stands on: codebook utilization and channel coverage on the test users."""
    upstream = markdown_table(
        ["codebook utilization per level", "prefix coverage", "ANN coverage", "union coverage", "candidates"],
        [
            (
                ", ".join(f"{u:.1%}" for u in utilization),
                channels.coverage_prefix,
                channels.coverage_ann,
                channels.coverage_union,
                round(channels.candidates_union, 1),
            )
        ],
    )
    return f"{study_table(rows)}\n\nUpstream (test users):\n\n{upstream}"


def study_checkpoint(
    study: StudyResult,
    rows: list[dict],
    dim: int,
    tokenizer_version: str,
    utilization: list[float],
    channels: ChannelReport,
) -> RerankerCheckpoint:
    """The served reranker's checkpoint (``dim``: its query/item vectors) with the study that chose it."""
    return replace(
        RerankerCheckpoint.of(study.model, dim, study.log),
        tokenizer_version=tokenizer_version,
        study=rows,
        curves=study.curves,
        users={"train": study.train_users, "held_out": study.holdout_users},
        upstream={"utilization_per_level": utilization, "channels": channels.as_dict()},
    )
