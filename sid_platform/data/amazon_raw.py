"""Loader for the publisher's raw Amazon 2014 files (``reviews_<Category>_5.json.gz``, ``meta_<Category>.json.gz``).

The review lines are JSON; the meta lines are Python literals (single quotes), which are parsed with
``ast.literal_eval`` (a literal parser that cannot run code), never ``eval``, and only after a length and
a nesting-depth check, so a hostile line is quarantined instead of exhausting the parser. Files are used
where they are; given an address and a SHA-256 they are downloaded first.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import polars as pl

from sid_platform.data.files import LongLine, download, find_file, numbered_lines, parse_object, too_long
from sid_platform.data.schema import (
    INTERACTION_ORDERING,
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


# The star rating a review carries (``overall``).
RATINGS = (1.0, 5.0)


def parse_record(line: str) -> dict:
    """A JSON object, or a Python dict literal as in the meta files; anything else (too deep included) raises
    ValueError."""
    return parse_object(line, python_literals=True)


def _rating_problem(value: object) -> str | None:
    """Why a numeric ``overall`` is not a star rating, or None. A missing rating is allowed; one that is not a
    number is left to ``conform``, which nulls the weight and notes it."""
    try:
        stars = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    if not RATINGS[0] <= stars <= RATINGS[1]:  # NaN fails too
        return f"overall {value!r} is outside {RATINGS[0]:g}-{RATINGS[1]:g} stars"
    return None


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
        if isinstance(line, LongLine):
            issues.append(quarantine_row("interactions", reviews_path, number, "*", too_long(line), line.head))
            continue
        try:
            record = parse_record(line)
        except ValueError as err:
            issues.append(quarantine_row("interactions", reviews_path, number, "*", str(err), line))
            continue
        if problem := _rating_problem(record.get("overall")):
            issues.append(quarantine_row("interactions", reviews_path, number, "weight", problem, line))
            continue
        stamp = record.get("unixReviewTime")
        if not isinstance(stamp, int) or isinstance(stamp, bool) or not 0 <= stamp < 10**12:
            issues.append(
                quarantine_row(
                    "interactions",
                    reviews_path,
                    number,
                    "timestamp",
                    f"unixReviewTime {stamp!r} is not an epoch-seconds integer",
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
        rows,
        schema={
            "_row": pl.Int64,
            "user_id": pl.Utf8,
            "item_id": pl.Utf8,
            "timestamp": pl.Int64,
            "weight": pl.Utf8,
            "event_type": pl.Utf8,
        },
    )
    interactions, q_inter = conform(
        interactions,
        INTERACTION_SCHEMA,
        INTERACTION_REQUIRED,
        table="interactions",
        source=str(reviews_path),
        must_parse=INTERACTION_ORDERING,
    )

    meta_path = find_file([meta_name, f"meta_{category}.json"], folders, what)
    wanted = set(interactions["item_id"].to_list()) if restrict_catalog_to_interacted else None
    items = []
    for number, line in numbered_lines(meta_path):
        if isinstance(line, LongLine):
            issues.append(quarantine_row("items", meta_path, number, "*", too_long(line), line.head))
            continue
        try:
            record = parse_record(line)
        except ValueError as err:
            issues.append(quarantine_row("items", meta_path, number, "*", str(err), line))
            continue
        asin = _str_or_none(record.get("asin"))
        if wanted is not None and asin not in wanted:
            continue
        paths = record.get("categories")
        first_path = paths[0] if isinstance(paths, list) and paths and isinstance(paths[0], list) else []
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
    catalog = pl.DataFrame(
        items,
        schema={"_row": pl.Int64, "categories": pl.List(pl.Utf8)}
        | {name: pl.Utf8 for name in ("item_id", "title", "brand", "price", "description", "image_url")},
    )
    catalog, q_items = conform(catalog, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source=str(meta_path))
    quarantine = pl.concat([quarantine_frame(issues), q_inter, q_items])
    return LoadedData(
        interactions,
        catalog,
        quarantine,
        source=f"amazon_raw:{category}",
        interactions_file=str(reviews_path),
        items_file=str(meta_path),
    )


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
