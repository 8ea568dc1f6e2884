"""Opening the stored models: one small function per kind, so assets, the evaluation and the bundle open a
model the same way and check that it fits the data it is applied to (the same catalog, the same codebooks).
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from sid_platform.baselines.sasrec import SASRec, SASRecCheckpoint
from sid_platform.reranking.dpo import Reranker, RerankerCheckpoint
from sid_platform.retrieval.router import RouterCheckpoint, SemanticRouter
from sid_platform.retrieval.trie import SidTrie
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint
from sid_platform.semantic_ids.intrinsic import utilization_per_level
from sid_platform.semantic_ids.usid import code_columns, table_levels


@dataclass(frozen=True)
class Codebooks:
    """What the rest of the graph needs from the codebooks: their version and codes per level."""

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


def load_codebooks(checkpoint: CodebooksCheckpoint) -> Codebooks:
    return Codebooks(version=checkpoint.version, codebook_size=int(checkpoint.codebook_size))


def load_sasrec(checkpoint: SASRecCheckpoint, item_ids: list[str] | None = None) -> StoredSasrec:
    """The SASRec checkpoint; given ``item_ids``, refuses one trained on another catalog."""
    trained_on = list(checkpoint.item_ids)
    if item_ids is not None and trained_on != item_ids:
        raise ValueError(
            "sasrec_model was trained on a different item catalog; rematerialize it with the current item_catalog"
        )
    return StoredSasrec(checkpoint.model(), trained_on)


def load_router(
    checkpoint: RouterCheckpoint, item_ids: list[str] | None = None, tokenizer_version: str | None = None
) -> StoredRouter:
    """The router checkpoint; given the catalog and codebook version, refuses one trained against others."""
    if (item_ids is not None and list(checkpoint.item_ids) != item_ids) or (
        tokenizer_version is not None and checkpoint.tokenizer_version != tokenizer_version
    ):
        raise ValueError("router_checkpoint was trained on another catalog or codebook version; rematerialize it")
    return StoredRouter(checkpoint.model(), list(checkpoint.item_ids), checkpoint.tokenizer_version)


def load_reranker(checkpoint: RerankerCheckpoint) -> Reranker:
    return checkpoint.model()
