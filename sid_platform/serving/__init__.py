"""The served ranking path: open the stored models and rank item-id histories with them.

Used by the registered bundle's ``predict`` and by the evaluation, so what is served is what was measured.
Plain Python over the model packages; it never imports the registry, the assets or Dagster.
"""

from sid_platform.serving.models import (
    Codebooks,
    StoredRouter,
    StoredSasrec,
    load_codebooks,
    load_reranker,
    load_router,
    load_sasrec,
)
from sid_platform.serving.rankers import (
    RANKERS,
    SERVING_MODEL,
    Ranker,
    dpo_ranking,
    encode_histories,
    item_lists,
    rank_router_hybrid_cosine,
    rank_router_hybrid_dpo,
    rank_sasrec,
    router_rankings,
    router_retrieval,
)

__all__ = [
    "RANKERS",
    "SERVING_MODEL",
    "Codebooks",
    "Ranker",
    "StoredRouter",
    "StoredSasrec",
    "dpo_ranking",
    "encode_histories",
    "item_lists",
    "load_codebooks",
    "load_reranker",
    "load_router",
    "load_sasrec",
    "rank_router_hybrid_cosine",
    "rank_router_hybrid_dpo",
    "rank_sasrec",
    "router_rankings",
    "router_retrieval",
]
