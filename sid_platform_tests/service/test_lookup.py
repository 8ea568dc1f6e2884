"""One set of tests for every ``LookupStore``: the in-process dicts and DynamoDB (moto's server on loopback).

The same calls, the same answers: a USID table written in batches (more rows than one DynamoDB batch write or
batch get takes), the per-request lookups both ways, namespaces kept apart, and a table written once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from sid_platform.semantic_ids.usid import build_usid_table
from sid_platform.service.lookup import (
    DynamoDBLookupStore,
    InProcessLookupStore,
    LookupStore,
    sync_usid_table,
    usid_namespace,
    usid_prefixes,
    usid_rows,
)


def _table(n: int = 230, seed: int = 0) -> pl.DataFrame:
    codes = np.random.default_rng(seed).integers(0, 4, size=(n, 3))  # 64 code tuples: collisions, shared prefixes
    return build_usid_table([f"item{i:04d}" for i in range(n)], codes, "tok")


@pytest.fixture(params=["in_process", "dynamodb"])
def store(request: pytest.FixtureRequest) -> Iterator[LookupStore]:
    if request.param == "in_process":
        yield InProcessLookupStore()
        return
    endpoint, session = request.getfixturevalue("moto_endpoint"), request.getfixturevalue("aws_session")
    yield DynamoDBLookupStore(f"usids-{uuid.uuid4().hex[:8]}", endpoint_url=endpoint, session=session, create=True)


def _expected_under(table: pl.DataFrame) -> dict[str, list[str]]:
    under: dict[str, list[str]] = {}
    for item, sid in usid_rows(table):
        for prefix in usid_prefixes(sid):
            under.setdefault(prefix, []).append(item)
    return {prefix: sorted(items) for prefix, items in under.items()}


def test_prefixes_of_a_usid_leave_the_suffix_out():
    assert usid_prefixes("3-14-7-0") == ["3", "3-14", "3-14-7"]


def test_a_batch_written_table_is_read_back_both_ways(store: LookupStore):
    table = _table()
    namespace = usid_namespace(table)
    assert isinstance(store, LookupStore) and not store.is_written(namespace)
    assert store.write_usids(namespace, usid_rows(table)) == table.height
    assert store.is_written(namespace)
    items = table["item_id"].to_list()
    assert store.sids(namespace, items) == dict(usid_rows(table))  # 230 keys: more than one batch get
    # A request's lookup: unknown ids are absent, duplicates are fine.
    asked = [items[5], "nope", items[5], items[200]]
    assert store.sids(namespace, asked) == {items[5]: table["sid"][5], items[200]: table["sid"][200]}
    for prefix, under in _expected_under(table).items():
        assert store.items_under(namespace, prefix) == under, prefix
    assert store.items_under(namespace, "9") == [] and store.sids(namespace, []) == {}


def test_namespaces_are_kept_apart_and_a_written_table_is_not_written_again(store: LookupStore):
    old, new = _table(seed=0), _table(n=40, seed=1)
    first = sync_usid_table(store, old)
    second = sync_usid_table(store, new)
    assert first != second
    assert store.sids(first, ["item0039"]) == {"item0039": old["sid"][39]}
    assert store.sids(second, ["item0039"]) == {"item0039": new["sid"][39]}
    assert store.sids(second, ["item0100"]) == {}  # only in the old table
    assert store.items_under(second, "0") == _expected_under(new).get("0", [])
    assert sync_usid_table(store, old) == first == usid_namespace(old)  # already there: nothing rewritten
    assert store.sids("unwritten", ["item0001"]) == {} and not store.is_written("unwritten")
