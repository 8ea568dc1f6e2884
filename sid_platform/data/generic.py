"""Loader for a team's own logs: CSV, Parquet or JSON lines, with a column mapping in config.

Every column is read as text first and typed by the normalized schema afterwards, value by value (a
timestamp column may mix epoch seconds and ISO 8601), so a value that does not parse is reported with its
file, row and field instead of failing the whole read. CSV goes through Python's csv module rather than a
bulk reader, so every row keeps its line number and a row with the wrong number of fields is quarantined
rather than failing the file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

from sid_platform.data.files import (
    DataNotFoundError,
    LongLine,
    SourceError,
    numbered_lines,
    open_text,
    parse_object,
    reading,
    too_long,
)
from sid_platform.data.schema import (
    INTERACTION_ORDERING,
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
    """Read a file as text columns plus ``_row`` (the line number for text formats, 1-based row for Parquet).

    Rows that cannot be read go to ``issues``; a file with no data rows raises ``SourceError``.
    """
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
        frame = _read_parquet(path)
    elif fmt == "csv":
        frame = _read_csv(path, issues, table)
    else:
        frame = _read_jsonl(path, issues, table)
    if frame.height == 0 and not any(issue["source"] == str(path) for issue in issues):
        raise SourceError(f"{path}: no data rows; add rows or point the {table} path at the right file")
    return frame


def _read_parquet(path: Path) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(path)
    except (pl.exceptions.PolarsError, OSError) as err:
        raise SourceError(f"{path}: not a readable Parquet file ({err.__class__.__name__}); write it again") from err
    frame = frame.with_columns(
        pl.col(c).cast(pl.Utf8, strict=False) for c, t in frame.schema.items() if not isinstance(t, pl.List)
    )
    return frame.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))


def _read_csv(path: Path, issues: list[dict], table: str) -> pl.DataFrame:
    """Rows named by the line they start on, as an editor shows them (the header is line 1, a quoted field
    may span lines); empty fields are null."""
    header: list[str] | None = None
    columns: list[list[str | None]] = []
    rows: list[int] = []
    with reading(path), open_text(path, newline="") as handle:
        reader = csv.reader(handle)
        end = 0
        while True:
            start = end + 1
            try:
                record = next(reader)
            except StopIteration:
                break
            except csv.Error as err:  # a NUL byte, a field over the csv module's size limit
                if header is None or reader.line_num == end:
                    raise SourceError(f"{path}, line {start}: not readable as CSV ({err})") from err
                end = reader.line_num
                issues.append(quarantine_row(table, path, start, "*", f"not readable as CSV ({err})", ""))
                continue
            end = reader.line_num
            if not record:  # a blank line
                continue
            if header is None:
                header = [name.strip() for name in record]
                repeated = sorted({name for name in header if header.count(name) > 1})
                if repeated:
                    raise SchemaError(f"{path}, line {start}: column(s) {repeated} appear more than once in the header")
                columns = [[] for _ in header]
                continue
            if len(record) != len(header):
                reason = f"{len(record)} fields where the header has {len(header)}; row quarantined"
                issues.append(quarantine_row(table, path, start, "*", reason, ",".join(record)))
                continue
            rows.append(start)
            for values, value in zip(columns, record, strict=True):
                values.append(value if value != "" else None)
    if header is None:
        raise SourceError(f"{path}: the file is empty; it needs a header line and data rows")
    data = {name: pl.Series(name, values, dtype=pl.Utf8) for name, values in zip(header, columns, strict=True)}
    data["_row"] = pl.Series("_row", rows, dtype=pl.Int64)
    return pl.DataFrame(data)


def _read_jsonl(path: Path, issues: list[dict], table: str) -> pl.DataFrame:
    """One object per line; values as text, flat lists (categories) as lists of text."""
    records = []
    for number, line in numbered_lines(path):
        if isinstance(line, LongLine):
            issues.append(quarantine_row(table, path, number, "*", too_long(line), line.head))
            continue
        try:
            record = parse_object(line)
        except ValueError as err:
            issues.append(quarantine_row(table, path, number, "*", f"unreadable line: {err}", line))
            continue
        records.append({**{k: _as_text(v) for k, v in record.items()}, "_row": number})  # ours wins
    if not records:
        return pl.DataFrame({"_row": []}, schema={"_row": pl.Int64})
    names = list(dict.fromkeys(k for record in records for k in record))
    data = {}
    for name in names:
        values = [record.get(name) for record in records]
        if (
            name != "_row"
            and any(isinstance(v, list) for v in values)
            and not all(v is None or isinstance(v, list) for v in values)
        ):
            values = [str(v) if isinstance(v, list) else v for v in values]  # a list where text belongs
        data[name] = values
    return pl.DataFrame(data, infer_schema_length=None)


def _as_text(value: object) -> object:
    """Text for scalars and objects, a list of text for a flat list (categories), else the list as text."""
    if value is None:
        return None
    if isinstance(value, list):
        if all(v is None or not isinstance(v, list | dict) for v in value):
            return [None if v is None else str(v) for v in value]
        return str(value)
    return str(value)


def _rename(frame: pl.DataFrame, mapping: dict[str, str], path: Path) -> pl.DataFrame:
    """``mapping`` goes from normalized name to source column; a mapped column that is absent is drift.
    A frame without rows (every line unreadable) has no columns to check and is returned as it is."""
    if frame.height == 0:
        return frame
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
    interactions, q_inter = _conform(raw, interactions_path, "interactions")
    if items_path is None:
        items = pl.DataFrame({"item_id": interactions["item_id"].unique(maintain_order=True)})
        items, q_items = conform(items, ITEM_SCHEMA, ITEM_REQUIRED, table="items", source=str(interactions_path))
    else:
        items, q_items = _read_items(items_path, issues, item_columns, category_separator)
    quarantine = pl.concat([quarantine_frame(issues), q_inter, q_items])
    return LoadedData(
        interactions,
        items,
        quarantine,
        source=f"generic:{interactions_path.name}",
        interactions_file=str(interactions_path),
        items_file=str(items_path or interactions_path),
    )


def _read_items(
    path: Path, issues: list[dict], item_columns: dict[str, str] | None, category_separator: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    raw = _rename(read_table(path, issues, "items"), item_columns or {}, path)
    if "categories" in raw.columns and raw.schema["categories"] == pl.Utf8:
        raw = raw.with_columns(
            pl.col("categories").str.split(category_separator).list.eval(pl.element().str.strip_chars())
        )
    return _conform(raw, path, "items")


def load_items(
    path: Path, item_columns: dict[str, str] | None = None, category_separator: str = ">"
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """A catalog file alone (new items for cold start): the items in the normalized schema, and the quarantine
    (rows that could not be read or conformed, with file, row, field and reason)."""
    issues: list[dict] = []
    items, quarantine = _read_items(path, issues, item_columns, category_separator)
    return items.drop("_row", strict=False), pl.concat([quarantine_frame(issues), quarantine])


def _conform(raw: pl.DataFrame, path: Path, table: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Conform one table. When no row could be read there are no columns to check either: the table is
    empty and its rows are in quarantine, which ``require_usable`` turns into a clear error."""
    schema, required = (
        (INTERACTION_SCHEMA, INTERACTION_REQUIRED) if table == "interactions" else (ITEM_SCHEMA, ITEM_REQUIRED)
    )
    if raw.height == 0:
        return pl.DataFrame(schema={"_row": pl.Int64(), **schema}), quarantine_frame([])
    must_parse = INTERACTION_ORDERING if table == "interactions" else ()
    return conform(raw, schema, required, table=table, source=str(path), must_parse=must_parse)
