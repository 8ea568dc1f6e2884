"""The one normalized schema every source is conformed to.

Interactions: who touched what, and when (a timestamp, a sequence position, or both).
Items: an id and whatever content the source has; every content field is optional.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from pathlib import Path

import polars as pl

INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Utf8(),
    "item_id": pl.Utf8(),
    "timestamp": pl.Datetime("us", "UTC"),
    "position": pl.Int64(),
    "event_type": pl.Utf8(),
    "weight": pl.Float64(),
}
INTERACTION_REQUIRED = ("user_id", "item_id")
# What orders a user's events: a value given here that does not parse quarantines the row (it could not be
# placed in the sequence); a value left empty stays null.
INTERACTION_ORDERING = ("timestamp", "position")

ITEM_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8(),
    "title": pl.Utf8(),
    "brand": pl.Utf8(),
    "categories": pl.List(pl.Utf8()),
    "price": pl.Float64(),
    "description": pl.Utf8(),
    "image_url": pl.Utf8(),
}
ITEM_REQUIRED = ("item_id",)

QUARANTINE_SCHEMA: dict[str, pl.DataType] = {
    "table": pl.Utf8(),
    "source": pl.Utf8(),
    "row": pl.Int64(),
    "field": pl.Utf8(),
    "reason": pl.Utf8(),
    "raw": pl.Utf8(),
    # True for a note on a kept row (an optional field that did not parse was set to null); False when the
    # row itself is in quarantine. Ingested rows + distinct quarantined rows = the rows of the source.
    "row_kept": pl.Boolean(),
}


class SchemaError(ValueError):
    """A source does not have the columns the normalized schema needs; names file and fields."""


@dataclass(frozen=True)
class LoadedData:
    """What every loader returns: conformed tables plus the rows it could not use, with reasons, and the file
    each table came from (so a row rejected later, by an expectation, still names its own file)."""

    interactions: pl.DataFrame
    items: pl.DataFrame
    quarantine: pl.DataFrame
    source: str
    interactions_file: str = ""  # empty: ``source``
    items_file: str = ""


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def quarantine_row(
    table: str, path: Path | str, row: int, field: str, reason: str, raw: str, row_kept: bool = False
) -> dict:
    """One quarantine entry: which table, file, row and field, why, and the raw text (truncated)."""
    return {
        "table": table,
        "source": str(path),
        "row": row,
        "field": field,
        "reason": reason,
        "raw": raw[:500],
        "row_kept": row_kept,
    }


def rejected_rows(quarantine: pl.DataFrame, table: str) -> int:
    """Distinct source rows of ``table`` in quarantine (notes on kept rows aside)."""
    rows = quarantine.filter(pl.col("table") == table)
    if "row_kept" in rows.columns:  # tables stored before the column existed hold rejections only
        rows = rows.filter(~pl.col("row_kept").fill_null(False))
    return rows.select("source", "row").unique().height


def clean_text(value: object) -> str | None:
    """Amazon metadata keeps HTML entities (``&amp;``); unescape them, and treat blanks as missing."""
    if value is None:
        return None
    text = html.unescape(str(value)).strip()
    return text or None


def quarantine_frame(rows: list[dict]) -> pl.DataFrame:
    """Rows of ``table, source, row, field, reason, raw`` as a frame with the quarantine schema."""
    return pl.DataFrame(rows, schema=QUARANTINE_SCHEMA) if rows else empty_quarantine()


def conform(
    df: pl.DataFrame,
    schema: dict[str, pl.DataType],
    required: tuple[str, ...],
    *,
    table: str,
    source: str,
    must_parse: tuple[str, ...] = (),
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast to the schema, add missing optional columns as nulls, keep the schema's column order.

    Returns the conformed frame and a quarantine frame. ``df`` may carry ``_row`` (the row number in
    the source file; numbered 1.. when absent); it names the row in quarantine entries and stays as the
    first column until validation (``quarantine_invalid``) has used and dropped it.

    - A missing required column is schema drift: it raises ``SchemaError`` naming the source and the
      columns that were found, rather than producing a frame of nulls.
    - A row whose required field is null, blank or does not cast is moved to quarantine, and so is a row
      whose ``must_parse`` field holds a value that does not cast (null there is allowed).
    - Any other field that does not cast is set to null and noted in quarantine; the row is kept.
    """
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise SchemaError(
            f"{source}: required column(s) {missing} not found; columns present: "
            f"{sorted(c for c in df.columns if not c.startswith('_'))}. "
            "Map your column names to the normalized schema in the loader's column mapping."
        )
    if "_row" not in df.columns:
        df = df.with_row_index("_row", offset=1).with_columns(pl.col("_row").cast(pl.Int64))
    issues: list[pl.DataFrame] = []
    casts = []
    unreadable = pl.Series([False] * df.height, dtype=pl.Boolean)
    for name, dtype in schema.items():
        if name not in df.columns:
            casts.append(pl.lit(None, dtype=dtype).alias(name))
            continue
        original = df[name]
        if original.dtype == dtype:
            casts.append(pl.col(name))
            continue
        cast = _cast(original, dtype)
        failed = original.is_not_null() & cast.is_null()
        if failed.any():
            rejects = name in required or name in must_parse
            if rejects:
                unreadable = unreadable | failed
            bad = df.filter(failed)
            issues.append(
                pl.DataFrame(
                    {
                        "table": table,
                        "source": source,
                        "row": bad["_row"],
                        "field": name,
                        "reason": f"not {_kind(dtype)}; " + ("row quarantined" if rejects else "field set to null"),
                        "raw": _raw_text(bad[name]),
                        "row_kept": not rejects,
                    },
                    schema=QUARANTINE_SCHEMA,
                )
            )
        casts.append(cast.alias(name))
    out = df.select([pl.col("_row"), *casts])
    empty = df.select(_empty(c, df.schema[c]).alias(c) for c in required)
    absent = empty.select(pl.any_horizontal(pl.all())).to_series()
    if absent.any():
        # Rows whose required field was already null or blank in the source; cast failures were noted above.
        first_empty = empty.select(pl.coalesce([pl.when(pl.col(c)).then(pl.lit(c)) for c in required])).to_series()
        issues.append(
            pl.DataFrame(
                {
                    "table": table,
                    "source": source,
                    "row": df["_row"].filter(absent),
                    "field": first_empty.filter(absent),
                    "reason": "required field is empty; row quarantined",
                    "raw": None,
                    "row_kept": False,
                },
                schema=QUARANTINE_SCHEMA,
            )
        )
    good = out.filter(~(absent | unreadable))
    quarantine = pl.concat(issues, how="vertical") if issues else empty_quarantine()
    return good, quarantine


