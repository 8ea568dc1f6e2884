"""Serving path for a batch of users: router states → beam search (generative ranking and top prefixes)
→ prefix channel ∪ ANN channel → cosine ranking of the union. Timed per stage, so the benchmark and the
evaluation report the same costs."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.beam_search import constrained_beam_search
from sid_platform.retrieval.candidates import hybrid_candidates, prefix_channel, rank_candidates
from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie
from sid_platform.sequences import exclude_seen, ranking_depth


@dataclass
class Retrieval:
    generative: np.ndarray  # [users, k] beam-search ranking
    hybrid_cosine: np.ndarray  # [users, k] the union ranked by cosine
    prefix: list[np.ndarray]  # per user, the prefix channel's items
    ann: list[np.ndarray]  # per user, the ANN channel's items
    candidates: list[np.ndarray]  # per user, the union (sorted item indices)
    base_scores: list[np.ndarray]  # per user, cosine of each candidate, aligned with ``candidates``
    queries: torch.Tensor  # [users, d] normalized query vectors
    keys: torch.Tensor  # [n_items, d] normalized item vectors the base scores were computed against
    seconds: dict[str, float] = field(default_factory=dict)


@torch.no_grad()
def retrieve(
    model: SemanticRouter,
    trie: SidTrie,
    index: AnnIndex,
    histories: Sequence[np.ndarray],
    k: int,
    ann_top_n: int,
    exclude_history: bool = False,
) -> Retrieval:
    """Both rankings and both channels for every history; ``exclude_history`` drops seen items from rankings."""
    cfg = model.cfg
    clock = time.perf_counter()
    seconds: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    states = model.user_states(histories)
    lap("encode")
    beam = max(cfg.beam_size, k)
    beams = constrained_beam_search(model, states, trie, beam, cfg.prefix_depth, cfg.n_prefixes)
    lap("beam_search")
    queries = model.user_queries(states)
    _, ann_items = index.search(queries.numpy(), ann_top_n)
    lap("ann_search")
    prefix = prefix_channel(trie, beams.prefixes, cfg.prefix_depth)
    ann = [row[row >= 0] for row in ann_items]
    candidates = hybrid_candidates(prefix, ann)
    lap("union")
    keys = model.item_keys()
    hybrid, base_scores = rank_candidates(candidates, queries, keys, ranking_depth(k, histories, exclude_history))
    generative = beams.items
    if exclude_history:
        hybrid = exclude_seen(hybrid, histories, k)
        generative = exclude_seen(generative, histories, k)
    lap("rank")
    return Retrieval(generative[:, :k], hybrid[:, :k], prefix, ann, candidates, base_scores, queries, keys, seconds)
