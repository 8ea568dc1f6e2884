"""The served ranking path: item-id histories in, ranked item ids out, one function per servable model.

The bundle's ``predict`` and the evaluation rank through the same functions: SASRec through the harness's
``rank_with_scorer``, the router through ``retrieve`` (its hybrid cosine ranking), and the reranked ranking
through ``dpo_ranking``, so a served list is the list that was measured.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from sid_platform.evaluation.metrics import rank_with_scorer
from sid_platform.progress import LogLine, Progress
from sid_platform.reranking.dpo import Reranker, rerank
from sid_platform.retrieval.pipeline import Retrieval, retrieve
from sid_platform.sequences import exclude_seen, ranking_depth
from sid_platform.serving.models import load_codebooks, load_reranker, load_router, load_sasrec

SERVING_REASON = (
    "the evaluation serves the ranking with the best validation Recall@10 among every ranking it computed, "
    "the same run's SASRec included (test users are reported, never chosen on); the gate refuses a serving "
    "ranking below that SASRec on validation."
)

Ranker = Callable[[Mapping[str, Any], list[list[str]], int], list[list[str]]]


def encode_histories(item_ids: list[str], histories: list[list[str]]) -> list[np.ndarray]:
    """Item-id histories → item indices of the model's vocabulary; items it does not know are skipped."""
    index = {item: i for i, item in enumerate(item_ids)}
    return [np.asarray([index[i] for i in history if i in index], dtype=np.int64) for history in histories]


def item_lists(ranked: np.ndarray, item_ids: list[str]) -> list[list[str]]:
    """[users, k] item indices (-1 padding) → lists of item ids."""
    return [[item_ids[i] for i in row if i >= 0] for row in ranked]


def dpo_ranking(
    reranker: Reranker,
    found: Retrieval,
    k: int,
    histories: Sequence[np.ndarray] | None = None,
    on_progress: LogLine | None = None,
    phase: str = "reranking",
) -> np.ndarray:
    """[users, k]: the candidates by fused score, the top of the pool reordered by the bounded DPO reranker.

    Given ``histories``, items already seen are dropped (the reranking goes deep enough that ``k`` remain).
    ``on_progress`` receives ``phase``'s progress lines.
    """
    depth = k if histories is None else ranking_depth(k, histories, True)
    progress = Progress(phase, len(found.candidates), on_progress, unit="users")
    top, _ = rerank(
        reranker,
        found.queries,
        found.keys,
        found.candidates,
        found.base_scores,
        depth,
        progress.update,
        start_scores=found.fused_scores,
    )
    return top if histories is None else exclude_seen(top, histories, k)


def router_rankings(
    found: Retrieval,
    reranker: Reranker,
    k: int,
    histories: Sequence[np.ndarray] | None = None,
    on_progress: LogLine | None = None,
    phase: str = "reranking",
) -> dict[str, np.ndarray]:
    """The router's rankings by name: beam search, the union by cosine, by the fused score, and reranked."""
    return {
        "router_generative": found.generative,
        "router_hybrid_cosine": found.hybrid_cosine,
        "router_fused": found.fused,
        "router_fused_dpo": dpo_ranking(reranker, found, k, histories, on_progress, phase),
    }


def rank_sasrec(components: Mapping[str, Any], histories: list[list[str]], k: int) -> list[list[str]]:
    """SASRec over the full catalog."""
    sasrec = load_sasrec(components["sasrec_model"])
    encoded = encode_histories(sasrec.item_ids, histories)
    return item_lists(rank_with_scorer(sasrec.model.score, encoded, k, exclude_history=False), sasrec.item_ids)


def router_retrieval(components: Mapping[str, Any], histories: list[list[str]], k: int) -> tuple[Retrieval, list[str]]:
    """The router's serving path: prefix channel ∪ ANN channel, with base scores and both rankings."""
    router = load_router(components["router_checkpoint"])
    trie = load_codebooks(components["codebooks"]).trie(components["usid_table"], router.item_ids)
    index = components["faiss_index"]
    found = retrieve(router.model, trie, index, encode_histories(router.item_ids, histories), k, index.top_n)
    return found, router.item_ids


def rank_router_hybrid_cosine(components: Mapping[str, Any], histories: list[list[str]], k: int) -> list[list[str]]:
    """Hybrid candidates ranked by cosine (the base ranking)."""
    found, item_ids = router_retrieval(components, histories, k)
    return item_lists(found.hybrid_cosine, item_ids)


def rank_router_fused(components: Mapping[str, Any], histories: list[list[str]], k: int) -> list[list[str]]:
    """Hybrid candidates ranked by the fused score (cosine + weighted generative log-probability)."""
    found, item_ids = router_retrieval(components, histories, k)
    return item_lists(found.fused, item_ids)


def rank_router_generative(components: Mapping[str, Any], histories: list[list[str]], k: int) -> list[list[str]]:
    """The constrained beam search's IDs, by log-probability."""
    found, item_ids = router_retrieval(components, histories, k)
    return item_lists(found.generative, item_ids)


def rank_router_fused_dpo(components: Mapping[str, Any], histories: list[list[str]], k: int) -> list[list[str]]:
    """Hybrid candidates ranked by the fused score, the top of the pool reordered by the bounded DPO reranker."""
    found, item_ids = router_retrieval(components, histories, k)
    return item_lists(dpo_ranking(load_reranker(components["dpo_checkpoint"]), found, k), item_ids)


# Serving model name (as the evaluation names it) → how the bundle ranks with it. A ranking the bundle should
# serve is one more entry, reading its components by name.
RANKERS: dict[str, Ranker] = {
    "sasrec": rank_sasrec,
    "router_generative": rank_router_generative,
    "router_hybrid_cosine": rank_router_hybrid_cosine,
    "router_fused": rank_router_fused,
    "router_fused_dpo": rank_router_fused_dpo,
}

# Serving model name → the component whose item ids are its catalog (what a history's ids are checked against).
CATALOG_COMPONENT: dict[str, str] = {"sasrec": "sasrec_model"} | {
    name: "router_checkpoint" for name in RANKERS if name.startswith("router_")
}


def serving_catalog(components: Mapping[str, Any], serving: str) -> list[str]:
    """The item ids the serving model ranks over: ids outside it are reported back as unknown."""
    return list(components[CATALOG_COMPONENT[serving]].item_ids)
