from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl

from sid_platform.data.schema import INTERACTION_REQUIRED, INTERACTION_SCHEMA, conform
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out


def _frame(rows):
    frame, _ = conform(pl.DataFrame(rows), INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source="t")
    return frame


def test_last_is_test_one_before_is_valid_in_time_order():
    t0 = datetime(2014, 1, 1, tzinfo=UTC)
    rows = [
        {"user_id": "u", "item_id": str(i), "timestamp": t0 + timedelta(days=d)}
        for i, d in [(1, 3), (2, 1), (3, 2), (4, 0)]
    ]
    splits = leave_one_out(_frame(rows)).filter(pl.col("user_id") == "u")
    assert splits["item_id"].to_list() == ["4", "2", "3", "1"]
    assert splits["split"].to_list() == ["train", "train", "valid", "test"]


def test_ties_are_broken_by_position_then_item_id_on_every_run():
    t = datetime(2014, 1, 1, tzinfo=UTC)
    rows = [
        {"user_id": "u", "item_id": "b", "timestamp": t, "position": 1},
        {"user_id": "u", "item_id": "c", "timestamp": t},
        {"user_id": "u", "item_id": "a", "timestamp": t, "position": 1},
        {"user_id": "u", "item_id": "d", "timestamp": t, "position": 0},
    ]
    first = leave_one_out(_frame(rows))
    again = leave_one_out(_frame(rows[::-1]))
    assert first["item_id"].to_list() == again["item_id"].to_list() == ["c", "d", "a", "b"]


def test_short_users_train_only_and_sequences_built_from_splits():
    rows = [{"user_id": "long", "item_id": x, "position": p} for p, x in enumerate("abcd")]
    rows += [{"user_id": "short", "item_id": x, "position": p} for p, x in enumerate("ab")]
    splits = leave_one_out(_frame(rows))
    assert splits.filter(pl.col("user_id") == "short")["split"].to_list() == ["train", "train"]
    vocab = ItemVocab(["a", "b", "c", "d"])
    seqs = UserSequences.from_splits(splits, vocab)
    assert seqs.valid.user_ids == seqs.test.user_ids == ["long"]
    np.testing.assert_array_equal(seqs.valid.histories[0], [0, 1])
    np.testing.assert_array_equal(seqs.test.histories[0], [0, 1, 2])
    assert seqs.valid.targets.tolist() == [2] and seqs.test.targets.tolist() == [3]
    assert sorted(len(s) for s in seqs.train) == [2, 2]
