"""Opening the stored models: the one module that reads their checkpoint dicts and the codebook state.

Each stored model is a plain dict written by its package's ``checkpoint_blob`` and read back by its
``from_checkpoint``; the fields read beside the weights (the item vocabulary, the codebook version, the
codebook size) are read here and nowhere else, one small function per kind, so assets, the evaluation and
the bundle open a model the same way and check that it fits the data it is applied to.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sid_platform.baselines.sasrec import SASRec
from sid_platform.baselines.sasrec import from_checkpoint as sasrec_from_checkpoint
from sid_platform.reranking.dpo import Reranker
from sid_platform.reranking.dpo import from_checkpoint as reranker_from_checkpoint
from sid_platform.retrieval.router import SemanticRouter
from sid_platform.retrieval.training import from_checkpoint as router_from_checkpoint
from sid_platform.retrieval.trie import SidTrie
from sid_platform.semantic_ids.intrinsic import utilization_per_level
from sid_platform.semantic_ids.usid import code_columns, table_levels


@dataclass(frozen=True)
class Codebooks:
    """What the rest of the graph needs from the tokenizer state: its version and codes per level."""

    version: str
    codebook_size: int

    def trie(self, usid_table: pl.DataFrame, item_ids: list[str]) -> SidTrie:
        """The trie of the catalog's Semantic IDs, rows in ``item_ids`` order (what the router decodes over)."""
        return SidTrie.for_catalog(usid_table, item_ids, self.codebook_size)

    def utilization(self, usid_table: pl.DataFrame) -> list[float]:
        """Share of the codes used per level, read off the USID table (no need to run the tokenizer again)."""
        codes = usid_table.select(code_columns(table_levels(usid_table))).to_numpy()
        return utilization_per_level(codes, self.codebook_size)


@dataclass(frozen=True)
class StoredSasrec:
    model: SASRec
    item_ids: list[str]


@dataclass(frozen=True)
class StoredRouter:
    model: SemanticRouter
    item_ids: list[str]
    tokenizer_version: str


def load_codebooks(state: dict) -> Codebooks:
    return Codebooks(version=state["version"], codebook_size=int(state["config"]["codebook_size"]))


def load_sasrec(blob: dict, item_ids: list[str] | None = None) -> StoredSasrec:
    """The SASRec checkpoint; given ``item_ids``, refuses one trained on another catalog."""
    model, trained_on = sasrec_from_checkpoint(blob)
    if item_ids is not None and trained_on != item_ids:
        raise ValueError(
            "sasrec_model was trained on a different item catalog; rematerialize it with the current item_catalog"
        )
    return StoredSasrec(model, trained_on)


def load_router(blob: dict, item_ids: list[str] | None = None, tokenizer_version: str | None = None) -> StoredRouter:
    """The router checkpoint; given the catalog and codebook version, refuses one trained against others."""
    if (item_ids is not None and blob["item_ids"] != item_ids) or (
        tokenizer_version is not None and blob["tokenizer_version"] != tokenizer_version
    ):
        raise ValueError("router_checkpoint was trained on another catalog or codebook version; rematerialize it")
    return StoredRouter(router_from_checkpoint(blob), blob["item_ids"], blob["tokenizer_version"])


def load_reranker(blob: dict) -> Reranker:
    return reranker_from_checkpoint(blob)
