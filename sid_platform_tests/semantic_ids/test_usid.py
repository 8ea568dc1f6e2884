"""The USID table is unique and deterministic, lookups round-trip, stability counts what moved."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sid_platform.semantic_ids import UsidLookup, build_usid_table, collision_rate, sid_stability


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 300),
    levels=st.integers(1, 4),
    codebook=st.integers(1, 4),  # tiny codebooks: many collisions
    seed=st.integers(0, 2**32 - 1),
)
def test_suffix_makes_every_full_id_unique(n, levels, codebook, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(codebook, size=(n, levels))
    item_ids = [f"item{i}" for i in rng.permutation(n)]
    table = build_usid_table(item_ids, codes, "v1")
    assert table["item_id"].to_list() == item_ids  # catalog order kept
    assert table["sid"].n_unique() == n
    np.testing.assert_array_equal(table.select([f"c{i + 1}" for i in range(levels)]).to_numpy(), codes)
    # Within a colliding group the suffixes are 0..m-1 in item-id order.
    groups = table.group_by([f"c{i + 1}" for i in range(levels)]).agg(pl.col("item_id").sort_by("suffix"), "suffix")
    for ids, suffixes in zip(groups["item_id"].to_list(), groups["suffix"].to_list(), strict=True):
        assert sorted(suffixes) == list(range(len(ids)))
        assert ids == sorted(ids)


def test_table_columns_and_sid_format():
    table = build_usid_table(["b", "a", "c"], np.array([[12, 200, 3, 77], [12, 200, 3, 77], [1, 2, 3, 4]]), "abc")
    assert table.columns == ["item_id", "c1", "c2", "c3", "c4", "suffix", "sid", "tokenizer_version"]
    assert table.schema["c1"] == pl.Int64 and table.schema["suffix"] == pl.Int64
    assert table["sid"].to_list() == ["12-200-3-77-1", "12-200-3-77-0", "1-2-3-4-0"]
    assert table["tokenizer_version"].unique().to_list() == ["abc"]
    with pytest.raises(ValueError, match="unique"):
        build_usid_table(["a", "a"], np.zeros((2, 2), dtype=np.int64), "v")


def test_collision_rate_counts_items_in_shared_tuples():
    codes = np.array([[0, 1], [0, 1], [0, 2], [3, 3], [3, 3], [3, 3], [5, 5]])
    assert collision_rate(codes) == pytest.approx(5 / 7)
    assert collision_rate(np.arange(10).reshape(5, 2)) == 0.0


def test_lookup_round_trips_one_by_one_and_vectorized():
    rng = np.random.default_rng(3)
    codes = rng.integers(3, size=(500, 3))
    item_ids = [f"i{i}" for i in range(500)]
    lookup = UsidLookup(build_usid_table(item_ids, codes, "v"))
    assert len(lookup) == 500 and lookup.levels == 3 and lookup.tokenizer_version == "v"
    for row, item in enumerate(item_ids):
        sid = lookup.sid_of(item)
        assert sid[:3] == tuple(codes[row]) and lookup.item_of(sid) == item and lookup.index_of(item) == row
    indices = rng.permutation(500)
    sids = lookup.sids_of_indices(indices)
    np.testing.assert_array_equal(lookup.indices_of_sids(sids), indices)
    unknown = np.array([[0, 0, 0, 10**6], [9, 9, 9, 0], [-1, 0, 0, 0]])
    assert lookup.indices_of_sids(unknown).tolist() == [-1, -1, -1]
    with pytest.raises(KeyError):
        lookup.item_of((9, 9, 9, 0))
    with pytest.raises(KeyError):
        lookup.sid_of("nope")


def test_stability_is_zero_for_identical_tables_and_counts_a_hand_made_change():
    item_ids = [f"i{i}" for i in range(10)]
    codes = np.arange(30).reshape(10, 3)
    old = build_usid_table(item_ids, codes, "v1")
    same = sid_stability(old, old)
    assert same["sid_changed"] == 0.0 and same["first_code_changed"] == 0.0
    assert same["n_common"] == 10 and not same["tokenizer_version_changed"]

    moved = codes.copy()
    moved[0, 0] = 999  # first code changes (so the full ID does)
    moved[1, 2] = 999  # only the last code changes
    new = build_usid_table(item_ids[:8] + ["new"], np.vstack([moved[:8], [[7, 7, 7]]]), "v2")
    report = sid_stability(old, new)
    assert report["n_common"] == 8 and report["n_added"] == 1 and report["n_removed"] == 2
    assert report["sid_changed"] == pytest.approx(2 / 8)
    assert report["first_code_changed"] == pytest.approx(1 / 8)
    assert report["tokenizer_version_changed"]
