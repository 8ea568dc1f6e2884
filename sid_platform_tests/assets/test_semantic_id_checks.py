"""The Semantic-ID asset checks fail on what they guard against."""

import numpy as np
import polars as pl

from sid_platform.assets.semantic_ids import UtilizationCheckConfig, codebook_utilization, usid_unique
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.semantic_ids import CodebooksCheckpoint, RQKMeansConfig, RQKMeansTokenizer, build_usid_table


def _embeddings(vectors: np.ndarray) -> ItemEmbeddings:
    return ItemEmbeddings([f"i{i}" for i in range(len(vectors))], vectors.astype(np.float32), ["test"], "v0")


def _state(train: np.ndarray) -> CodebooksCheckpoint:
    tokenizer = RQKMeansTokenizer(RQKMeansConfig(levels=2, codebook_size=8, niter=10))
    tokenizer.fit(train)
    return CodebooksCheckpoint.of(tokenizer, "v0")


def test_utilization_check_passes_on_spread_data_and_fails_on_a_collapsed_codebook():
    rng = np.random.default_rng(0)
    spread = rng.normal(size=(400, 8))
    state = _state(spread)
    assert codebook_utilization(UtilizationCheckConfig(), codebooks=state, item_embeddings=_embeddings(spread)).passed
    # The same codebook over a catalog that has collapsed onto one point uses one code per level.
    collapsed = np.repeat(spread[:1], 400, axis=0)
    result = codebook_utilization(UtilizationCheckConfig(), codebooks=state, item_embeddings=_embeddings(collapsed))
    assert not result.passed and "levels [1, 2]" in (result.description or "")


def test_usid_check_catches_duplicate_ids():
    codes = np.array([[1, 2], [1, 2], [3, 4]])
    table = build_usid_table(["a", "b", "c"], codes, "v0")
    assert usid_unique(usid_table=table).passed
    broken = table.with_columns(
        pl.when(pl.col("item_id") == "b").then(pl.lit(0)).otherwise(pl.col("suffix")).alias("suffix")
    )
    broken = broken.with_columns(
        pl.when(pl.col("item_id") == "b").then(pl.first("sid")).otherwise(pl.col("sid")).alias("sid")
    )
    assert not usid_unique(usid_table=broken).passed
