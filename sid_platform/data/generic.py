"""Loader for a team's own logs: CSV, Parquet or JSON lines, with a column mapping in config.

Every column is read as text first and conformed to the normalized schema afterwards, so a value
that does not parse is reported with its file, row and field instead of failing the whole read.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from sid_platform.data.files import DataNotFoundError, numbered_lines
from sid_platform.data.schema import (
    INTERACTION_REQUIRED,
    INTERACTION_SCHEMA,
    ITEM_REQUIRED,
    ITEM_SCHEMA,
    LoadedData,
    SchemaError,
    conform,
    quarantine_frame,
    quarantine_row,
)

FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def read_table(path: Path, issues: list[dict], table: str) -> pl.DataFrame:
    """Read a file as text columns plus ``_row`` (the line number for text formats, 1-based row for Parquet)."""
    if not path.is_file():
        raise DataNotFoundError(
            f"{table}: file {path} does not exist. Set the path in the `dataset` resource config "
            "(interactions_path / items_path), relative paths resolve against the data directory."
        )
    suffixes = [s for s in path.suffixes if s != ".gz"]
    fmt = FORMATS.get(suffixes[-1] if suffixes else "")
    if fmt is None:
        raise SchemaError(f"{path}: unknown format; use one of {sorted(FORMATS)} (optionally .gz)")
    if fmt == "parquet":
        frame = pl.read_parquet(path)
        frame = frame.with_columns(
            pl.col(c).cast(pl.Utf8) for c, t in frame.schema.items() if not isinstance(t, pl.List)
        )
        return frame.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))
    if fmt == "csv":
        frame = pl.read_csv(path, infer_schema=False)
        # Row numbers as a person sees them in an editor: the header is line 1.
        return frame.with_row_index("_row", offset=2).with_columns(pl.col("_row").cast(pl.Int64))
    records = []
    for number, line in numbered_lines(path):
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError(f"expected an object, got {type(record).__name__}")
        except ValueError as err:
            issues.append(quarantine_row(table, path, number, "*", f"unreadable JSON line: {err}", line))
            continue
        records.append({"_row": number, **{k: _as_text(v) for k, v in record.items()}})
    return (
        pl.DataFrame(records, infer_schema_length=None)
        if records
        else pl.DataFrame({"_row": []}, schema={"_row": pl.Int64})
    )


def _as_text(value: object) -> object:
    if value is None or isinstance(value, list):
        return value
    return str(value)


def _rename(frame: pl.DataFrame, mapping: dict[str, str], path: Path) -> pl.DataFrame:
    """``mapping`` goes from normalized name to source column; a mapped column that is absent is drift."""
    absent = {norm: src for norm, src in mapping.items() if src not in frame.columns}
    if absent:
        raise SchemaError(
            f"{path}: mapped column(s) not found: "
            + ", ".join(f"{norm} <- {src!r}" for norm, src in absent.items())
            + f"; columns present: {sorted(c for c in frame.columns if c != '_row')}"
        )
    return frame.rename({src: norm for norm, src in mapping.items() if src != norm})


def load_generic(
    interactions_path: Path,
    items_path: Path | None = None,
    interaction_columns: dict[str, str] | None = None,
    item_columns: dict[str, str] | None = None,
    category_separator: str = ">",
) -> LoadedData:
    """Interactions (required) and an optional catalog; without one, the catalog is the interacted ids."""
    issues: list[dict] = []
    raw = _rename(read_table(interactions_path, issues, "interactions"), interaction_columns or {}, interactions_path)
    interactions, q_inter = conform(
        raw, INTERACTION_SCHEMA, INTERACTION_REQUIRED, table="interactions", source=str(interactions_path)
    )
    quarantines = [q_inter]
    if items_path is None:
        items = pl.DataFrame({"item_id": interactions["item_id"].unique(maintain_order=True)})
        items, q_items = conform(items, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source=str(interactions_path))
    else:
        raw_items = _rename(read_table(items_path, issues, "items"), item_columns or {}, items_path)
        if "categories" in raw_items.columns and raw_items.schema["categories"] == pl.Utf8:
            raw_items = raw_items.with_columns(
                pl.col("categories").str.split(category_separator).list.eval(pl.element().str.strip_chars())
            )
        items, q_items = conform(raw_items, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source=str(items_path))
    quarantines.append(q_items)
    quarantine = pl.concat([quarantine_frame(issues), *quarantines])
    return LoadedData(interactions, items, quarantine, source=f"generic:{interactions_path.name}")
