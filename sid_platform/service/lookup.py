"""The two lookups a Semantic-ID service keeps in a key-value store: item → USID, and USID prefix → items.

Why an interface: in one process they are two dicts built from the bundle's USID table; across a fleet of
replicas they live in a shared store (DynamoDB here), written once per USID table and read per request. The
service only talks to ``LookupStore``, so the adapter is a deployment choice and one set of interface tests
(``sid_platform_tests/service/test_lookup.py``) holds every implementation to the same behaviour.

A USID table is written under a *namespace* (``usid_namespace``: a hash of its rows), so the table a new champion
brings lands beside the old one: requests in flight on the old model keep reading the old rows, and a table
that is already there (a reload of the same codes, a rollback) is not written again. A namespace counts as
written only once its completion marker is, which is written last.

A USID is ``c1-…-cL-suffix``; its prefixes are the code strings ``c1``, ``c1-c2``, … ``c1-…-cL`` (no suffix).
``items_under`` returns item ids in ascending order.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

import polars as pl

DYNAMODB_BATCH_GET = 100  # DynamoDB's limit on keys per BatchGetItem


@runtime_checkable
class LookupStore(Protocol):
    """Item → USID and USID prefix → items, per namespace."""

    def write_usids(self, namespace: str, usids: Iterable[tuple[str, str]]) -> int:
        """Store ``(item_id, usid)`` rows and every prefix of each USID; returns the rows written."""
        ...

    def is_written(self, namespace: str) -> bool:
        """Whether a ``write_usids`` of ``namespace`` completed."""
        ...

    def sids(self, namespace: str, item_ids: Sequence[str]) -> dict[str, str]:
        """The USID of each known item among ``item_ids`` (unknown ids are absent)."""
        ...

    def items_under(self, namespace: str, prefix: str) -> list[str]:
        """Item ids (ascending) whose USID starts with the code prefix ``prefix`` (``"3"``, ``"3-14"``, …)."""
        ...


def usid_prefixes(usid: str) -> list[str]:
    """``"3-14-7-0"`` → ``["3", "3-14", "3-14-7"]``: the code prefixes, the suffix left out."""
    codes = usid.split("-")[:-1]
    return ["-".join(codes[:depth]) for depth in range(1, len(codes) + 1)]


def usid_rows(table: pl.DataFrame) -> list[tuple[str, str]]:
    """``(item_id, sid)`` rows of a USID table, in its order."""
    return list(zip(table["item_id"].cast(pl.String).to_list(), table["sid"].to_list(), strict=True))


def usid_namespace(table: pl.DataFrame) -> str:
    """16 hex digits of SHA-256 over the table's ``item_id``/``sid`` rows: same IDs, same namespace."""
    digest = hashlib.sha256()
    for item, sid in usid_rows(table):
        digest.update(f"{item}\t{sid}\n".encode())
    return digest.hexdigest()[:16]


def sync_usid_table(store: LookupStore, table: pl.DataFrame) -> str:
    """Write ``table`` into ``store`` unless its namespace is already there; returns the namespace."""
    namespace = usid_namespace(table)
    if not store.is_written(namespace):
        store.write_usids(namespace, usid_rows(table))
    return namespace


class InProcessLookupStore:
    """Dicts in this process: the default, and what a single replica needs."""

    def __init__(self) -> None:
        self._sids: dict[str, dict[str, str]] = {}
        self._under: dict[str, dict[str, list[str]]] = {}
        self._written: set[str] = set()
        self._lock = threading.Lock()

    def write_usids(self, namespace: str, usids: Iterable[tuple[str, str]]) -> int:
        sids = dict(usids)
        under: dict[str, list[str]] = {}
        for item, usid in sids.items():
            for prefix in usid_prefixes(usid):
                under.setdefault(prefix, []).append(item)
        with self._lock:  # readers see the namespace whole or not at all
            self._sids[namespace] = sids
            self._under[namespace] = {prefix: sorted(items) for prefix, items in under.items()}
            self._written.add(namespace)
        return len(sids)

    def is_written(self, namespace: str) -> bool:
        return namespace in self._written

    def sids(self, namespace: str, item_ids: Sequence[str]) -> dict[str, str]:
        table = self._sids.get(namespace, {})
        return {item: table[item] for item in item_ids if item in table}

    def items_under(self, namespace: str, prefix: str) -> list[str]:
        return list(self._under.get(namespace, {}).get(prefix, []))


