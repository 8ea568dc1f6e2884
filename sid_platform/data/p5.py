"""Loader for the Amazon 2014 5-core sets in P5's format (``sequential_data.txt`` + ``datamaps.json``).

Beauty also has ``<dataset>_item_meta.jsonl`` with title, brand, category path and price; Sports has
sequences only, so its catalog is ids alone. P5 orders each user's items chronologically but ships no
timestamps, so interactions carry ``position`` and a null ``timestamp``.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from sid_platform.data.files import (
    LongLine,
    SourceError,
    find_file,
    numbered_lines,
    open_text,
    parse_object,
    reading,
    too_long,
)
from sid_platform.data.schema import (
    INTERACTION_REQUIRED,
    INTERACTION_SCHEMA,
    ITEM_REQUIRED,
    ITEM_SCHEMA,
    LoadedData,
    SchemaError,
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
    id2user, id2item = _read_datamaps(maps_path)

    issues: list[dict] = []
    users, items, positions, rows = [], [], [], []
    for number, line in numbered_lines(seq_path):
        if isinstance(line, LongLine):
            issues.append(quarantine_row("interactions", seq_path, number, "*", too_long(line), line.head))
            continue
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
    interactions = pl.DataFrame(
        {"_row": rows, "user_id": users, "item_id": items, "position": positions},
        schema={"_row": pl.Int64, "user_id": pl.Utf8, "item_id": pl.Utf8, "position": pl.Int64},
    )
    interactions = interactions.with_columns(pl.lit("purchase").alias("event_type"), pl.lit(1.0).alias("weight"))
    interactions, q_inter = conform(
        interactions, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source=str(seq_path)
    )

    ordered = sorted(id2item, key=lambda k: (0, int(k), k) if k.isdigit() else (1, 0, k))  # P5's ids are 1..N
    catalog = pl.DataFrame({"item_id": [id2item[k] for k in ordered]}, schema={"item_id": pl.Utf8})
    meta_rows: list[dict] = []
    try:
        meta_path = find_file([f"{dataset}_item_meta.jsonl"], folders, what)
    except FileNotFoundError:
        meta_path = None  # Sports: no item text, ids only.
    if meta_path is not None:
        for number, line in numbered_lines(meta_path):
            if isinstance(line, LongLine):
                issues.append(quarantine_row("items", meta_path, number, "*", too_long(line), line.head))
                continue
            try:
                record = parse_object(line)
            except ValueError as err:
                issues.append(quarantine_row("items", meta_path, number, "*", f"unreadable line: {err}", line))
                continue
            if record.get("asin") is None:
                issues.append(quarantine_row("items", meta_path, number, "item_id", "no asin", line))
                continue
            categories = record.get("categories")
            path = [clean_text(c) for c in categories] if isinstance(categories, list) else []
            meta_rows.append(
                {
                    "_row": number,
                    "item_id": str(record["asin"]),
                    "title": clean_text(record.get("title")),
                    "brand": clean_text(record.get("brand")),
                    "categories": path or None,
                    "price": None if record.get("price") is None else str(record["price"]),
                }
            )
    if meta_rows:
        meta = pl.DataFrame(
            meta_rows,
            schema={"_row": pl.Int64, "item_id": pl.Utf8, "title": pl.Utf8, "brand": pl.Utf8}
            | {"categories": pl.List(pl.Utf8), "price": pl.Utf8},
        )
        known = meta["item_id"].is_in(catalog["item_id"].implode())
        for row, item, raw in meta.filter(~known).select("_row", "item_id", "title").iter_rows():
            reason = f"item {item!r} is not in {maps_path.name} (id2item); line not used"
            issues.append(quarantine_row("items", meta_path, row, "item_id", reason, raw or ""))
        catalog = catalog.join(meta.filter(known), on="item_id", how="left").with_columns(pl.col("_row").fill_null(0))
    catalog, q_items = conform(catalog, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source=str(meta_path or maps_path))
    quarantine = pl.concat([quarantine_frame(issues), q_inter, q_items])
    return LoadedData(
        interactions,
        catalog,
        quarantine,
        source=f"p5:{dataset}",
        interactions_file=str(seq_path),
        items_file=str(meta_path or maps_path),
    )


def _read_datamaps(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """``id2user`` and ``id2item`` from P5's datamaps, or an error naming the file and what is wrong."""
    with reading(path), open_text(path) as handle:
        try:
            datamaps = json.load(handle)
        except json.JSONDecodeError as err:
            raise SourceError(f"{path}, line {err.lineno}: not valid JSON ({err.msg}); fetch the file again") from err
        except RecursionError as err:
            raise SourceError(f"{path}: nested too deep to be P5's datamaps; fetch the file again") from err
    maps = {key: datamaps.get(key) if isinstance(datamaps, dict) else None for key in ("id2user", "id2item")}
    broken = [key for key, value in maps.items() if not isinstance(value, dict)]
    if broken:
        raise SchemaError(f"{path}: {' and '.join(broken)} missing or not a mapping; fetch the file again")
    return (
        {str(k): str(v) for k, v in maps["id2user"].items()},  # type: ignore[union-attr]
        {str(k): str(v) for k, v in maps["id2item"].items()},  # type: ignore[union-attr]
    )
