import polars as pl
import pytest

from sid_platform.data.schema import (
    INTERACTION_REQUIRED,
    INTERACTION_SCHEMA,
    ITEM_REQUIRED,
    ITEM_SCHEMA,
    SchemaError,
    conform,
)


def test_missing_required_column_names_source_and_columns():
    frame = pl.DataFrame({"uid": ["a"], "item_id": ["x"]})
    with pytest.raises(SchemaError, match=r"events\.csv.*\['user_id'\].*uid"):
        conform(frame, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="events.csv")


def test_unreadable_optional_field_is_nulled_and_noted_row_kept():
    frame = pl.DataFrame({"_row": [2, 3], "item_id": ["a", "b"], "price": ["1.5", "cheap"]})
    items, quarantine = conform(frame, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source="items.csv")
    assert items["item_id"].to_list() == ["a", "b"]
    assert items["price"].to_list() == [1.5, None]
    assert quarantine.select("source", "row", "field", "raw").row(0) == ("items.csv", 3, "price", "cheap")
    assert "set to null" in quarantine["reason"][0]


def test_null_required_field_moves_row_to_quarantine():
    frame = pl.DataFrame({"_row": [2, 3, 4], "user_id": ["u", None, "w"], "item_id": ["a", "b", "c"]})
    rows, quarantine = conform(frame, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="log.csv")
    assert rows["user_id"].to_list() == ["u", "w"]
    assert quarantine.select("row", "field").row(0) == (3, "user_id")


def test_timestamps_from_epoch_seconds_and_iso_strings():
    numeric = pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "timestamp": [1_400_000_000]})
    text = pl.DataFrame(
        {"user_id": ["u", "v"], "item_id": ["a", "b"], "timestamp": ["2014-05-13T16:53:20", "not a date"]}
    )
    a, _ = conform(numeric, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="n")
    b, q = conform(text, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="t")
    assert a["timestamp"][0] == b["timestamp"][0]
    assert str(a["timestamp"].dtype) == "Datetime(time_unit='us', time_zone='UTC')"
    assert q["field"].to_list() == ["timestamp"] and q["raw"].to_list() == ["not a date"]
    # A CSV is read as text: epoch seconds there (MovieLens' timestamp column) are times too, not bad values.
    as_text = pl.DataFrame({"user_id": ["u", "v"], "item_id": ["a", "b"], "timestamp": ["1400000000", " 1400000000.0"]})
    c, q = conform(as_text, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="c")
    assert c["timestamp"].to_list() == [a["timestamp"][0]] * 2 and q.height == 0
