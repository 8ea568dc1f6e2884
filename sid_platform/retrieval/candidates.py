"""The hybrid candidate set (prefix channel ∪ ANN channel), what each channel covers, and the base ranking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import candidates_per_user, coverage
from sid_platform.retrieval.beam_search import constrained_beam_search
from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie


def prefix_channel(trie: SidTrie, prefixes: np.ndarray, depth: int) -> list[np.ndarray]:
    """Per user, every item under its top prefixes (``prefixes``: [users, P] nodes at ``depth``)."""
    return [trie.items_under(depth, row) for row in prefixes]


def val_at_p(router: SemanticRouter, trie: SidTrie, cases: EvalCases) -> float:
    """Val@P: share of users whose target's prefix (at the prefix channel's depth) is among their top P.

    P and the depth are the router's ``n_prefixes`` and ``prefix_depth``: this is how much of the target the
    prefix channel can reach, measured on prefixes alone (the router's selection figure for that channel).
    """
    if not len(cases):
        return 0.0
    cfg = router.cfg
    states = router.user_states(cases.histories)
    beams = constrained_beam_search(router, states, trie, 1, cfg.prefix_depth, cfg.n_prefixes)
    target_prefix = trie.node_of_item[cfg.prefix_depth][cases.targets]
    return float(np.mean((beams.prefixes == target_prefix[:, None]).any(1)))


def hybrid_candidates(*channels: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per user, the distinct items of all channels (-1 padding dropped)."""
    out = []
    for parts in zip(*channels, strict=True):
        items = np.unique(np.concatenate([np.asarray(p, dtype=np.int64).ravel() for p in parts]))
        out.append(items[items >= 0])
    return out


@dataclass(frozen=True)
class ChannelReport:
    """Coverage (target among the candidates) and mean candidates per user, per channel."""

    coverage_prefix: float
    coverage_ann: float
    coverage_union: float
    candidates_prefix: float
    candidates_ann: float
    candidates_union: float

    @classmethod
    def measure(
        cls,
        prefix: Sequence[np.ndarray],
        ann: Sequence[np.ndarray],
        union: Sequence[np.ndarray],
        targets: np.ndarray,
    ) -> ChannelReport:
        ann = [a[a >= 0] for a in ann]
        return cls(
            coverage(prefix, targets),
            coverage(ann, targets),
            coverage(union, targets),
            candidates_per_user(prefix),
            candidates_per_user(ann),
            candidates_per_user(union),
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def rank_candidates(
    candidates: Sequence[np.ndarray], queries: torch.Tensor, keys: torch.Tensor, k: int
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each user's candidates by cosine (query · key; both normalized), best first.

    Returns the top ``k`` per user as [users, k] (-1 padding) and, per user, the base scores of all its
    candidates in the order given (the reranker starts from these).
    """
    ranked = np.full((len(candidates), k), -1, dtype=np.int64)
    base_scores = []
    for row, items in enumerate(candidates):
        items_t = torch.from_numpy(np.asarray(items, dtype=np.int64))
        scores = keys[items_t] @ queries[row]
        base_scores.append(scores.numpy())
        top = scores.topk(min(k, len(items_t))).indices
        ranked[row, : len(top)] = items_t[top].numpy()
    return ranked, base_scores


def top_by_score(candidates: Sequence[np.ndarray], scores: Sequence[np.ndarray], k: int) -> np.ndarray:
    """[users, k] each user's candidates by the given scores (aligned with them), best first; -1 padding.

    Ties go to the lower item index (candidates are sorted), so the order never depends on the batch.
    """
    ranked = np.full((len(candidates), k), -1, dtype=np.int64)
    for row, (items, score) in enumerate(zip(candidates, scores, strict=True)):
        order = np.argsort(-np.asarray(score), kind="stable")[:k]
        ranked[row, : len(order)] = np.asarray(items)[order]
    return ranked
