"""Run the metrics for several models on the same evaluation cases, under one protocol."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import DEFAULT_KS, rank_with_scorer, ranking_metrics
from sid_platform.progress import LogLine, Progress

Scorer = Callable[[Sequence[np.ndarray]], np.ndarray]  # histories -> [users, n_items] scores


@dataclass(frozen=True)
class Protocol:
    """What a figure means: leave-one-out targets ranked against the full catalog."""

    exclude_history: bool = False
    ks: tuple[int, ...] = DEFAULT_KS
    split: str = "test"
    ranking: str = "full catalog"
    targets: str = "leave-one-out: last interaction test, the one before validation"

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class EvaluationResult:
    protocol: Protocol
    users: int
    n_items: int
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "protocol": self.protocol.describe(),
            "users": self.users,
            "n_items": self.n_items,
            "metrics": self.metrics,
        }


def evaluate_scorers(
    scorers: dict[str, Scorer],
    cases: EvalCases,
    n_items: int,
    protocol: Protocol,
    on_progress: LogLine | None = None,
) -> EvaluationResult:
    """Every scorer ranks the whole catalog for every case; the same metric code measures them all.

    ``on_progress`` receives each scorer's progress lines (users scored, time left).
    """
    result = EvaluationResult(protocol=protocol, users=len(cases), n_items=n_items)
    for name, scorer in scorers.items():
        progress = Progress(f"evaluation ({protocol.split} users): {name}", len(cases), on_progress, unit="users")
        ranked = rank_with_scorer(
            scorer, cases.histories, max(protocol.ks), protocol.exclude_history, on_users=progress.update
        )
        result.metrics[name] = ranking_metrics(ranked, cases.targets, protocol.ks)
    return result
