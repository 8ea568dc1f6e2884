"""A request to the served model, checked before anything is ranked, and the answer for what cannot be ranked.

Why: every input gets a clear answer. Each check raises ``InvalidRequest`` with one line naming the field
(the bundle turns it into MLflow's INVALID_PARAMETER_VALUE, HTTP 400). A history the model cannot rank (empty,
or only items outside its catalog) is answered with the most popular training items and says so
(``fallback="popularity"``), and ids outside the catalog are reported back (``unknown_items``) rather than
dropped in silence.

Limits, so one request cannot hold the server: ``k`` from 1 to ``MAX_K``, at most ``MAX_ROWS`` histories of
at most ``MAX_HISTORY`` items each. A ``k`` above the catalog's size returns the whole catalog.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from sid_platform.retrieval.pipeline import Retrieval
from sid_platform.serving.rankers import RANKERS, BlendRanking, Ranker, RouterRanking, serving_catalog

DEFAULT_K = 10
MAX_K = 1000
MAX_ROWS = 10_000
MAX_HISTORY = 10_000
HISTORY = "history"
POPULARITY = "popularity"  # the bundle component (item_id, count; most popular first) and the fallback's name
EMPTY_HISTORY = "empty_history"  # the fallback of a bundle without popularity: the model's answer to no history
OUTPUT_COLUMNS = ("items", "sids", "fallback", "unknown_items")


class InvalidRequest(ValueError):
    """A request the client can fix; the message is one line that names the field."""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def parse_k(params: Mapping[str, Any] | None) -> int:
    """``params["k"]`` (default ``DEFAULT_K``): a whole number from 1 to ``MAX_K``."""
    value = (params or {}).get("k", DEFAULT_K)
    whole = isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        whole, value = True, int(value)
    if not whole or not 1 <= int(value) <= MAX_K:
        raise InvalidRequest(f"params.k must be a whole number from 1 to {MAX_K}, got {_shown(value)}")
    return int(value)


def parse_histories(model_input: Any) -> list[list[str]]:
    """The ``history`` column as lists of item ids (oldest first); a null history counts as empty."""
    if not isinstance(model_input, pd.DataFrame):
        raise InvalidRequest(
            f"the input must be a table with a {HISTORY!r} column (lists of item ids), got {type(model_input).__name__}"
        )
    if HISTORY not in model_input.columns:
        columns = ", ".join(map(str, model_input.columns)) or "none"
        raise InvalidRequest(
            f"the input has no {HISTORY!r} column (lists of item ids, oldest first); columns: {columns}"
        )
    if len(model_input) > MAX_ROWS:
        raise InvalidRequest(f"at most {MAX_ROWS} histories per request, got {len(model_input)}")
    return [_history(row, value) for row, value in enumerate(model_input[HISTORY])]


def _history(row: int, value: Any) -> list[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, str | bytes):
        raise InvalidRequest(
            f"history[{row}] is a string ({_shown(value)}), not a list of item ids; send JSON "
            "(a CSV cell cannot hold a list)"
        )
    if not isinstance(value, list | tuple | np.ndarray | pd.Series):
        raise InvalidRequest(f"history[{row}] must be a list of item ids, got {type(value).__name__}")
    items = list(value)
    if len(items) > MAX_HISTORY:
        raise InvalidRequest(f"history[{row}] has {len(items)} items; at most {MAX_HISTORY}")
    for position, item in enumerate(items):
        if not isinstance(item, str):
            raise InvalidRequest(
                f"history[{row}][{position}] must be an item id (a string), got {type(item).__name__} {_shown(item)}"
            )
    return [str(item) for item in items]


def popularity_table(splits: pl.DataFrame) -> pl.DataFrame:
    """Training interactions per item, most popular first (ties by item id): the bundle's fallback ranking."""
    train = splits.filter(pl.col("split") == "train") if "split" in splits.columns else splits
    counts = train.group_by("item_id").agg(pl.len().alias("count"))
    return counts.sort(["count", "item_id"], descending=[True, False])


def fallback(rank: Ranker, components: Mapping[str, Any], k: int) -> tuple[str, list[str]]:
    """Which fallback answers a history the model cannot rank, and its top ``k`` items."""
    table = components.get(POPULARITY)
    if isinstance(table, pl.DataFrame):
        return POPULARITY, table["item_id"].head(k).to_list()
    return EMPTY_HISTORY, rank([[]], k)[0]


@dataclass(frozen=True)
class ServedModel:
    """What every request needs, prepared once when the bundle loads: the ranking, its catalog, the SIDs."""

    rank: Ranker  # opened once (``RANKERS[name](components)``); a request only ranks
    components: Mapping[str, Any]
    catalog: frozenset[str]
    sid_of: Mapping[str, str]

    @classmethod
    def of(cls, components: Mapping[str, Any], serving: str) -> ServedModel:
        """The serving model ``serving`` (as the evaluation names it) over the bundle's ``components``."""
        if serving not in RANKERS:
            raise ValueError(f"the bundle cannot serve {serving!r}; it serves {', '.join(RANKERS)}")
        table = components.get("usid_table")
        sid_of: dict[str, str] = {}
        if isinstance(table, pl.DataFrame):
            sid_of = dict(zip(table["item_id"].to_list(), table["sid"].to_list(), strict=True))
        catalog = frozenset(serving_catalog(components, serving))
        return cls(RANKERS[serving](components), components, catalog, sid_of)

    def answer(self, histories: list[list[str]], k: int) -> pd.DataFrame:
        """One row per history: ``items`` (top ``k``), their ``sids``, the ``fallback`` used (null when the model
        ranked the history) and the history's ``unknown_items`` (ids outside the catalog, first appearance order)."""
        return self.answer_traced(histories, k)[0]

    def answer_traced(self, histories: list[list[str]], k: int) -> tuple[pd.DataFrame, Retrieval | None]:
        """``answer``, and for the router's rankings (and the blend) the retrieval behind it, one row per history the
        model ranked (those whose ``fallback`` is null, in order): an explanation reads it instead of retrieving
        again."""
        known = [[item for item in history if item in self.catalog] for history in histories]
        unknown = [list(dict.fromkeys(item for item in history if item not in self.catalog)) for history in histories]
        rankable = [row for row, history in enumerate(known) if history]
        ranked: dict[int, list[str]] = {}
        found = None
        if rankable:
            asked = [known[row] for row in rankable]
            if isinstance(self.rank, RouterRanking | BlendRanking):
                lists, found = self.rank.traced(asked, k)
            else:
                lists = self.rank(asked, k)
            ranked = dict(zip(rankable, lists, strict=True))
        used, default = fallback(self.rank, self.components, k) if len(rankable) < len(histories) else (None, [])
        items = [list(ranked.get(row, default)) for row in range(len(histories))]
        columns = {
            "items": items,
            "sids": [[self.sid_of.get(item) for item in row] for row in items],
            "fallback": [None if row in ranked else used for row in range(len(histories))],
            "unknown_items": unknown,
        }
        return pd.DataFrame({name: pd.Series(columns[name], dtype=object) for name in OUTPUT_COLUMNS}), found
