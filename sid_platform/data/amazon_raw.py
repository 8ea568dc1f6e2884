"""Loader for the publisher's raw Amazon 2014 files (``reviews_<Category>_5.json.gz``, ``meta_<Category>.json.gz``).

The review lines are JSON; the meta lines are Python literals (single quotes), which are parsed with
``ast.literal_eval`` (a literal parser that cannot run code), never ``eval``. Files are used where they
are; given an address and a SHA-256 they are downloaded first.
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sid_platform.data.files import download, find_file, numbered_lines
from sid_platform.data.schema import (
    INTERACTION_REQUIRED,
    INTERACTION_SCHEMA,
    ITEM_REQUIRED,
    ITEM_SCHEMA,
    LoadedData,
    clean_text,
    conform,
    quarantine_frame,
    quarantine_row,
)


@dataclass(frozen=True)
class RemoteFile:
    url: str
    sha256: str


def parse_record(line: str) -> dict:
    """A JSON object, or a Python dict literal as in the meta files; anything else raises ValueError."""
    try:
        record = json.loads(line)
    except json.JSONDecodeError:
        try:
            record = ast.literal_eval(line)
        except (ValueError, SyntaxError) as err:
            raise ValueError(f"neither JSON nor a Python literal ({err.__class__.__name__})") from err
    if not isinstance(record, dict):
        raise ValueError(f"expected an object, got {type(record).__name__}")
    return record


def load_amazon_raw(
    data_dir: Path,
    category: str,
    reviews: RemoteFile | None = None,
    meta: RemoteFile | None = None,
    restrict_catalog_to_interacted: bool = True,
) -> LoadedData:
    """Reviews become interactions (time from ``unixReviewTime``, weight from ``overall``); meta becomes items."""
    folders = [data_dir / "amazon2014" / "raw", data_dir]
    reviews_name, meta_name = f"reviews_{category}_5.json.gz", f"meta_{category}.json.gz"
    if reviews is not None:
        download(reviews.url, reviews.sha256, data_dir / reviews_name)
    if meta is not None:
        download(meta.url, meta.sha256, data_dir / meta_name)
    what = f"raw Amazon category {category!r}"
    reviews_path = find_file([reviews_name, f"reviews_{category}_5.json"], folders, what)

    issues: list[dict] = []
    rows = []
    for number, line in numbered_lines(reviews_path):
        try:
            record = parse_record(line)
        except ValueError as err:
            issues.append(quarantine_row("interactions", reviews_path, number, "*", str(err), line))
            continue
        stamp = record.get("unixReviewTime")
        if not isinstance(stamp, int) or isinstance(stamp, bool):
            issues.append(
                quarantine_row(
                    "interactions",
                    reviews_path,
                    number,
                    "timestamp",
                    f"unixReviewTime {stamp!r} is not an integer",
                    line,
                )
            )
            continue
        rows.append(
            {
                "_row": number,
                "user_id": _str_or_none(record.get("reviewerID")),
                "item_id": _str_or_none(record.get("asin")),
                "timestamp": stamp,
                "weight": _str_or_none(record.get("overall")),
                "event_type": "review",
            }
        )
    interactions = pl.DataFrame(
        rows, infer_schema_length=None, schema_overrides={"timestamp": pl.Int64, "weight": pl.Utf8}
    )
    interactions, q_inter = conform(
        interactions, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source=str(reviews_path)
    )

    meta_path = find_file([meta_name, f"meta_{category}.json"], folders, what)
    wanted = set(interactions["item_id"].to_list()) if restrict_catalog_to_interacted else None
    items = []
    for number, line in numbered_lines(meta_path):
        try:
            record = parse_record(line)
        except ValueError as err:
            issues.append(quarantine_row("items", meta_path, number, "*", str(err), line))
            continue
        asin = _str_or_none(record.get("asin"))
        if wanted is not None and asin not in wanted:
            continue
        paths = record.get("categories") or []
        first_path = paths[0] if paths and isinstance(paths[0], list) else []
        items.append(
            {
                "_row": number,
                "item_id": asin,
                "title": clean_text(record.get("title")),
                "brand": clean_text(record.get("brand")),
                "categories": [clean_text(c) for c in first_path] or None,
                "price": _str_or_none(record.get("price")),
                "description": clean_text(record.get("description")),
                "image_url": _str_or_none(record.get("imUrl")),
            }
        )
    catalog = pl.DataFrame(items, infer_schema_length=None, schema_overrides={"price": pl.Utf8})
    catalog, q_items = conform(catalog, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source=str(meta_path))
    quarantine = pl.concat([quarantine_frame(issues), q_inter, q_items])
    return LoadedData(interactions, catalog, quarantine, source=f"amazon_raw:{category}")


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
