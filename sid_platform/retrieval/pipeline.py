"""Serving path for a batch of users: router states → beam search (generative ranking and top prefixes)
→ beams ∪ prefix channel ∪ ANN channel → exact generative log-probabilities of the union → its rankings by
cosine and by the fused score (``retrieval/generative.py``). Timed per stage, so the benchmark and the
evaluation report the same costs.

Every user's result depends on that user alone, except for two things computed once for all users: the
router's states (batched by history length across all users, and padding changes a state) and the ANN
search (FAISS's exact search takes another code path for a handful of queries). Beam search, the union and
the ranking then run in user batches (a multiple of the beam search's own chunk), so a long retrieval
reports its progress and gives exactly the result of one call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from sid_platform.progress import LogLine, Progress
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.beam_search import BEAM_CHUNK, constrained_beam_search
from sid_platform.retrieval.candidates import hybrid_candidates, prefix_channel, rank_candidates, top_by_score
from sid_platform.retrieval.generative import fused_scores, generative_log_probs
from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie
from sid_platform.sequences import exclude_seen, ranking_depth

USER_BATCH = 4 * BEAM_CHUNK  # users per progress step; a multiple of the beam search's chunk keeps its batches


@dataclass
class Retrieval:
    generative: np.ndarray  # [users, k] beam-search ranking
    hybrid_cosine: np.ndarray  # [users, k] the union ranked by cosine
    fused: np.ndarray  # [users, k] the union ranked by the fused score
    prefix: list[np.ndarray]  # per user, the prefix channel's items
    ann: list[np.ndarray]  # per user, the ANN channel's items
    candidates: list[np.ndarray]  # per user, the union (sorted item indices)
    base_scores: list[np.ndarray]  # per user, cosine of each candidate, aligned with ``candidates``
    log_probs: list[np.ndarray] | None  # per user, exact generative log p(ID) of each candidate; None: skipped
    fused_scores: list[np.ndarray]  # per user, dense + weight · log p / scale, aligned likewise
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
    on_progress: LogLine | None = None,
    phase: str = "retrieval",
    batch_size: int = USER_BATCH,
    tokens: torch.Tensor | None = None,
    keys: torch.Tensor | None = None,
    log_probs: bool = True,
) -> Retrieval:
    """Both rankings and both channels for every history; ``exclude_history`` drops seen items from rankings.

    ``on_progress`` receives ``phase``'s progress lines (users done, users per second, time left). ``tokens``:
    ``model.item_tokens()`` computed once by a server (``serving.ServingRouter``), and ``keys`` its
    ``model.item_keys(tokens)``; computed here when None, the steps whose cost grows with the catalog. ``log_probs=False`` skips the exact generative scores where
    nothing reads them (a server whose fusion weight is 0 ranks by the dense score alone, bit for bit the same
    fused ranking); ``Retrieval.log_probs`` is then None.
    """
    if batch_size % BEAM_CHUNK:
        raise ValueError(f"batch_size must be a multiple of {BEAM_CHUNK}, the beam search's chunk; got {batch_size}")
    clock = time.perf_counter()
    seconds = dict.fromkeys(("encode", "beam_search", "ann_search", "union", "generative_scores", "rank"), 0.0)

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] += now - clock
        clock = now

    tokens = model.item_tokens() if tokens is None else tokens  # no dropout in a token: the same in either mode
    states = model.user_states(histories, tokens=tokens)
    lap("encode")
    queries = model.user_queries(states)
    _, ann_items = index.search(queries.numpy(), ann_top_n)
    lap("ann_search")
    keys = model.item_keys(tokens) if keys is None else keys
    depth = ranking_depth(k, histories, exclude_history)  # over all users, as one call would rank
    lap("rank")
    progress = Progress(phase, len(histories), on_progress, unit="users")
    parts = []
    for start in range(0, max(len(histories), 1), batch_size):  # one (empty) batch for no users, as before
        rows = slice(start, start + batch_size)
        part = _retrieve_batch(
            model, trie, states[rows], queries[rows], ann_items[rows], keys, k, depth, lap, log_probs
        )
        if exclude_history:
            for ranking in RANKINGS:
                part[ranking] = exclude_seen(part[ranking], histories[rows], k)
        lap("rank")
        parts.append(part)
        progress.update(min(start + batch_size, len(histories)))
    joined = {
        key: [row for part in parts for row in part[key]] if parts[0][key] is not None else None for key in PER_USER
    }
    ranked = {key: np.concatenate([part[key] for part in parts])[:, :k] for key in RANKINGS}
    return Retrieval(
        generative=ranked["generative"],
        hybrid_cosine=ranked["hybrid"],
        fused=ranked["fused"],
        prefix=joined["prefix"],
        ann=joined["ann"],
        candidates=joined["candidates"],
        base_scores=joined["base"],
        log_probs=joined["log_probs"],
        fused_scores=joined["fused_scores"],
        queries=queries,
        keys=keys,
        seconds=seconds,
    )


RANKINGS = ("generative", "hybrid", "fused")
PER_USER = ("prefix", "ann", "candidates", "base", "log_probs", "fused_scores")


def _retrieve_batch(
    model: SemanticRouter,
    trie: SidTrie,
    states: torch.Tensor,
    queries: torch.Tensor,
    ann_items: np.ndarray,
    keys: torch.Tensor,
    k: int,
    depth: int,
    lap: Callable[[str], None],
    with_log_probs: bool,
) -> dict:
    """Beam search, the channels, their union, its generative scores and its two rankings for one batch."""
    cfg = model.cfg
    beams = constrained_beam_search(model, states, trie, max(cfg.beam_size, k), cfg.prefix_depth, cfg.n_prefixes)
    lap("beam_search")
    prefix = prefix_channel(trie, beams.prefixes, cfg.prefix_depth)
    ann = [row[row >= 0] for row in ann_items]
    candidates = hybrid_candidates(beams.items, prefix, ann)  # the beams' IDs always join: fusion needs them
    lap("union")
    weight, scale = float(model.fusion_weight), model.score_scale
    if model.fuses_log_probs and not with_log_probs:
        raise ValueError(f"the fused score needs the generative log-probabilities (fusion weight {weight})")
    log_probs = generative_log_probs(model, states, trie, candidates) if with_log_probs else None
    lap("generative_scores")
    hybrid, base_scores = rank_candidates(candidates, queries, keys, depth)
    if log_probs is None:  # weight 0: dense + 0 · log p is the dense score, bit for bit
        fused = [np.asarray(b, dtype=np.float32) for b in base_scores]
    else:
        fused = [fused_scores(b, lp, weight, scale) for b, lp in zip(base_scores, log_probs, strict=True)]
    return {
        "generative": beams.items,
        "hybrid": hybrid,
        "fused": top_by_score(candidates, fused, depth),
        "prefix": prefix,
        "ann": ann,
        "candidates": candidates,
        "base": base_scores,
        "log_probs": log_probs,
        "fused_scores": fused,
    }
