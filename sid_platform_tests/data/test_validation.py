"""The Great Expectations suites: what they flag goes to quarantine; what stays passes them."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl

from sid_platform.data.schema import (
    INTERACTION_REQUIRED,
    INTERACTION_SCHEMA,
    ITEM_REQUIRED,
    ITEM_SCHEMA,
    LoadedData,
    conform,
)
from sid_platform.data.validation import (
    interaction_expectations,
    item_expectations,
    quarantine_invalid,
    run_suite,
    validate_loaded,
)


def _interactions(rows: list[dict]) -> pl.DataFrame:
    frame, _ = conform(pl.DataFrame(rows), INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="t")
    return frame


def test_interaction_suite_quarantines_each_kind_of_bad_row():
    t = datetime(2014, 5, 1, tzinfo=UTC)
    frame = _interactions(
        [
            {"user_id": "u1", "item_id": "a", "timestamp": t, "position": 0},
            {"user_id": "u1", "item_id": "a", "timestamp": t, "position": 0},  # exact duplicate of row 0
            {"user_id": "u1", "item_id": "zzz", "timestamp": t, "position": 1},  # not in the catalog
            {"user_id": "u2", "item_id": "b", "timestamp": datetime(1970, 1, 2, tzinfo=UTC), "position": 0},  # unit bug
            {"user_id": "u2", "item_id": "a", "timestamp": t, "position": -1},  # negative position
            {"user_id": "u3", "item_id": "b", "timestamp": t, "position": 0},
        ]
    )
    expectations = interaction_expectations(["a", "b"])
    clean, quarantine, report = quarantine_invalid(frame, "interactions", "t", expectations)
    assert not report.success
    assert clean.select("user_id", "item_id").rows() == [("u1", "a"), ("u3", "b")]  # first copy of the duplicate kept
    # Rows are named 1-based, as a person counts them in the source.
    reasons = dict(zip(quarantine["row"], quarantine["reason"], strict=True))
    assert set(reasons) == {2, 3, 4, 5}
    assert "duplicate" in reasons[2]
    assert "in_set" in reasons[3] and "between" in reasons[4] and "between" in reasons[5]
    assert "_row" not in clean.columns
    assert run_suite(clean, "interactions", expectations).success


def test_item_suite_flags_malformed_category_paths_and_duplicate_ids():
    frame, _ = conform(
        pl.DataFrame(
            {
                "item_id": ["a", "b", "c", "a"],
                "categories": [["Beauty", "Nails"], ["Beauty", ""], ["Beauty", "A > B"], ["Beauty"]],
                "price": [1.0, 2.0, 3.0, 4.0],
            }
        ),
        ITEM_SCHEMA,
        ITEM_REQUIRED,
        table="items",
        source="t",
    )
    clean, quarantine, _ = quarantine_invalid(frame, "items", "t", item_expectations())
    assert clean["item_id"].to_list() == ["a"]
    assert clean["price"].to_list() == [1.0]
    assert sorted(quarantine["row"].to_list()) == [2, 3, 4]
    assert run_suite(clean, "items", item_expectations()).success


def test_validating_a_load_checks_interactions_against_the_clean_catalog():
    t = datetime(2014, 5, 1, tzinfo=UTC)
    items, loader_rejects = conform(
        pl.DataFrame({"item_id": ["a", "b", "b"], "title": ["A", "B", "B again"]}),
        ITEM_SCHEMA,
        ITEM_REQUIRED,
        table="items",
        source="t",
    )
    interactions = _interactions(
        [
            {"user_id": "u1", "item_id": "a", "timestamp": t, "position": 0},
            {"user_id": "u1", "item_id": "b", "timestamp": t, "position": 1},  # b's first copy stays in the catalog
            {"user_id": "u2", "item_id": "c", "timestamp": t, "position": 0},  # not in the catalog
        ]
    )
    data = validate_loaded(LoadedData(interactions, items, loader_rejects, "t"))
    assert data.items["item_id"].to_list() == ["a", "b"] and data.interactions["item_id"].to_list() == ["a", "b"]
    assert data.quarantined("items") == 1 and data.quarantined("interactions") == 1
    assert data.quarantine.height == loader_rejects.height + 2 and data.source == "t"
    assert not data.interactions_report.success and not data.items_report.success


def test_suite_passes_the_synthetic_data(synthetic):
    items = synthetic.items
    assert run_suite(items, "items", item_expectations()).success
    assert run_suite(
        synthetic.interactions, "interactions", interaction_expectations(items["item_id"].to_list())
    ).success


def test_real_beauty_passes_both_suites_with_nothing_quarantined(real_data_dir):
    from sid_platform.data.p5 import load_p5

    beauty = load_p5(real_data_dir, "beauty")
    items, q_items, _ = quarantine_invalid(beauty.items, "items", "beauty", item_expectations())
    inter, q_inter, report = quarantine_invalid(
        beauty.interactions, "interactions", "beauty", interaction_expectations(items["item_id"].to_list())
    )
    assert report.success and q_items.height == 0 and q_inter.height == 0
    assert (items.height, inter.height) == (12_101, 198_502)
