"""Loaders: the real files when present, and hand-made broken files for every failure path."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
from pathlib import Path

import polars as pl
import pytest

from sid_platform.data.amazon_raw import RemoteFile, load_amazon_raw, parse_record
from sid_platform.data.files import ChecksumError, DataNotFoundError, download
from sid_platform.data.generic import load_generic
from sid_platform.data.p5 import load_p5
from sid_platform.data.schema import SchemaError


def _write_gz(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(text)
    return path


def _p5_folder(root: Path) -> Path:
    folder = root / "amazon2014" / "toy"
    maps = {
        "id2user": {"1": "UA", "2": "UB"},
        "id2item": {"1": "I1", "2": "I2", "3": "I3"},
        "user2id": {},
        "item2id": {},
    }
    _write_gz(folder / "datamaps.json.gz", json.dumps(maps))
    # CRLF like the real Beauty file; user 2 has an item id that datamaps does not know; user 9 is unknown.
    _write_gz(folder / "sequential_data.txt.gz", "1 1 2 3\r\n2 3 99 1\r\n9 1 2\r\n")
    meta = [
        {"asin": "I1", "title": "Tom &amp; Jerry Soap", "brand": "B", "categories": ["Beauty", "Bath"], "price": 3.0},
        "this line is not JSON",
        {"asin": "I2", "title": "Lotion", "categories": ["Beauty", "Skin"], "price": 5.5},
    ]
    _write_gz(folder / "toy_item_meta.jsonl.gz", "\n".join(m if isinstance(m, str) else json.dumps(m) for m in meta))
    return folder


def test_p5_loader_quarantines_bad_rows_with_file_row_and_field(tmp_path: Path):
    _p5_folder(tmp_path)
    data = load_p5(tmp_path, "toy")
    assert data.interactions.filter(pl.col("user_id") == "UA")["item_id"].to_list() == ["I1", "I2", "I3"]
    assert data.interactions.filter(pl.col("user_id") == "UB")["position"].to_list() == [0, 1]
    q = data.quarantine
    unknown_item = q.filter(pl.col("reason").str.contains("'99'"))
    assert unknown_item.select("row", "field").row(0) == (2, "item_id")
    assert unknown_item["source"][0].endswith("sequential_data.txt.gz")
    assert q.filter(pl.col("field") == "user_id")["row"].to_list() == [3]
    assert q.filter(pl.col("table") == "items")["row"].to_list() == [2]
    titles = dict(zip(data.items["item_id"], data.items["title"], strict=True))
    assert titles == {"I1": "Tom & Jerry Soap", "I2": "Lotion", "I3": None}  # entities unescaped; I3 has no metadata


def test_missing_file_says_where_it_looked_and_how_to_point_elsewhere(tmp_path: Path):
    with pytest.raises(DataNotFoundError) as err:
        load_p5(tmp_path, "beauty")
    message = str(err.value)
    assert str(tmp_path / "amazon2014" / "beauty" / "sequential_data.txt") in message
    assert "SID_DATA_DIR" in message


def test_meta_python_literals_parse_safely():
    assert parse_record("{'asin': 'X', 'categories': [['Beauty', 'Nails']], 'price': 2.5}")["categories"] == [
        ["Beauty", "Nails"]
    ]
    with pytest.raises(ValueError):
        parse_record("__import__('os').system('touch /tmp/sid_platform_pwned')")
    assert not Path("/tmp/sid_platform_pwned").exists()


def _raw_files(folder: Path) -> tuple[Path, Path]:
    reviews = [
        {"reviewerID": "U1", "asin": "A", "overall": 5.0, "unixReviewTime": 1400000000},
        {"reviewerID": "U1", "asin": "B", "overall": 4.0, "unixReviewTime": 1400000100},
        {"reviewerID": "U2", "asin": "A", "overall": "great", "unixReviewTime": 1400000200},
        {"reviewerID": "U2", "asin": "B", "overall": 3.0, "unixReviewTime": "yesterday"},
    ]
    meta = [
        "{'asin': 'A', 'title': 'Nail &amp; Polish', 'categories': [['Beauty', 'Nails'], ['Other']], 'price': 9.99, 'imUrl': 'http://x/a.jpg'}",
        "{'asin': 'B', 'title': 'Cream', 'categories': [['Beauty', 'Skin']], 'description': 'soft'}",
        "{'asin': 'C', 'title': 'never bought'}",
        "{'asin': 'D', broken",
    ]
    r = _write_gz(folder / "reviews_Toy_5.json.gz", "\n".join(json.dumps(x) for x in reviews))
    m = _write_gz(folder / "meta_Toy.json.gz", "\n".join(meta))
    return r, m


def test_amazon_raw_loader(tmp_path: Path):
    _raw_files(tmp_path)
    data = load_amazon_raw(tmp_path, "Toy")
    assert data.interactions.height == 3
    assert data.items.sort("item_id")["item_id"].to_list() == ["A", "B"]  # C never interacted with
    a = data.items.filter(pl.col("item_id") == "A").row(0, named=True)
    assert (
        a["categories"] == ["Beauty", "Nails"] and a["title"] == "Nail & Polish" and a["image_url"] == "http://x/a.jpg"
    )
    q = data.quarantine
    assert set(zip(q["row"], q["field"], strict=True)) >= {(4, "timestamp"), (3, "weight"), (4, "*")}


class _Server:
    """A real HTTP server on loopback serving one folder."""

    def __init__(self, folder: Path) -> None:
        handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder), **k)  # noqa: E731
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def test_amazon_raw_downloads_with_checksum(tmp_path: Path):
    served = tmp_path / "served"
    reviews, meta = _raw_files(served)
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    server = _Server(served)
    try:
        data_dir = tmp_path / "data"
        data = load_amazon_raw(
            data_dir,
            "Toy",
            reviews=RemoteFile(f"{server.url}/{reviews.name}", sha(reviews)),
            meta=RemoteFile(f"{server.url}/{meta.name}", sha(meta)),
        )
        assert data.interactions.height == 3 and (data_dir / reviews.name).is_file()
        with pytest.raises(ChecksumError, match="SHA-256"):
            download(f"{server.url}/{meta.name}", "0" * 64, tmp_path / "other" / meta.name)
        assert not (tmp_path / "other" / meta.name).exists()
        assert not list((tmp_path / "other").glob("*.part"))
    finally:
        server.close()


def test_generic_csv_with_column_mapping_and_bad_rows(tmp_path: Path):
    (tmp_path / "events.csv").write_text(
        "uid,sku,ts,kind\nu1,a,2020-01-01T10:00:00,view\nu1,b,2020-01-02T10:00:00,buy\nu2,,2020-01-03T10:00:00,view\nu2,a,soon,view\n"
    )
    (tmp_path / "items.csv").write_text("sku,name,cats,cost\na,Alpha,Home > Kitchen,3\nb,Beta,Home > Bath,free\n")
    data = load_generic(
        tmp_path / "events.csv",
        tmp_path / "items.csv",
        interaction_columns={"user_id": "uid", "item_id": "sku", "timestamp": "ts", "event_type": "kind"},
        item_columns={"item_id": "sku", "title": "name", "categories": "cats", "price": "cost"},
    )
    assert data.interactions.height == 2  # the rows with no item id and with an unreadable timestamp are quarantined
    assert data.items.filter(pl.col("item_id") == "a")["categories"].to_list() == [["Home", "Kitchen"]]
    q = data.quarantine
    found = set(zip(q["table"], q["row"], q["field"], strict=True))
    assert {("interactions", 4, "item_id"), ("interactions", 5, "timestamp"), ("items", 3, "price")} <= found


def test_generic_schema_drift_is_a_clear_error(tmp_path: Path):
    (tmp_path / "events.jsonl").write_text('{"user": "u1", "item": "a"}\n')
    with pytest.raises(SchemaError, match=r"events\.jsonl.*user_id <- 'uid'"):
        load_generic(tmp_path / "events.jsonl", interaction_columns={"user_id": "uid", "item_id": "item"})


def test_generic_jsonl_broken_line_is_quarantined(tmp_path: Path):
    (tmp_path / "events.jsonl").write_text(
        '{"user_id": "u1", "item_id": "a"}\n{"user_id": "u1", "item_id"\n{"user_id": "u2", "item_id": "b"}\n'
    )
    data = load_generic(tmp_path / "events.jsonl")
    assert data.interactions.height == 2
    assert data.quarantine.select("row", "field").rows() == [(2, "*")]
    assert data.items["item_id"].sort().to_list() == ["a", "b"]


@pytest.mark.real_data
def test_real_beauty_and_sports_match_published_counts(real_data_dir: Path):
    beauty = load_p5(real_data_dir, "beauty")
    assert beauty.interactions.height == 198_502
    assert beauty.interactions["user_id"].n_unique() == 22_363
    assert beauty.items.height == 12_101 and beauty.quarantine.height == 0
    assert beauty.items["title"].is_not_null().sum() == 12_094
    assert beauty.items["categories"].is_not_null().sum() == 12_101
    sports = load_p5(real_data_dir, "sports")
    assert (sports.interactions.height, sports.items.height) == (296_337, 18_357)
    assert sports.items["title"].is_null().all()


def test_rows_flagged_by_the_suite_are_named_by_their_line_in_the_source_file(tmp_path: Path):
    from sid_platform.data.validation import interaction_expectations, quarantine_invalid

    (tmp_path / "events.csv").write_text("user_id,item_id,position\nu1,a,0\nu1,b,1\nu1,ghost,2\nu2,a,0\n")
    data = load_generic(tmp_path / "events.csv")
    clean, quarantine, _ = quarantine_invalid(
        data.interactions, "interactions", "events.csv", interaction_expectations(["a", "b"])
    )
    assert quarantine.select("row", "field").rows() == [(4, "item_id")]  # line 4 of the file holds 'ghost'
    assert clean.columns == list(data.interactions.drop("_row").columns)
