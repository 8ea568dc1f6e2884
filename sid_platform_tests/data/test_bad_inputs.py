"""Every malformed input gets a clear answer and loses nothing: one row per input, with its expected outcome.

Each case runs what the ingest asset runs (the loader, both suites, ``require_usable``) on files written
here. The outcome is either an error of ours (never a library's) whose short message names the file, and
the line where there is one, or a load whose rejected rows are named by table, file, line and field, with
every quarantine entry naming its own table's file and ingested + quarantined rows == the source's rows.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from sid_platform.data.amazon_raw import load_amazon_raw
from sid_platform.data.files import SourceError
from sid_platform.data.generic import load_generic
from sid_platform.data.schema import SchemaError, rejected_rows
from sid_platform.data.validation import NoUsableRowsError, ValidatedData, require_usable, validate_loaded

Entry = tuple[str, str, int, str]  # table, file name, line, field
T0 = 1_400_000_000  # 2014-05-13T16:53:20Z
DEEP = "[" * 100_000 + "]" * 100_000
REVIEWS = "reviews_Toy_5.json.gz"
META = "meta_Toy.json.gz"
KEYS = "user_id,item_id,timestamp,position"  # the field a duplicate is quarantined under


@dataclass(frozen=True)
class Case:
    """One malformed input: the files (``events``/``items`` for the generic loader, else raw Amazon), and
    either the error (a regex, the line it must name) or the rows quarantined and noted."""

    files: dict[str, str | bytes]
    error: str | None = None
    line: int | None = None
    quarantined: set[Entry] = field(default_factory=set)
    noted: set[Entry] = field(default_factory=set)  # a field set to null, the row kept
    rows: dict[str, int] = field(default_factory=dict)  # data rows of the source per table
    check: Callable[[ValidatedData], object] | None = None

    @property
    def raw_amazon(self) -> bool:
        return REVIEWS in self.files


def csv(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def reviews(*extra: dict) -> str:
    base = [
        {"reviewerID": "U1", "asin": "A", "overall": 5.0, "unixReviewTime": T0},
        {"reviewerID": "U1", "asin": "B", "overall": 4.0, "unixReviewTime": T0 + 100},
        {"reviewerID": "U2", "asin": "A", "overall": 3.0, "unixReviewTime": T0 + 200},
    ]
    return "\n".join(json.dumps(r) for r in [*base, *extra]) + "\n"


def meta(*extra: str) -> str:
    base = [
        "{'asin': 'A', 'title': 'Nail Polish', 'categories': [['Beauty', 'Nails']], 'price': 9.99}",
        "{'asin': 'B', 'title': 'Cream', 'categories': [['Beauty', 'Skin']]}",
    ]
    return "\n".join([*base, *extra]) + "\n"


def times(*expected: str) -> Callable[[ValidatedData], None]:
    """A check that the ingested timestamps are these instants (UTC, ISO), in file order."""

    def check(data: ValidatedData) -> None:
        assert data.interactions["timestamp"].to_list() == [
            datetime.fromisoformat(t).replace(tzinfo=UTC) for t in expected
        ]

    return check


EVENTS = "user_id,item_id,timestamp"
CASES: dict[str, Case] = {
    "empty file": Case({"events.csv": ""}, error="empty; it needs a header line"),
    "header only": Case({"events.csv": csv(EVENTS)}, error="no data rows"),
    "header-only items file": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}"), "items.csv": csv("item_id,title")}, error="no data rows"
    ),
    "ragged rows": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}", f"u1,b,{T0 + 1},extra", f"u2,a,{T0 + 2}", "u2,b")},
        quarantined={("interactions", "events.csv", 3, "*"), ("interactions", "events.csv", 5, "*")},
        rows={"interactions": 4},
    ),
    "latin-1 bytes": Case(
        {"events.csv": csv("user_id,item_id", "u1,a").encode() + "u2,caf\xe9\n".encode("latin-1")},
        error="not UTF-8 text.*iconv",
        line=3,
    ),
    "byte-order mark": Case(
        {"events.csv": "\ufeff" + csv(EVENTS, f"u1,a,{T0}", f"u1,b,{T0 + 1}")},
        rows={"interactions": 2},
        check=times("2014-05-13T16:53:20", "2014-05-13T16:53:21"),
    ),
    "CRLF line ends and a quoted field over two lines": Case(
        {"events.csv": f'user_id,item_id,timestamp,note\r\nu1,a,{T0},"two\r\nlines"\r\nu1,b,{T0 + 1},x\r\n'},
        rows={"interactions": 2},
        check=lambda data: data.quarantine.height == 0 and times("2014-05-13T16:53:20", "2014-05-13T16:53:21")(data),
    ),
    "truncated gzip": Case(
        {"events.csv.gz": gzip.compress(csv(EVENTS, *(f"u{i},a,{T0}" for i in range(2000))).encode())[:300]},
        error="not a complete gzip file",
    ),
    "epoch seconds in a text column": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}", f"u1,b, {T0 + 60}.0")},
        rows={"interactions": 2},
        check=times("2014-05-13T16:53:20", "2014-05-13T16:54:20"),
    ),
    "ISO timestamps with and without offsets": Case(
        {
            "events.csv": csv(
                EVENTS, "u1,a,2014-05-13T16:53:20Z", "u1,b,2014-05-13 18:53:21+02:00", "u2,a,2014-05-13T16:53:22.5"
            )
        },
        rows={"interactions": 3},
        check=times("2014-05-13T16:53:20", "2014-05-13T16:53:21", "2014-05-13T16:53:22.500000"),
    ),
    "mixed timestamps in one column": Case(
        {"events.csv": csv(EVENTS, "u1,a,2014-05-13", f"u1,b,{T0}", "u2,a,2014-05-13 16:53:21", "u2,b,2014/05/14")},
        rows={"interactions": 4},
        check=times("2014-05-13T00:00:00", "2014-05-13T16:53:20", "2014-05-13T16:53:21", "2014-05-14T00:00:00"),
    ),
    "non-numeric timestamp first": Case(
        {"events.csv": csv(EVENTS, "u1,a,soon", f"u1,b,{T0}", f"u2,a,{T0 + 1}")},
        quarantined={("interactions", "events.csv", 2, "timestamp")},
        rows={"interactions": 3},
    ),
    "non-numeric position": Case(
        {"events.csv": csv("user_id,item_id,position", "u1,a,0", "u1,b,third", "u1,c,2.0")},
        quarantined={("interactions", "events.csv", 3, "position")},
        rows={"interactions": 3},
        check=lambda data: data.interactions["position"].to_list() == [0, 2],
    ),
    "missing required column": Case(
        {"events.csv": csv("user_id,timestamp", f"u1,{T0}")}, error=r"required column\(s\) \['item_id'\] not found"
    ),
    "null and blank user ids": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}", f",b,{T0 + 1}", f"  ,a,{T0 + 2}", f"u2,b,{T0 + 3}")},
        quarantined={("interactions", "events.csv", 3, "user_id"), ("interactions", "events.csv", 4, "user_id")},
        rows={"interactions": 4},
    ),
    "duplicate rows": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}", f"u1,b,{T0 + 1}", f"u1,a,{T0}")},
        quarantined={("interactions", "events.csv", 4, KEYS)},
        rows={"interactions": 3},
    ),
    "JSON line nested 100,000 deep": Case(
        {
            "events.jsonl": '{"user_id": "u1", "item_id": "a"}\n{"user_id": '
            + DEEP
            + '}\n{"user_id": "u2", "item_id": "b"}\n'
        },
        quarantined={("interactions", "events.jsonl", 2, "*")},
        rows={"interactions": 3},
    ),
    "raw meta line nested 100,000 deep": Case(
        {REVIEWS: reviews(), META: meta('{"asin": "C", "related": ' + DEEP + "}")},
        quarantined={("items", META, 3, "*")},
        rows={"interactions": 3, "items": 3},
    ),
    "giant raw meta line": Case(
        {
            REVIEWS: reviews({"reviewerID": "U2", "asin": "C", "overall": 4.0, "unixReviewTime": T0 + 300}),
            META: meta("{'asin': 'C', 'title': '" + "x" * 1_100_000 + "'}"),
        },
        # The item's line is too long to read; its review then names an item the catalog lacks.
        quarantined={("items", META, 3, "*"), ("interactions", REVIEWS, 4, "item_id")},
        rows={"interactions": 4, "items": 3},
    ),
    "invalid raw meta line": Case(
        {REVIEWS: reviews(), META: meta("{'asin': 'D', broken")},
        quarantined={("items", META, 3, "*")},
        rows={"interactions": 3, "items": 3},
    ),
    "rating out of range": Case(
        {REVIEWS: reviews({"reviewerID": "U2", "asin": "B", "overall": 7.0, "unixReviewTime": T0 + 300})},
        quarantined={("interactions", REVIEWS, 4, "weight")},
        rows={"interactions": 4, "items": 2},
    ),
    "weight infinite": Case(
        {"events.csv": csv("user_id,item_id,position,rating", "u1,a,0,4", "u1,b,1,inf")},
        quarantined={("interactions", "events.csv", 3, "weight")},
        rows={"interactions": 2},
    ),
    "price inf": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}", f"u1,b,{T0 + 1}"), "items.csv": csv("item_id,price", "a,3", "b,inf")},
        # The item goes, and with it the event that names it.
        quarantined={("items", "items.csv", 3, "price"), ("interactions", "events.csv", 3, "item_id")},
        rows={"interactions": 2, "items": 2},
    ),
    "price negative": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}"), "items.csv": csv("item_id,price", "a,3", "b,-2")},
        quarantined={("items", "items.csv", 3, "price")},
        rows={"interactions": 1, "items": 2},
    ),
    "price NaN": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}", f"u1,b,{T0 + 1}"), "items.csv": csv("item_id,price", "a,NaN", "b,2")},
        quarantined={("items", "items.csv", 2, "price"), ("interactions", "events.csv", 2, "item_id")},
        rows={"interactions": 2, "items": 2},
    ),
    "price in words": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}"), "items.csv": csv("item_id,price", "a,free")},
        noted={("items", "items.csv", 2, "price")},  # optional: nulled and noted, the item kept
        rows={"interactions": 1, "items": 1},
    ),
    "unknown item in interactions": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}", f"u1,ghost,{T0 + 1}"), "items.csv": csv("item_id,title", "a,Alpha")},
        quarantined={("interactions", "events.csv", 3, "item_id")},
        rows={"interactions": 2, "items": 1},
    ),
    "items file with bad rows": Case(
        {
            "events.csv": csv(EVENTS, f"u1,a,{T0}", f"u1,b,{T0 + 1}"),
            "items.csv": csv("item_id,title", "a,Alpha", "b,Beta", "a,Alpha again", ",Nameless", "c,Gamma,extra"),
        },
        quarantined={("items", "items.csv", n, f) for n, f in ((4, "item_id"), (5, "item_id"), (6, "*"))},
        rows={"interactions": 2, "items": 5},
    ),
    "all rows bad": Case(
        {"events.csv": csv(EVENTS, "u1,a,soon", "u1,b,later", "u2,a,never")},
        error=r"all 3 interactions rows were quarantined \(3 x timestamp: not a timestamp",
        line=2,
    ),
    "all items bad": Case(
        {"events.csv": csv(EVENTS, f"u1,a,{T0}"), "items.csv": csv("item_id,price", "a,-1")},
        error=r"items\.csv: all 1 items rows were quarantined",
        line=2,
    ),
}


def _write(folder: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        data = content.encode() if isinstance(content, str) else content
        if name.endswith(".gz") and isinstance(content, str):
            data = gzip.compress(data)
        (folder / name).write_bytes(data)


def _ingest(case: Case, folder: Path) -> ValidatedData:
    """What the ingest asset runs, on the case's files."""
    _write(folder, case.files)
    if case.raw_amazon:
        if META not in case.files:
            _write(folder, {META: meta()})
        loaded = load_amazon_raw(folder, "Toy")
    else:
        events = next(folder / name for name in case.files if name.startswith("events"))
        items = folder / "items.csv" if "items.csv" in case.files else None
        columns = {"weight": "rating"} if "rating" in str(case.files[events.name]) else {}
        loaded = load_generic(events, items, interaction_columns=columns)
    data = validate_loaded(loaded)
    require_usable(data)
    return data


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_a_bad_input_gets_a_clear_answer_and_loses_no_row(case: Case, tmp_path: Path):
    if case.error is not None:
        with pytest.raises((SourceError, SchemaError, NoUsableRowsError)) as caught:
            _ingest(case, tmp_path)
        message = str(caught.value)
        named = [name for name in case.files if str(tmp_path / name) in message]
        assert named, f"no file named in: {message}"
        assert case.line is None or f"line {case.line}" in message, message
        assert len(message) < 500 and "\n" not in message and "Traceback" not in message
        assert re.search(case.error, message), message
        return
    data = _ingest(case, tmp_path)
    q = data.quarantine
    entries = {
        (table, Path(source).name, row, name)
        for table, source, row, name, kept in q.drop("reason", "raw").iter_rows()
        if not kept
    }
    notes = {(t, Path(s).name, r, f) for t, s, r, f, kept in q.drop("reason", "raw").iter_rows() if kept}
    assert entries == case.quarantined, q.to_dicts()
    assert notes == case.noted, q.to_dicts()
    # Every entry names its own table's file, and no row is lost.
    files = _files(case)
    assert all(Path(source).name == files[table] for table, source in q.select("table", "source").iter_rows())
    ingested = {"interactions": data.interactions.height, "items": data.items.height}
    for table, rows in case.rows.items():
        assert ingested[table] + rejected_rows(q, table) == rows, (table, q.to_dicts())
    assert q["reason"].is_not_null().all()
    if case.check is not None:
        assert case.check(data) is not False