class DynamoDBLookupStore:
    """One DynamoDB table (``pk`` hash key, ``sk`` range key, on-demand capacity) shared by every replica.

    Rows: ``<ns>#item#<item_id>`` / ``usid`` holds the USID; ``<ns>#prefix#<prefix>`` / ``<item_id>`` one row per
    item under a prefix (a query reads them, so no prefix is bounded by DynamoDB's 400 KB item limit);
    ``<ns>#meta`` / ``written``, the completion marker. Credentials and region come from boto3's usual chain
    (environment, the pod's role) unless a ``session`` is given.
    """

    def __init__(
        self,
        table_name: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        session: Any = None,
        create: bool = False,
    ) -> None:
        import boto3  # only the DynamoDB adapter needs it

        self._session = session or boto3.session.Session()
        self._resource = self._session.resource("dynamodb", endpoint_url=endpoint_url, region_name=region_name)
        self.table_name = table_name
        if create:
            self.ensure_table()
        self._table = self._resource.Table(table_name)

    def ensure_table(self) -> None:
        """Create the table (on-demand) unless it exists, and wait until it is active."""
        client = self._resource.meta.client
        try:
            client.describe_table(TableName=self.table_name)
            return
        except client.exceptions.ResourceNotFoundException:
            pass
        with contextlib.suppress(client.exceptions.ResourceInUseException):  # another replica created it first
            client.create_table(
                TableName=self.table_name,
                KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                AttributeDefinitions=[
                    {"AttributeName": "pk", "AttributeType": "S"},
                    {"AttributeName": "sk", "AttributeType": "S"},
                ],
                BillingMode="PAY_PER_REQUEST",
            )
        client.get_waiter("table_exists").wait(TableName=self.table_name)

    def write_usids(self, namespace: str, usids: Iterable[tuple[str, str]]) -> int:
        count = 0
        with self._table.batch_writer(overwrite_by_pkeys=["pk", "sk"]) as batch:  # 25 per request, retries
            for item, usid in usids:
                batch.put_item(Item={"pk": f"{namespace}#item#{item}", "sk": "usid", "usid": usid})
                for prefix in usid_prefixes(usid):
                    batch.put_item(Item={"pk": f"{namespace}#prefix#{prefix}", "sk": item})
                count += 1
        self._table.put_item(Item={"pk": f"{namespace}#meta", "sk": "written", "items": count})  # last
        return count

    def is_written(self, namespace: str) -> bool:
        found = self._table.get_item(Key={"pk": f"{namespace}#meta", "sk": "written"}, ConsistentRead=True)
        return "Item" in found

    def sids(self, namespace: str, item_ids: Sequence[str]) -> dict[str, str]:
        wanted = list(dict.fromkeys(item_ids))  # BatchGetItem refuses duplicate keys
        out: dict[str, str] = {}
        for start in range(0, len(wanted), DYNAMODB_BATCH_GET):
            keys = [
                {"pk": f"{namespace}#item#{item}", "sk": "usid"} for item in wanted[start : start + DYNAMODB_BATCH_GET]
            ]
            request: dict[str, Any] = {self.table_name: {"Keys": keys, "ProjectionExpression": "pk, usid"}}
            for attempt in range(8):
                answer = self._resource.batch_get_item(RequestItems=request)
                for row in answer["Responses"].get(self.table_name, []):
                    out[str(row["pk"]).split("#item#", 1)[1]] = str(row["usid"])
                request = answer.get("UnprocessedKeys") or {}
                if not request:
                    break
                time.sleep(0.01 * 2**attempt)  # throttled: back off, then ask for the rest
            else:
                raise RuntimeError(f"DynamoDB left {len(request[self.table_name]['Keys'])} keys unprocessed")
        return out

    def items_under(self, namespace: str, prefix: str) -> list[str]:
        from boto3.dynamodb.conditions import Key

        query: dict[str, Any] = {
            "KeyConditionExpression": Key("pk").eq(f"{namespace}#prefix#{prefix}"),
            "ProjectionExpression": "sk",
        }
        items: list[str] = []
        while True:
            page = self._table.query(**query)
            items.extend(str(row["sk"]) for row in page["Items"])
            if "LastEvaluatedKey" not in page:
                return sorted(items)
            query["ExclusiveStartKey"] = page["LastEvaluatedKey"]
