"""The USID table: every item's Semantic ID, made unique by a suffix, and lookups both ways.

Items whose embeddings quantize to the same L codes would share an ID and the generative retriever
could not tell them apart. The suffix (0, 1, 2, … within a colliding group, in item-id order) is the
extra last token that separates them; it is deterministic, so re-running on the same codes gives the
same table.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl


def code_columns(levels: int) -> list[str]:
    return [f"c{level}" for level in range(1, levels + 1)]


def check_codes(codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(codes)
    if codes.ndim != 2 or not np.issubdtype(codes.dtype, np.integer):
        raise ValueError(f"codes must be a 2-D integer array [n_items, levels], got {codes.dtype} {codes.shape}")
    if codes.size and codes.min() < 0:
        raise ValueError("codes must be non-negative")
    return codes.astype(np.int64, copy=False)


def collision_rate(codes: np.ndarray) -> float:
    """Share of items whose full code tuple is shared with at least one other item."""
    codes = check_codes(codes)
    if not len(codes):
        return 0.0
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return float((counts[inverse.ravel()] > 1).mean())


def build_usid_table(item_ids: Sequence[str], codes: np.ndarray, tokenizer_version: str) -> pl.DataFrame:
    """One row per item in the given order: ``item_id, c1..cL, suffix, sid, tokenizer_version``."""
    codes = check_codes(codes)
    ids = np.asarray(list(item_ids), dtype=object)
    if len(ids) != len(codes):
        raise ValueError(f"{len(ids)} item ids for {len(codes)} code rows")
    if len(set(ids.tolist())) != len(ids):
        raise ValueError("item ids must be unique")
    # Sort by the code tuple, then item id; the suffix is the position within each run of equal tuples.
    order = np.lexsort((ids.astype(str), *codes.T[::-1]))
    ordered = codes[order]
    starts = np.ones(len(codes), dtype=bool)
    starts[1:] = (ordered[1:] != ordered[:-1]).any(1)
    run_start = np.maximum.accumulate(np.where(starts, np.arange(len(codes)), 0))
    suffix = np.empty(len(codes), dtype=np.int64)
    suffix[order] = np.arange(len(codes)) - run_start
    columns = code_columns(codes.shape[1])
    frame = pl.DataFrame(
        {
            "item_id": pl.Series(ids.tolist(), dtype=pl.String),
            **{name: pl.Series(codes[:, i], dtype=pl.Int64) for i, name in enumerate(columns)},
            "suffix": pl.Series(suffix, dtype=pl.Int64),
        }
    )
    sid = pl.concat_str([pl.col(name) for name in [*columns, "suffix"]], separator="-")
    return frame.with_columns(sid.alias("sid"), pl.lit(tokenizer_version, dtype=pl.String).alias("tokenizer_version"))


def extend_usid_table(
    table: pl.DataFrame, item_ids: Sequence[str], codes: np.ndarray, tokenizer_version: str
) -> pl.DataFrame:
    """The table with new items appended (cold start): existing rows, and so their IDs, are unchanged.

    Each new item takes the smallest suffix not yet used under its code tuple (by the table or by a new item
    before it, in the given order), so full IDs stay unique without renumbering anyone. ``codes`` must come
    from the tokenizer that made the table (``tokenizer_version``): IDs of two tokenizers do not mix.
    """
    codes = check_codes(codes)
    levels = table_levels(table)
    ids = [str(item) for item in item_ids]
    if codes.shape != (len(ids), levels):
        raise ValueError(f"codes must be [{len(ids)}, {levels}] for {len(ids)} new items, got {codes.shape}")
    versions = set(table["tokenizer_version"].unique().to_list())
    if versions - {tokenizer_version}:
        raise ValueError(f"the table comes from tokenizer {sorted(versions)}, the new codes from {tokenizer_version!r}")
    known = set(table["item_id"].to_list())
    repeated = [item for item in ids if item in known]
    if repeated or len(set(ids)) != len(ids):
        raise ValueError(f"new item ids must be unique and not in the table; e.g. {repeated[:5] or ids[:5]}")
    columns = code_columns(levels)
    used: dict[tuple[int, ...], set[int]] = {}
    for *prefix, suffix in table.select([*columns, "suffix"]).iter_rows():
        used.setdefault(tuple(prefix), set()).add(int(suffix))
    suffixes = []
    for row in codes.tolist():
        taken = used.setdefault(tuple(row), set())
        suffix = next(s for s in range(len(taken) + 1) if s not in taken)
        taken.add(suffix)
        suffixes.append(suffix)
    added = pl.DataFrame(
        {
            "item_id": pl.Series(ids, dtype=pl.String),
            **{name: pl.Series(codes[:, i], dtype=pl.Int64) for i, name in enumerate(columns)},
            "suffix": pl.Series(suffixes, dtype=pl.Int64),
        }
    )
    sid = pl.concat_str([pl.col(name) for name in [*columns, "suffix"]], separator="-")
    added = added.with_columns(sid.alias("sid"), pl.lit(tokenizer_version, dtype=pl.String).alias("tokenizer_version"))
    return pl.concat([table, added.select(table.columns)], how="vertical")


def table_levels(table: pl.DataFrame) -> int:
    """How many code columns (c1, c2, …) a USID table has."""
    levels = 0
    while f"c{levels + 1}" in table.columns:
        levels += 1
    if not levels:
        raise ValueError(f"not a USID table: no c1 column among {table.columns}")
    return levels


class UsidLookup:
    """Item ↔ full Semantic ID (codes plus suffix), one way by dict, both ways vectorized.

    Item index = row of the table, i.e. the catalog order the table was built in. A full ID is packed
    into one int64 (mixed radix over the largest value per position) so arrays of IDs map to items by a
    binary search.
    """

    def __init__(self, table: pl.DataFrame) -> None:
        self.levels = table_levels(table)
        self.item_ids: list[str] = table["item_id"].to_list()
        self.sids = table.select([*code_columns(self.levels), "suffix"]).to_numpy().astype(np.int64)
        versions = table["tokenizer_version"].unique().to_list() if len(table) else []
        if len(versions) > 1:
            raise ValueError(f"a USID table must come from one tokenizer, found versions {versions}")
        self.tokenizer_version: str | None = versions[0] if versions else None
        self._index = {item: row for row, item in enumerate(self.item_ids)}
        self._radix = self.sids.max(0) + 1 if len(self.sids) else np.ones(self.levels + 1, dtype=np.int64)
        if float(np.prod(self._radix.astype(np.float64))) >= 2.0**62:
            raise ValueError("codes too large to pack a Semantic ID into one int64")
        keys = self._pack(self.sids)
        self._key_order = np.argsort(keys, kind="stable")
        self._sorted_keys = keys[self._key_order]
        if len(keys) > 1 and (np.diff(self._sorted_keys) == 0).any():
            raise ValueError("two items share a full Semantic ID; build the table with build_usid_table")

    def __len__(self) -> int:
        return len(self.item_ids)

    def _pack(self, sids: np.ndarray) -> np.ndarray:
        key = np.zeros(len(sids), dtype=np.int64)
        for position, radix in enumerate(self._radix):
            key = key * radix + sids[:, position]
        return key

    def index_of(self, item_id: str) -> int:
        return self._index[item_id]

    def sid_of(self, item_id: str) -> tuple[int, ...]:
        """The full ID (c1, …, cL, suffix) of one item; KeyError if the item is not in the table."""
        return tuple(int(v) for v in self.sids[self._index[item_id]])

    def item_of(self, sid: Sequence[int]) -> str:
        """The item a full ID (codes and suffix) names; KeyError if none."""
        row = int(self.indices_of_sids(np.asarray([sid], dtype=np.int64))[0])
        if row < 0:
            raise KeyError(f"no item has Semantic ID {tuple(sid)}")
        return self.item_ids[row]

    def sids_of_indices(self, indices: np.ndarray) -> np.ndarray:
        """[m] item indices → [m, levels + 1] full IDs."""
        return self.sids[np.asarray(indices, dtype=np.int64)]

    def indices_of_sids(self, sids: np.ndarray) -> np.ndarray:
        """[m, levels + 1] full IDs → [m] item indices, -1 where no item has that ID (e.g. a generated one)."""
        sids = np.asarray(sids, dtype=np.int64).reshape(-1, self.levels + 1)
        out = np.full(len(sids), -1, dtype=np.int64)
        valid = ((sids >= 0) & (sids < self._radix)).all(1)
        if not valid.any() or not len(self._sorted_keys):
            return out
        keys = self._pack(sids[valid])
        pos = np.minimum(np.searchsorted(self._sorted_keys, keys), len(self._sorted_keys) - 1)
        hit = self._sorted_keys[pos] == keys
        out[np.flatnonzero(valid)[hit]] = self._key_order[pos[hit]]
        return out


def sid_stability(old_table: pl.DataFrame, new_table: pl.DataFrame) -> dict:
    """How much a re-tokenization moved the items present in both tables.

    ``sid_changed``: share whose full ID string changed; ``first_code_changed``: share whose c1 changed
    (the coarse code a retriever's beam commits to first). Both are NaN when no item is shared.
    """
    joined = old_table.select("item_id", "sid", "c1").join(
        new_table.select("item_id", "sid", "c1"), on="item_id", how="inner", suffix="_new"
    )
    n = len(joined)
    old_versions = set(old_table["tokenizer_version"].unique().to_list())
    new_versions = set(new_table["tokenizer_version"].unique().to_list())
    return {
        "n_common": n,
        "n_added": len(new_table) - n,
        "n_removed": len(old_table) - n,
        "sid_changed": float((joined["sid"] != joined["sid_new"]).mean()) if n else float("nan"),
        "first_code_changed": float((joined["c1"] != joined["c1_new"]).mean()) if n else float("nan"),
        "tokenizer_version_changed": old_versions != new_versions,
    }