def _files(case: Case) -> dict[str, str]:
    if case.raw_amazon:
        return {"interactions": REVIEWS, "items": META}
    events = next(name for name in case.files if name.startswith("events"))
    return {"interactions": events, "items": "items.csv" if "items.csv" in case.files else events}


def test_the_table_covers_the_inputs_the_tester_tried():
    wanted = {
        "empty file", "header only", "ragged rows", "latin-1 bytes", "byte-order mark",
        "CRLF line ends and a quoted field over two lines", "epoch seconds in a text column",
        "ISO timestamps with and without offsets", "mixed timestamps in one column", "non-numeric timestamp first",
        "missing required column", "null and blank user ids", "duplicate rows", "raw meta line nested 100,000 deep",
        "giant raw meta line", "invalid raw meta line", "price inf", "price negative", "price NaN",
        "rating out of range", "unknown item in interactions", "items file with bad rows", "all rows bad",
    }  # fmt: skip
    assert wanted <= set(CASES)


def test_each_quarantine_entry_says_why(tmp_path: Path):
    data = _ingest(CASES["items file with bad rows"], tmp_path)
    reasons = dict(zip(data.quarantine["row"], data.quarantine["reason"], strict=True))
    assert reasons == {
        4: "duplicate of an earlier row; first kept",
        5: "required field is empty; row quarantined",
        6: "3 fields where the header has 2; row quarantined",
    }
    assert pl.Series(list(reasons.values())).str.len_chars().max() < 120  # type: ignore[operator]
