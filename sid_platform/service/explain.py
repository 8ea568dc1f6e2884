"""Why each recommended item is there: the channel that found it and its base and final score.

Why separate from the ranking: the served list comes from ``ServedModel.answer`` (what the evaluation measured),
and this module only annotates it, reading the same bundle components through ``sid_platform.serving``'s public
functions. For the router's rankings the candidates come from three channels (the beams: IDs the constrained
beam search wrote; the prefix channel: items under the top generated prefixes; the ANN channel: nearest item
vectors). The base score is the dense head's score of the item; the final score is what the served ranking
ordered by: the base score (``router_hybrid_cosine``), the ID's generative log-probability
(``router_generative``), the fused score (``router_fused``) plus the bounded DPO correction for the reranked
pool (``router_fused_dpo``), the blend of the fused score with SASRec's logit (``router_sasrec_blend``). SASRec
scores the whole catalog ("catalog", no scores here); a history the model could not rank is answered by popularity. What the bundle cannot say stays null.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from sid_platform.retrieval.pipeline import Retrieval
from sid_platform.serving import BlendRanking, Ranker, RouterRanking, SasrecRanking

PREFIX, ANN, BOTH, BEAMS, CATALOG, POPULARITY = "prefix", "ann", "both", "beams", "catalog", "popularity"


@dataclass(frozen=True)
class Why:
    channel: str | None = None
    base_score: float | None = None
    final_score: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "base_score": self.base_score, "final_score": self.final_score}


def explain(ranking: Ranker, found: Retrieval | None, ranked: Sequence[list[str]]) -> list[list[Why]]:
    """One ``Why`` per ranked item of each list ``ranking`` gave; ``found``: the retrieval it ranked from (one row
    per list, ``ServedModel.answer_traced``), for the router's rankings."""
    if isinstance(ranking, SasrecRanking):
        return [[Why(CATALOG) for _ in row] for row in ranked]
    if not isinstance(ranking, RouterRanking | BlendRanking) or found is None:
        return [[Why() for _ in row] for row in ranked]
    if isinstance(ranking, BlendRanking):  # its retrieval's fused scores are the blended ones (``traced``)
        serving, reranker = "router_fused", None
    else:
        serving, reranker = ranking.name, ranking.reranker
    index = ranking.router.items
    out = []
    for row, items in enumerate(ranked):
        rows = index.encode([items])[0]
        query, keys = found.queries[row], found.keys[torch.from_numpy(rows)]
        base = (keys @ query).float()
        at = np.searchsorted(found.candidates[row], rows)  # candidates are sorted item indices
        final = base.clone()
        if serving == "router_generative":
            final = torch.from_numpy(found.log_probs[row][at]).float()
        elif serving in ("router_fused", "router_fused_dpo"):
            final = torch.from_numpy(found.fused_scores[row][at]).float()
        if reranker is not None:  # the reranker reorders the pool (the top candidates by fused score) only
            pool = _pool(found.candidates[row], found.fused_scores[row], reranker.cfg.pool_size)
            in_pool = torch.from_numpy(np.isin(rows, pool))
            with torch.no_grad():
                final = torch.where(in_pool, final + reranker.correction(query, keys, base), final)
        prefix, ann = set(found.prefix[row].tolist()), set(found.ann[row].tolist())
        out.append(
            [
                Why(_channel(int(i) in prefix, int(i) in ann), float(b), float(f))
                for i, b, f in zip(rows, base.tolist(), final.tolist(), strict=True)
            ]
        )
    return out


def _pool(candidates: np.ndarray, base: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(candidates)[np.argsort(-np.asarray(base), kind="stable")[:size]]


def _channel(in_prefix: bool, in_ann: bool) -> str | None:
    return BOTH if in_prefix and in_ann else PREFIX if in_prefix else ANN if in_ann else BEAMS
