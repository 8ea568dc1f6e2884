"""A request to the served model is checked field by field, and a history the model cannot rank is answered by
the popularity fallback and flagged, with the ids outside the catalog reported back."""

import numpy as np
import pandas as pd
import polars as pl
import pytest

from sid_platform.serving import (
    MAX_K,
    POPULARITY,
    InvalidRequest,
    ServedModel,
    parse_histories,
    parse_k,
    popularity_table,
)
from sid_platform.serving.requests import EMPTY_HISTORY, MAX_HISTORY, MAX_ROWS, OUTPUT_COLUMNS

CATALOG = frozenset("abcd")
SPLITS = pl.DataFrame({"item_id": ["c", "c", "a", "d", "a", "c", "b"], "split": ["train"] * 5 + ["test", "valid"]})


class FakeRanker:
    """Ranks every history the same way and records what it was asked (only histories it can rank)."""

    def __init__(self) -> None:
        self.calls: list[list[list[str]]] = []

    def __call__(self, histories, k):
        self.calls.append(histories)
        return [["d", "c", "b", "a"][:k] for _ in histories]


@pytest.mark.parametrize(
    ("params", "expected"),
    [(None, 10), ({}, 10), ({"k": 1}, 1), ({"k": MAX_K}, MAX_K), ({"k": np.int64(5)}, 5), ({"k": 3.0}, 3)],
)
def test_k_within_its_range_is_accepted(params, expected):
    assert parse_k(params) == expected


@pytest.mark.parametrize("k", [-1, 0, MAX_K + 1, 2.5, True, "5", None, float("nan")])
def test_k_outside_its_range_is_refused_in_one_line_naming_the_field(k):
    with pytest.raises(InvalidRequest, match=rf"^params.k must be a whole number from 1 to {MAX_K}, got "):
        parse_k({"k": k})


def test_histories_are_read_as_lists_of_ids_and_a_null_history_is_empty():
    frame = pd.DataFrame({"history": [["a", "b"], np.array(["c"]), (), None, float("nan")], "user": range(5)})
    assert parse_histories(frame) == [["a", "b"], ["c"], [], [], []]
    assert parse_histories(pd.DataFrame({"history": pd.Series([], dtype=object)})) == []


@pytest.mark.parametrize(
    ("model_input", "message"),
    [
        (
            pd.DataFrame({"histroy": [["a"]]}),
            "the input has no 'history' column (lists of item ids, oldest first); columns: histroy",
        ),
        ([["a"]], "the input must be a table with a 'history' column (lists of item ids), got list"),
        (pd.DataFrame({"history": ['["a", "b"]']}), 'history[0] is a string (\'["a", "b"]\'), not a list of item ids'),
        (pd.DataFrame({"history": [["a"], 7]}), "history[1] must be a list of item ids, got int"),
        (pd.DataFrame({"history": [["a", 3]]}), "history[0][1] must be an item id (a string), got int 3"),
        (pd.DataFrame({"history": [["a"] * (MAX_HISTORY + 1)]}), f"history[0] has {MAX_HISTORY + 1} items; at most"),
        (pd.DataFrame({"history": [[]] * (MAX_ROWS + 1)}), f"at most {MAX_ROWS} histories per request, got"),
    ],
)
def test_a_malformed_input_is_refused_in_one_line_naming_the_field(model_input, message):
    with pytest.raises(InvalidRequest) as caught:
        parse_histories(model_input)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_popularity_counts_training_interactions_most_popular_first():
    table = popularity_table(SPLITS)
    assert table["item_id"].to_list() == ["a", "c", "d"] and table["count"].to_list() == [2, 2, 1]  # ties by id


def test_unknown_ids_are_reported_and_unrankable_histories_get_the_flagged_fallback():
    rank = FakeRanker()
    components = {POPULARITY: popularity_table(SPLITS)}
    histories = [["a", "zz", "b", "zz", "yy"], [], ["xx"], ["c"]]
    out = ServedModel(rank, components, CATALOG, {"a": "0-1", "d": "3-0"}).answer(histories, 2)
    assert tuple(out.columns) == OUTPUT_COLUMNS and len(out) == 4
    assert rank.calls == [[["a", "b"], ["c"]]]  # only the rankable histories, their unknown ids left out
    assert out["items"].tolist() == [["d", "c"], ["a", "c"], ["a", "c"], ["d", "c"]]
    assert out["fallback"].tolist() == [None, POPULARITY, POPULARITY, None]
    assert out["unknown_items"].tolist() == [["zz", "yy"], [], ["xx"], []]
    assert out["sids"].tolist() == [["3-0", None], ["0-1", None], ["0-1", None], ["3-0", None]]


def test_without_popularity_the_fallback_is_the_models_answer_to_no_history_and_says_so():
    rank = FakeRanker()
    out = ServedModel(rank, {}, CATALOG, {}).answer([[], ["a"]], 3)
    assert out["fallback"].tolist() == [EMPTY_HISTORY, None] and out["items"].tolist() == [["d", "c", "b"]] * 2
    assert rank.calls == [[["a"]], [[]]]


def test_no_histories_give_no_rows_and_rank_nothing():
    rank = FakeRanker()
    out = ServedModel(rank, {POPULARITY: popularity_table(SPLITS)}, CATALOG, {}).answer([], 5)
    assert len(out) == 0 and tuple(out.columns) == OUTPUT_COLUMNS and rank.calls == []


def test_a_model_the_code_cannot_serve_is_refused_when_the_bundle_loads():
    with pytest.raises(ValueError, match="cannot serve 'gru4rec'; it serves sasrec, router_generative"):
        ServedModel.of({}, "gru4rec")
