"""Loader for the Amazon 2014 5-core sets in P5's format (``sequential_data.txt`` + ``datamaps.json``).

Beauty also has ``<dataset>_item_meta.jsonl`` with title, brand, category path and price; Sports has
sequences only, so its catalog is ids alone. P5 orders each user's items chronologically but ships no
timestamps, so interactions carry ``position`` and a null ``timestamp``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from sid_platform.data.files import find_file, numbered_lines, open_text
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


def dataset_folders(data_dir: Path, dataset: str) -> list[Path]:
    """Layouts we accept: the shared ``amazon2014/<dataset>``, a bare ``<dataset>``, or the folder itself."""
    return [data_dir / "amazon2014" / dataset, data_dir / dataset, data_dir]


def load_p5(data_dir: Path, dataset: str = "beauty") -> LoadedData:
    folders = dataset_folders(data_dir, dataset)
    what = f"P5 dataset {dataset!r}"
    seq_path = find_file(["sequential_data.txt"], folders, what)
    maps_path = find_file(["datamaps.json"], folders, what)
    with open_text(maps_path) as handle:
        datamaps = json.load(handle)
    id2user: dict[str, str] = datamaps["id2user"]
    id2item: dict[str, str] = datamaps["id2item"]

    issues: list[dict] = []
    users, items, positions, rows = [], [], [], []
    for number, line in numbered_lines(seq_path):
        tokens = line.split()
        raw_user = tokens[0]
        user = id2user.get(raw_user)
        if user is None:
            issues.append(
                quarantine_row(
                    "interactions", seq_path, number, "user_id", f"user {raw_user!r} not in datamaps id2user", line
                )
            )
            continue
        position = 0
        for token in tokens[1:]:
            item = id2item.get(token)
            if item is None:
                issues.append(
                    quarantine_row(
                        "interactions", seq_path, number, "item_id", f"item {token!r} not in datamaps id2item", line
                    )
                )
                continue
            users.append(user)
            items.append(item)
            positions.append(position)
            rows.append(number)
            position += 1
        if position == 0:
            issues.append(quarantine_row("interactions", seq_path, number, "item_id", "user has no items", line))
    interactions = pl.DataFrame({"_row": rows, "user_id": users, "item_id": items, "position": positions})
    interactions = interactions.with_columns(pl.lit("purchase").alias("event_type"), pl.lit(1.0).alias("weight"))
    interactions, q_inter = conform(
        interactions, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source=str(seq_path)
    )

    catalog = pl.DataFrame({"item_id": [id2item[k] for k in sorted(id2item, key=int)]})
    meta_rows: list[dict] = []
    try:
        meta_path = find_file([f"{dataset}_item_meta.jsonl"], folders, what)
    except FileNotFoundError:
        meta_path = None  # Sports: no item text, ids only.
    if meta_path is not None:
        for number, line in numbered_lines(meta_path):
            try:
                record = json.loads(line)
                meta_rows.append(
                    {
                        "_row": number,
                        "item_id": str(record["asin"]),
                        "title": clean_text(record.get("title")),
                        "brand": clean_text(record.get("brand")),
                        "categories": [clean_text(c) for c in record.get("categories") or []] or None,
                        "price": record.get("price"),
                    }
                )
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                issues.append(
                    quarantine_row("items", meta_path, number, "asin", f"unreadable metadata line: {err}", line)
                )
    if meta_rows:
        meta = pl.DataFrame(meta_rows, infer_schema_length=None)
        catalog = catalog.join(meta, on="item_id", how="left").with_columns(pl.col("_row").fill_null(0))
    catalog, q_items = conform(catalog, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source=str(meta_path or maps_path))
    quarantine = pl.concat([quarantine_frame(issues), q_inter, q_items])
    return LoadedData(interactions, catalog, quarantine, source=f"p5:{dataset}")
