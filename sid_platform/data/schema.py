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
}


class SchemaError(ValueError):
    """A source does not have the columns the normalized schema needs; names file and fields."""


@dataclass(frozen=True)
class LoadedData:
    """What every loader returns: conformed tables plus the rows it could not use, with reasons."""

    interactions: pl.DataFrame
    items: pl.DataFrame
    quarantine: pl.DataFrame
    source: str


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def quarantine_row(table: str, path: Path | str, row: int, field: str, reason: str, raw: str) -> dict:
    """One quarantine entry: which table, file, row and field, why, and the raw text (truncated)."""
    return {"table": table, "source": str(path), "row": row, "field": field, "reason": reason, "raw": raw[:500]}


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
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Cast to the schema, add missing optional columns as nulls, keep the schema's column order.

    Returns the conformed frame and a quarantine frame. ``df`` may carry ``_row`` (the row number in
    the source file; numbered 1.. when absent); it names the row in quarantine entries and stays as the
    first column until validation (``quarantine_invalid``) has used and dropped it.

    - A missing required column is schema drift: it raises ``SchemaError`` naming the source and the
      columns that were found, rather than producing a frame of nulls.
    - A row whose required field is null or does not cast is moved to quarantine.
    - An optional field that does not cast is set to null and noted in quarantine; the row is kept.
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
            bad = df.filter(failed)
            action = "row quarantined" if name in required else "field set to null"
            issues.append(
                pl.DataFrame(
                    {
                        "table": table,
                        "source": source,
                        "row": bad["_row"],
                        "field": name,
                        "reason": f"cannot read as {dtype}; {action}",
                        "raw": bad[name].cast(pl.Utf8, strict=False),
                    },
                    schema=QUARANTINE_SCHEMA,
                )
            )
        casts.append(cast.alias(name))
    out = df.select([pl.col("_row"), *casts])
    bad_required = pl.any_horizontal([pl.col(c).is_null() for c in required])
    # Rows whose required field was already null in the source; cast failures were noted above.
    rejected = out.filter(pl.any_horizontal([df[c].is_null() for c in required]))
    if rejected.height:
        null_field = pl.coalesce([pl.when(pl.col(c).is_null()).then(pl.lit(c)) for c in required])
        issues.append(
            rejected.select(
                pl.lit(table).alias("table"),
                pl.lit(source).alias("source"),
                pl.col("_row").alias("row"),
                null_field.alias("field"),
                pl.lit("required field is null; row quarantined").alias("reason"),
                pl.lit(None, dtype=pl.Utf8).alias("raw"),
            )
        )
    good = out.filter(~bad_required)
    quarantine = pl.concat(issues, how="vertical") if issues else empty_quarantine()
    return good, quarantine


def _cast(series: pl.Series, dtype: pl.DataType) -> pl.Series:
    """Lenient cast (failures become null and are reported by the caller).

    Timestamps: numbers are epoch seconds, strings are ISO 8601 or epoch seconds written as text (CSV
    files are read as text, and MovieLens-style logs carry epoch seconds); all end up as UTC datetimes.
    """
    if isinstance(dtype, pl.Datetime):
        if series.dtype.is_numeric():
            return _epoch_seconds(series.cast(pl.Float64))
        if series.dtype == pl.Utf8:
            seconds = series.str.strip_chars().cast(pl.Float64, strict=False)
            dates = pl.select(pl.when(seconds.is_null()).then(series)).to_series()  # numbers would spoil inference
            parsed = dates.str.to_datetime(strict=False, time_unit="us")
            if parsed.dtype.time_zone is None:  # type: ignore[union-attr]
                parsed = parsed.dt.replace_time_zone("UTC")
            else:
                parsed = parsed.dt.convert_time_zone("UTC")
            return _epoch_seconds(seconds).zip_with(seconds.is_not_null(), parsed)
    return series.cast(dtype, strict=False)


def _epoch_seconds(seconds: pl.Series) -> pl.Series:
    return (seconds * 1_000_000).cast(pl.Int64, strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
