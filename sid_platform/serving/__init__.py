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
    CATALOG_COMPONENT,
    RANKERS,
    ROUTER_RANKINGS,
    SERVING_REASON,
    ItemIndex,
    Prepare,
    Ranker,
    RouterRanking,
    SasrecRanking,
    ServingRouter,
    dpo_ranking,
    encode_histories,
    item_lists,
    router_rankings,
    serving_catalog,
)
from sid_platform.serving.requests import (
    MAX_K,
    POPULARITY,
    InvalidRequest,
    ServedModel,
    parse_histories,
    parse_k,
    popularity_table,
)

__all__ = [
    "CATALOG_COMPONENT",
    "MAX_K",
    "POPULARITY",
    "RANKERS",
    "ROUTER_RANKINGS",
    "SERVING_REASON",
    "Codebooks",
    "InvalidRequest",
    "ItemIndex",
    "Prepare",
    "ServedModel",
    "Ranker",
    "RouterRanking",
    "SasrecRanking",
    "ServingRouter",
    "StoredRouter",
    "StoredSasrec",
    "dpo_ranking",
    "encode_histories",
    "item_lists",
    "load_codebooks",
    "load_reranker",
    "load_router",
    "load_sasrec",
    "parse_histories",
    "parse_k",
    "popularity_table",
    "router_rankings",
    "serving_catalog",
]
