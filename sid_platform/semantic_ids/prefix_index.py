"""Items under every Semantic-ID prefix: what constrained decoding and per-level analyses walk.

Item index = row of the USID table (the catalog order it was built in). Stored as Parquet through
``to_frame`` with one row per (level, prefix) and the item ids and indices under it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from sid_platform.semantic_ids.usid import code_columns, table_levels


def prefix_string(prefix: Sequence[int]) -> str:
    return "-".join(str(int(code)) for code in prefix)


@dataclass(frozen=True)
class PrefixIndex:
    item_ids: list[str]
    by_level: list[dict[tuple[int, ...], np.ndarray]]  # by_level[l - 1]: prefix of length l → item indices

    @property
    def levels(self) -> int:
        return len(self.by_level)

    def items_under(self, prefix: Sequence[int]) -> np.ndarray:
        """Indices of the items whose codes start with ``prefix`` (length 1..levels); empty if none."""
        if not 1 <= len(prefix) <= self.levels:
            raise ValueError(f"prefix length must be 1..{self.levels}, got {len(prefix)}")
        key = tuple(int(code) for code in prefix)
        return self.by_level[len(key) - 1].get(key, np.empty(0, dtype=np.int64))

    def sizes_per_level(self) -> dict[int, dict]:
        out = {}
        for level, groups in enumerate(self.by_level, start=1):
            sizes = np.array([len(items) for items in groups.values()])
            out[level] = {
                "n_prefixes": len(groups),
                "mean_items": float(sizes.mean()) if len(sizes) else 0.0,
                "max_items": int(sizes.max()) if len(sizes) else 0,
            }
        return out

    def to_frame(self) -> pl.DataFrame:
        """Columns ``level, prefix, item_ids, item_indices``: one row per prefix, levels in order."""
        ids = np.asarray(self.item_ids, dtype=object)
        rows = [
            (level, prefix_string(prefix), ids[items].tolist(), items.tolist())
            for level, groups in enumerate(self.by_level, start=1)
            for prefix, items in groups.items()
        ]
        return pl.DataFrame(
            rows,
            schema={
                "level": pl.Int64,
                "prefix": pl.String,
                "item_ids": pl.List(pl.String),
                "item_indices": pl.List(pl.Int64),
            },
            orient="row",
        )

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> PrefixIndex:
        levels = int(frame["level"].max()) if len(frame) else 0
        by_level: list[dict[tuple[int, ...], np.ndarray]] = [{} for _ in range(levels)]
        n_items = int(frame.filter(pl.col("level") == 1)["item_indices"].list.len().sum()) if levels else 0
        item_ids: list[str | None] = [None] * n_items
        for level, prefix, ids, indices in frame.iter_rows():
            items = np.asarray(indices, dtype=np.int64)
            by_level[level - 1][tuple(int(code) for code in prefix.split("-"))] = items
            if level == 1:
                for index, item in zip(items.tolist(), ids, strict=True):
                    item_ids[index] = item
        if any(item is None for item in item_ids):
            raise ValueError("prefix frame's level-1 rows do not cover item indices 0..n-1")
        return cls([str(item) for item in item_ids], by_level)


def build_prefix_index(table: pl.DataFrame) -> PrefixIndex:
    """Every prefix of length 1..L of the table's codes → indices of the items under it, ascending."""
    levels = table_levels(table)
    codes = table.select(code_columns(levels)).to_numpy().astype(np.int64)
    by_level = []
    for level in range(1, levels + 1):
        if not len(codes):
            by_level.append({})
            continue
        prefixes, inverse = np.unique(codes[:, :level], axis=0, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse, minlength=len(prefixes)))[:-1]
        by_level.append(
            {
                tuple(int(c) for c in prefix): items
                for prefix, items in zip(prefixes, np.split(order, bounds), strict=True)
            }
        )
    return PrefixIndex(table["item_id"].to_list(), by_level)
