"""The prefix index agrees with the USID table and survives a Parquet round trip."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from sid_platform.semantic_ids import PrefixIndex, build_prefix_index, build_usid_table


@pytest.fixture(scope="module")
def table() -> pl.DataFrame:
    codes = np.random.default_rng(0).integers(4, size=(400, 3))
    return build_usid_table([f"i{i:03d}" for i in range(400)], codes, "v")


def test_every_item_sits_once_per_level_under_its_own_prefix(table):
    index = build_prefix_index(table)
    codes = table.select("c1", "c2", "c3").to_numpy()
    assert index.levels == 3
    for level in range(1, 4):
        members = np.concatenate(list(index.by_level[level - 1].values()))
        assert sorted(members.tolist()) == list(range(len(table)))
        for row in range(0, len(table), 37):
            assert row in index.items_under(tuple(codes[row, :level])).tolist()
        for prefix, items in index.by_level[level - 1].items():
            assert (codes[items, :level] == prefix).all()
    assert index.items_under((9, 9)).size == 0
    with pytest.raises(ValueError, match="prefix length"):
        index.items_under((0, 0, 0, 0))


def test_sizes_per_level(table):
    sizes = build_prefix_index(table).sizes_per_level()
    codes = table.select("c1", "c2", "c3").to_numpy()
    for level in range(1, 4):
        _, counts = np.unique(codes[:, :level], axis=0, return_counts=True)
        assert sizes[level] == {"n_prefixes": len(counts), "mean_items": counts.mean(), "max_items": counts.max()}


def test_frame_round_trips_through_parquet(table, tmp_path):
    index = build_prefix_index(table)
    frame = index.to_frame()
    assert frame.columns == ["level", "prefix", "item_ids", "item_indices"]
    first = frame.row(0, named=True)
    assert first["item_ids"] == [index.item_ids[i] for i in first["item_indices"]]
    frame.write_parquet(tmp_path / "prefix.parquet")
    again = PrefixIndex.from_frame(pl.read_parquet(tmp_path / "prefix.parquet"))
    assert again.item_ids == index.item_ids
    for level in range(3):
        assert again.by_level[level].keys() == index.by_level[level].keys()
        for prefix, items in index.by_level[level].items():
            np.testing.assert_array_equal(again.by_level[level][prefix], items)
