"""The served ranking path: item-id histories in, ranked item ids out, one prepared ranking per servable model.

The bundle's ``predict``, the HTTP service and the evaluation rank through the same functions: SASRec through
the harness's ``rank_with_scorer``, the router through ``retrieve``, the reranked ranking through
``dpo_ranking`` and the blend of the router with SASRec through ``sasrec_logits`` and ``blend_ranking``, so a
served list is the list that was measured.

Why prepared: everything a request would otherwise redo over the whole catalog (open the checkpoint, build the
trie, map item ids to indices, compute every item's token) is done once when the bundle loads
(``RANKERS[name](components)``), so a request costs what its history, the code vocabulary and its candidates
cost, not what the catalog costs (``benchmarks/scale_curve.py`` measures it from 10k to 1M items).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from sid_platform.baselines.sasrec import SASRec
from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import rank_with_scorer
from sid_platform.progress import LogLine, Progress
from sid_platform.reranking.dpo import Reranker, rerank
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.blend import ScoreBlend, blend_ranking, blended_scores, candidate_logits, choose_blend
from sid_platform.retrieval.pipeline import Retrieval, retrieve
from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.trie import SidTrie
from sid_platform.sequences import exclude_seen, ranking_depth
from sid_platform.serving.models import load_codebooks, load_reranker, load_router, load_sasrec

SERVING_REASON = (
    "the evaluation serves the ranking with the best validation Recall@10 among every ranking it computed, "
    "the same run's SASRec included (test users are reported, never chosen on); the gate refuses a serving "
    "ranking below that SASRec on validation."
)

Ranker = Callable[[list[list[str]], int], list[list[str]]]  # item-id histories, k → top-k item ids per history
Prepare = Callable[[Mapping[str, Any]], Ranker]  # a bundle's components → its ranker, opened once


class ItemIndex:
    """Item ids ↔ the model's item indices, built once per model (a dict over the catalog)."""

    def __init__(self, item_ids: Sequence[str]) -> None:
        self.item_ids = list(item_ids)
        self._index = {item: i for i, item in enumerate(self.item_ids)}

    def encode(self, histories: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Item-id histories → item indices; items outside the catalog are skipped."""
        index = self._index
        return [np.asarray([index[i] for i in history if i in index], dtype=np.int64) for history in histories]

    def rows_of(self, item_ids: Sequence[str]) -> np.ndarray:
        """[len(item_ids)] this model's index of each item id; -1 for an id it does not know."""
        index = self._index
        return np.asarray([index.get(item, -1) for item in item_ids], dtype=np.int64)

    def lists(self, ranked: np.ndarray) -> list[list[str]]:
        """[users, k] item indices (-1 padding) → lists of item ids."""
        return item_lists(ranked, self.item_ids)


def encode_histories(item_ids: list[str], histories: list[list[str]]) -> list[np.ndarray]:
    """Item-id histories → item indices of the model's vocabulary; items it does not know are skipped."""
    return ItemIndex(item_ids).encode(histories)


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


@dataclass(frozen=True)
class SasrecRanking:
    """SASRec over the full catalog (its cost is O(catalog) by design: it scores every item)."""

    model: Any
    items: ItemIndex

    @classmethod
    def open(cls, components: Mapping[str, Any]) -> SasrecRanking:
        sasrec = load_sasrec(components["sasrec_model"])
        return cls(sasrec.model, ItemIndex(sasrec.item_ids))

    def __call__(self, histories: list[list[str]], k: int) -> list[list[str]]:
        ranked = rank_with_scorer(self.model.score, self.items.encode(histories), k, exclude_history=False)
        return self.items.lists(ranked)


@dataclass(frozen=True)
class ServingRouter:
    """The router as requests use it, opened once: the model, its catalog, the trie, the FAISS index, and every
    item's token computed once (the model is only ever evaluated here, so the tokens cannot go stale)."""

    model: SemanticRouter
    items: ItemIndex
    trie: SidTrie
    index: AnnIndex
    tokens: torch.Tensor  # [n_items, d]
    keys: torch.Tensor  # [n_items, d] the dense head's item vectors (the tokens themselves for a dot head)

    @classmethod
    def open(cls, components: Mapping[str, Any]) -> ServingRouter:
        router = load_router(components["router_checkpoint"])
        trie = load_codebooks(components["codebooks"]).trie(components["usid_table"], router.item_ids)
        router.model.eval()
        with torch.no_grad():
            tokens = router.model.item_tokens()
            keys = router.model.item_keys(tokens)
        return cls(router.model, ItemIndex(router.item_ids), trie, components["faiss_index"], tokens, keys)

    def retrieve(self, histories: list[list[str]], k: int, log_probs: bool = False) -> Retrieval:
        """The router's serving path: beams ∪ prefix channel ∪ ANN channel, scored, and its rankings.

        The candidates' exact generative log-probabilities are computed when the fused score uses them (a
        fusion weight other than 0) or when asked; otherwise no ranking reads them and they are skipped.
        """
        encoded = self.items.encode(histories)
        needed = log_probs or self.model.fuses_log_probs
        return retrieve(
            self.model,
            self.trie,
            self.index,
            encoded,
            k,
            self.index.top_n,
            tokens=self.tokens,
            keys=self.keys,
            log_probs=needed,
        )


ROUTER_RANKINGS = ("router_generative", "router_hybrid_cosine", "router_fused", "router_fused_dpo")


@dataclass(frozen=True)
class RouterRanking:
    """One of the router's rankings: the beam search's IDs, the union by cosine, by the fused score (cosine +
    weighted generative log-probability), or by the fused score with the bounded DPO reranker on its pool."""

    name: str
    router: ServingRouter
    reranker: Reranker | None  # router_fused_dpo only

    @classmethod
    def opener(cls, name: str) -> Prepare:
        if name not in ROUTER_RANKINGS:
            raise ValueError(f"unknown router ranking {name!r}")

        def open_ranking(components: Mapping[str, Any]) -> RouterRanking:
            dpo = load_reranker(components["dpo_checkpoint"]) if name == "router_fused_dpo" else None
            return cls(name, ServingRouter.open(components), dpo)

        return open_ranking

    def ranked(self, found: Retrieval, k: int) -> np.ndarray:
        """[users, k] this ranking's item indices from a retrieval (as ``router_rankings`` names them)."""
        if self.name == "router_generative":
            return found.generative
        if self.name == "router_hybrid_cosine":
            return found.hybrid_cosine
        return found.fused if self.reranker is None else dpo_ranking(self.reranker, found, k)

    def __call__(self, histories: list[list[str]], k: int) -> list[list[str]]:
        return self.router.items.lists(self.ranked(self.router.retrieve(histories, k), k))

    def traced(self, histories: list[list[str]], k: int) -> tuple[list[list[str]], Retrieval]:
        """The same lists and the retrieval behind them (what an explanation reads: channels, scores)."""
        found = self.router.retrieve(histories, k, log_probs=self.name == "router_generative")
        return self.router.items.lists(self.ranked(found, k)), found


BLEND_RANKING = "router_sasrec_blend"
SASREC_BATCH = 1024  # histories per SASRec forward pass: bounds its memory, not its result (each row is alone)


@torch.no_grad()
def sasrec_logits(
    model: SASRec,
    histories: Sequence[np.ndarray],
    candidates: Sequence[np.ndarray],
    rows: np.ndarray | None = None,
) -> list[np.ndarray]:
    """SASRec's logit of each user's candidates. ``histories`` are SASRec item indices; ``candidates`` the router's,
    mapped to SASRec's by ``rows`` (router index → SASRec index, -1 unknown; None: the two vocabularies are one)."""
    was_training = model.training
    model.eval()  # no dropout, whoever passes the model
    items = model.item_vectors().numpy()
    logits: list[np.ndarray] = []
    for start in range(0, len(histories), SASREC_BATCH):
        users = model.user_vectors(histories[start : start + SASREC_BATCH]).numpy()
        part = candidates[start : start + SASREC_BATCH]
        logits += candidate_logits(users, items, part if rows is None else [rows[c] for c in part])
    model.train(was_training)
    return logits


def sasrec_blend_scores(
    found: Retrieval,
    sasrec: SASRec,
    histories: Sequence[np.ndarray],
    weight: float,
    router_scale: float,
    rows: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Per user, the blended score of each candidate ``found`` holds (what ``blend_ranking`` sorts by); the
    evaluation and ``BlendRanking`` both score through here. ``histories``: SASRec item indices."""
    return blended_scores(found, sasrec_logits(sasrec, histories, found.candidates, rows), weight, router_scale)


def sasrec_blend(
    found: Retrieval, sasrec: SASRec, router_scale: float, cases: EvalCases, exclude_history: bool
) -> ScoreBlend:
    """The blend weight chosen on ``cases`` (validation users) over their stored retrieval ``found``, under the
    evaluation's protocol; the router and SASRec share the catalog's item indices."""
    logits = sasrec_logits(sasrec, cases.histories, found.candidates)
    histories = cases.histories if exclude_history else None
    return choose_blend(found, logits, router_scale, cases.targets, histories)


@dataclass(frozen=True)
class BlendRanking:
    """The router's candidates by ``w · SASRec logit + (1 − w) · router logit`` (``retrieval/blend.py``), ``w`` the
    ``score_blend`` component's weight: the Semantic-ID candidate set, ranked with the sequential model's help."""

    router: ServingRouter
    sasrec: SasrecRanking
    sasrec_rows: np.ndarray  # [router items] router item index → SASRec item index (-1: unknown to SASRec)
    blend: ScoreBlend

    @classmethod
    def open(cls, components: Mapping[str, Any]) -> BlendRanking:
        router, sasrec = ServingRouter.open(components), SasrecRanking.open(components)
        return cls(router, sasrec, sasrec.items.rows_of(router.items.item_ids), components["score_blend"])

    def scored(self, found: Retrieval, histories: list[list[str]]) -> list[np.ndarray]:
        """Per user, the blended score of each candidate ``found`` holds for these histories."""
        encoded, weight, scale = (
            self.sasrec.items.encode(histories),
            self.blend.sasrec_weight,
            self.router.model.score_scale,
        )
        return sasrec_blend_scores(found, self.sasrec.model, encoded, weight, scale, self.sasrec_rows)

    def __call__(self, histories: list[list[str]], k: int) -> list[list[str]]:
        return self.traced(histories, k)[0]

    def traced(self, histories: list[list[str]], k: int) -> tuple[list[list[str]], Retrieval]:
        """The lists and the retrieval behind them, its ``fused_scores`` the blended scores the lists follow."""
        found = self.router.retrieve(histories, k)
        scores = self.scored(found, histories)
        return self.router.items.lists(blend_ranking(found, scores, k)), replace(found, fused_scores=scores)


# Serving model name (as the evaluation names it) → how the bundle opens its ranker. A ranking the bundle should
# serve is one more entry, reading its components by name.
RANKERS: dict[str, Prepare] = (
    {"sasrec": SasrecRanking.open}
    | {name: RouterRanking.opener(name) for name in ROUTER_RANKINGS}
    | {BLEND_RANKING: BlendRanking.open}
)

# Serving model name → the component whose item ids are its catalog (what a history's ids are checked against).
CATALOG_COMPONENT: dict[str, str] = {"sasrec": "sasrec_model", BLEND_RANKING: "router_checkpoint"} | {
    name: "router_checkpoint" for name in ROUTER_RANKINGS
}


def serving_catalog(components: Mapping[str, Any], serving: str) -> list[str]:
    """The item ids the serving model ranks over: ids outside it are reported back as unknown."""
    return list(components[CATALOG_COMPONENT[serving]].item_ids)
