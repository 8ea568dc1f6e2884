"""Bundle components the HTTP service reads beyond what the ranking needs: who the known users are and what
they did, the items' titles, and the item vectors text search compares against.

Why here: the service is their only reader, so it owns their names and how they are built; the promotion asset
adds them to the bundle beside the ranking's components (one more entry each, nothing else changes). Every
one is optional: a bundle registered before they existed still serves, without that feature.
"""

from __future__ import annotations

import polars as pl

USER_HISTORIES = "user_histories"  # user_id, history (item ids, oldest first): the known users' histories
ITEM_TITLES = "item_titles"  # item_id, title: what a person reads beside an id
ITEM_EMBEDDINGS = "item_embeddings"  # the item vectors the codebooks tokenized (ItemEmbeddings): text search


def user_histories_table(splits: pl.DataFrame) -> pl.DataFrame:
    """Every user's interactions in time order (all splits: serving answers what comes after all of them)."""
    order = [column for column in ("user_id", "seq_index") if column in splits.columns]
    ordered = splits.sort(order, maintain_order=True) if order else splits
    return (
        ordered.group_by("user_id", maintain_order=True)
        .agg(pl.col("item_id").cast(pl.String).alias("history"))
        .with_columns(pl.col("user_id").cast(pl.String))
        .sort("user_id")
    )


def item_titles_table(catalog: pl.DataFrame) -> pl.DataFrame:
    """``item_id, title`` (null where the catalog has none)."""
    title = pl.col("title").cast(pl.String) if "title" in catalog.columns else pl.lit(None, dtype=pl.String)
    return catalog.select(pl.col("item_id").cast(pl.String), title.alias("title"))
