"""The candidate curve: how much of the target each channel reaches, at what size, and what the served score loses
by ranking the candidates instead of the whole catalog.

A candidate stage earns its name when a small set (a few percent of the catalog) keeps the ranking the same
scorer would give over every item. For a sample of users this scores EVERY item with the fused score (cosine +
weighted exact generative log-probability), takes that full-catalog top 10 as the reference, and then, per
channel setting (ANN size, prefixes taken, the beams), reports candidates per user, target coverage and the
Recall@10 of the same fused score restricted to the candidates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch

from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import recall_at_k
from sid_platform.retrieval.beam_search import constrained_beam_search
from sid_platform.retrieval.candidates import hybrid_candidates, prefix_channel, top_by_score
from sid_platform.retrieval.generative import fused_scores, generative_log_probs
from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie


@dataclass(frozen=True)
class CurvePoint:
    channels: str  # e.g. "beams + prefix 10 + ANN 500"
    ann_top_n: int
    prefixes: int
    candidates_per_user: float
    catalog_share: float
    coverage: float  # share of users whose target is among the candidates
    recall_at_10: float  # the fused score over the candidates
    full_catalog_recall_at_10: float  # the fused score over every item
    relative_loss: float  # 1 - recall / full-catalog recall

    def as_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def candidate_curve(
    router: SemanticRouter,
    trie: SidTrie,
    cases: EvalCases,
    ann_sizes: Sequence[int] = (0, 100, 200, 500, 1000),
    prefix_counts: Sequence[int] = (0, 5, 10, 20, 50),
) -> list[CurvePoint]:
    """One point per (ANN size, prefixes) pair, the beams always in; ANN is the exact cosine top n."""
    cfg, n_items = router.cfg, router.n_items
    states = router.user_states(cases.histories)
    queries, keys = router.user_queries(states), router.item_keys()
    cosine = (queries @ keys.T).numpy()
    every = np.arange(n_items)
    log_probs = np.stack(generative_log_probs(router, states, trie, [every] * len(cases)))
    fused = fused_scores(cosine, log_probs, float(router.fusion_weight), router.score_scale)
    full = recall_at_k(np.argsort(-fused, axis=1, kind="stable")[:, :10], cases.targets, 10)
    beams = constrained_beam_search(
        router, states, trie, max(cfg.beam_size, 10), cfg.prefix_depth, max(max(prefix_counts), 1)
    )
    nearest = np.argsort(-cosine, axis=1, kind="stable")[:, : max(ann_sizes)]
    points = []
    for n in ann_sizes:
        for p in prefix_counts:
            prefix = prefix_channel(trie, beams.prefixes[:, :p], cfg.prefix_depth) if p else [[]] * len(cases)
            candidates = hybrid_candidates(beams.items, prefix, nearest[:, :n])
            scores = [fused[row, items] for row, items in enumerate(candidates)]
            recall = recall_at_k(top_by_score(candidates, scores, 10), cases.targets, 10)
            size = float(np.mean([len(c) for c in candidates]))
            covered = float(np.mean([t in set(c.tolist()) for c, t in zip(candidates, cases.targets, strict=True)]))
            name = " + ".join(["beams", *([f"prefix {p}"] if p else []), *([f"ANN {n}"] if n else [])])
            points.append(
                CurvePoint(name, n, p, size, size / n_items, covered, recall, full, 1 - recall / full if full else 0.0)
            )
    return points