def _kind(dtype: pl.DataType) -> str:
    """What a field's values must look like, in words, for the quarantine reason."""
    if isinstance(dtype, pl.Datetime):
        return "a timestamp (epoch seconds or ISO 8601)"
    if isinstance(dtype, pl.List):
        return "a list"
    if dtype.is_integer():
        return "a whole number"
    return "a number" if dtype.is_numeric() else f"readable as {dtype}"


def _empty(column: str, dtype: pl.DataType) -> pl.Expr:
    """Null, or text that is only whitespace: either way no id."""
    if dtype == pl.Utf8:
        return pl.col(column).is_null() | (pl.col(column).str.strip_chars() == "")
    return pl.col(column).is_null()


def _raw_text(series: pl.Series) -> pl.Series:
    """The source value as text for the quarantine table (lists joined)."""
    if isinstance(series.dtype, pl.List):
        return series.cast(pl.List(pl.Utf8), strict=False).list.join(", ")
    return series.cast(pl.Utf8, strict=False)


# Text timestamps: ISO 8601 with an offset (converted to UTC), then without one (taken as UTC), then dates.
_ZONED_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%d %H:%M:%S%.f%z")
_NAIVE_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d",
)


def _cast(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Lenient cast (failures become null and are reported by the caller).

    Every value is typed on its own, so a column may mix forms. Timestamps: numbers are epoch seconds,
    strings are epoch seconds written as text (a CSV is read as text; MovieLens-style logs carry epoch
    seconds) or ISO 8601 in any of ``_ZONED_FORMATS``/``_NAIVE_FORMATS``; all end up as UTC datetimes.
    Numbers written as text may be padded; a position may be written as ``3.0``.
    """
    if isinstance(series.dtype, pl.List) and not isinstance(dtype, pl.List):
        return pl.Series(series.name, [None] * len(series), dtype=dtype)  # a list where one value belongs
    if isinstance(dtype, pl.Datetime):
        if series.dtype.is_numeric():
            return _epoch_seconds(series.cast(pl.Float64))
        if series.dtype == pl.Utf8:
            text = series.str.strip_chars()
            seconds = text.cast(pl.Float64, strict=False)
            return _epoch_seconds(seconds).zip_with(seconds.is_not_null(), _datetimes(text))
        if isinstance(series.dtype, pl.Datetime | pl.Date):
            moments = series.cast(pl.Datetime("us"), strict=False) if series.dtype == pl.Date else series
            moments = moments.dt.cast_time_unit("us")
            zone = moments.dtype.time_zone  # type: ignore[union-attr]
            return moments.dt.replace_time_zone("UTC") if zone is None else moments.dt.convert_time_zone("UTC")
    if series.dtype == pl.Utf8 and dtype.is_numeric():
        text = series.str.strip_chars()
        if dtype.is_integer():
            whole = text.cast(pl.Float64, strict=False)
            whole = pl.select(pl.when(whole == whole.floor()).then(whole)).to_series()
            return text.cast(dtype, strict=False).fill_null(whole.cast(dtype, strict=False))
        return text.cast(dtype, strict=False)
    return series.cast(dtype, strict=False)


def _datetimes(text: pl.Series) -> pl.Series:
    """ISO 8601 text as UTC datetimes, each value in the first format that reads it (null where none does)."""
    text = text.str.replace(r"[zZ]$", "+00:00")
    result = pl.Series(text.name, [None] * len(text), dtype=pl.Datetime("us", "UTC"))
    for fmt in _ZONED_FORMATS:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        result = result.fill_null(parsed.dt.convert_time_zone("UTC"))
    for fmt in _NAIVE_FORMATS:
        parsed = text.str.to_datetime(fmt, strict=False, time_unit="us")
        result = result.fill_null(parsed.dt.replace_time_zone("UTC"))
    return result


def _epoch_seconds(seconds: pl.Series) -> pl.Series:
    return (seconds * 1_000_000).cast(pl.Int64, strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
