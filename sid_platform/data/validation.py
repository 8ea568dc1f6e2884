"""Great Expectations suites for the normalized tables, and the quarantine they feed.

The suites are defined once here and used twice: by the ingest assets, which move every row an
expectation flags into quarantine with the expectation as its reason, and by the blocking asset
checks, which validate the stored tables and fail the run if anything slipped through or if too
large a share of the source had to be quarantined.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache

import polars as pl

from sid_platform.data.schema import QUARANTINE_SCHEMA, LoadedData, empty_quarantine, rejected_rows
from sid_platform.settings import library_defaults
from sid_platform.tables import markdown_table

library_defaults(GX_ANALYTICS_ENABLED="False")

EARLIEST = datetime(1995, 1, 1, tzinfo=UTC)  # before Amazon's first review; earlier means a unit bug
CATEGORY_SEP = "\x1f"  # ASCII unit separator: cannot be confused with text inside a segment
# A well-formed path: one or more segments, each non-blank, not padded, and free of '>' (the path
# separator of text sources, which would make the path ambiguous when written out).
CATEGORY_PATH_REGEX = r"^[^\x1f>\s](?:[^\x1f>]*[^\x1f>\s])?(?:\x1f[^\x1f>\s](?:[^\x1f>]*[^\x1f>\s])?)*$"
# Plausible numbers: a price or a weight (a rating, a count) beyond these is a unit or export bug. NaN and
# infinities fail too (``_validation_frame`` shows them as infinite, since pandas would read NaN as missing).
MAX_PRICE = 1e6
MAX_WEIGHT = 1e6
# What an expectation's failure means for the row, in words: (expectation, column) -> reason.
_MEANINGS = {
    ("expect_column_values_to_not_be_null", "user_id"): "no user id",
    ("expect_column_values_to_not_be_null", "item_id"): "no item id",
    ("expect_column_values_to_be_in_set", "item_id"): "item not in the catalog",
    ("expect_column_values_to_be_between", "timestamp"): "before 1995 or in the future (milliseconds for seconds?)",
    ("expect_column_values_to_be_between", "position"): "negative position",
    ("expect_column_values_to_be_between", "weight"): f"weight not a finite number in 0..{MAX_WEIGHT:g}",
    ("expect_column_values_to_be_between", "price"): f"price not a finite number in 0..{MAX_PRICE:g}",
    ("expect_column_values_to_match_regex", "categories"): "a category is blank, padded or contains '>'",
}
# Columns of the validation view named as in the normalized schema, for quarantine entries.
_SCHEMA_NAME = {"timestamp_s": "timestamp", "category_path": "categories"}


@dataclass(frozen=True)
class ExpectationOutcome:
    name: str
    column: str
    success: bool
    unexpected_count: int
    unexpected_rows: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class SuiteReport:
    table: str
    rows: int
    outcomes: list[ExpectationOutcome]

    @property
    def success(self) -> bool:
        return all(o.success for o in self.outcomes)

    def failures(self) -> list[ExpectationOutcome]:
        return [o for o in self.outcomes if not o.success]

    def markdown(self) -> str:
        rows = [(o.name, o.column, "yes" if o.success else "NO", o.unexpected_count) for o in self.outcomes]
        return markdown_table(["expectation", "column", "ok", "unexpected"], rows)


@cache
def _context():
    import great_expectations as gx  # slow to import; only load it when a suite actually runs
    from great_expectations.data_context.types.base import ProgressBarsConfig

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
    return context


def interaction_expectations(catalog_ids: list[str], now: datetime | None = None) -> list:
    import great_expectations as gx

    latest = (now or datetime.now(UTC)) + timedelta(days=1)
    e = gx.expectations
    return [
        e.ExpectColumnValuesToNotBeNull(column="user_id"),
        e.ExpectColumnValuesToNotBeNull(column="item_id"),
        e.ExpectColumnValuesToBeInSet(column="item_id", value_set=catalog_ids),
        e.ExpectColumnValuesToBeBetween(
            column="timestamp_s", min_value=EARLIEST.timestamp(), max_value=latest.timestamp()
        ),
        e.ExpectColumnValuesToBeBetween(column="position", min_value=0),
        e.ExpectColumnValuesToBeBetween(column="weight", min_value=0, max_value=MAX_WEIGHT),
        e.ExpectCompoundColumnsToBeUnique(column_list=["user_id", "item_id", "timestamp_s", "position"]),
    ]


def item_expectations() -> list:
    import great_expectations as gx

    e = gx.expectations
    return [
        e.ExpectColumnValuesToNotBeNull(column="item_id"),
        e.ExpectColumnValuesToBeUnique(column="item_id"),
        e.ExpectColumnValuesToMatchRegex(column="category_path", regex=CATEGORY_PATH_REGEX),
        e.ExpectColumnValuesToBeBetween(column="price", min_value=0, max_value=MAX_PRICE),
    ]


def _validation_frame(df: pl.DataFrame, table: str):
    """Pandas view GX validates: timestamps as epoch seconds, category lists as one path string, NaN as
    infinity (pandas takes NaN for a missing value, which the range expectations skip)."""
    if table == "interactions":
        view = df.select(
            "user_id",
            "item_id",
            "position",
            pl.col("weight").fill_nan(float("inf")),
            (pl.col("timestamp").dt.epoch("us") / 1e6).alias("timestamp_s"),
        )
    else:
        view = df.select(
            "item_id",
            pl.col("price").fill_nan(float("inf")),
            pl.col("categories").list.join(CATEGORY_SEP).alias("category_path"),
        )
    return view.to_pandas()


def run_suite(df: pl.DataFrame, table: str, expectations: list) -> SuiteReport:
    """Validate ``df`` (row order preserved) and report every expectation with the rows it flagged."""
    import great_expectations as gx

    context = _context()
    name = f"{table}_{id(df)}"
    source = context.data_sources.add_or_update_pandas(name)
    batch = (
        source.add_dataframe_asset(table)
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": _validation_frame(df, table)})
    )
    suite = gx.ExpectationSuite(name=name)
    for expectation in expectations:
        suite.add_expectation(expectation)
    result = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    context.data_sources.delete(name)
    outcomes = []
    for r in result.results:
        kwargs = r.expectation_config.kwargs
        column = kwargs.get("column") or ",".join(kwargs.get("column_list") or [])
        outcomes.append(
            ExpectationOutcome(
                name=r.expectation_config.type,
                column=column,
                success=bool(r.success),
                unexpected_count=int(r.result.get("unexpected_count") or 0),
                unexpected_rows=[int(i) for i in r.result.get("unexpected_index_list") or []],
            )
        )
    return SuiteReport(table=table, rows=df.height, outcomes=outcomes)


def quarantine_invalid(
    df: pl.DataFrame, table: str, source: str, expectations: list
) -> tuple[pl.DataFrame, pl.DataFrame, SuiteReport]:
    """Split ``df`` into rows that meet every expectation and quarantine entries for those that do not.

    Exact duplicate keys keep their first occurrence (the repeats are quarantined), so a duplicated
    event is not lost entirely. Quarantine rows are named by ``_row`` (the row in the source file, as
    ``conform`` keeps it) when present; ``_row`` is dropped from the clean rows.
    Returns (clean rows, quarantine, the report on the input).
    """
    keys = ["user_id", "item_id", "timestamp", "position"] if table == "interactions" else ["item_id"]
    indexed = df.with_row_index("_i")
    if "_row" not in indexed.columns:
        indexed = indexed.with_columns((pl.col("_i") + 1).cast(pl.Int64).alias("_row"))
    source_row = indexed["_row"].to_list()
    repeats = set(indexed.filter(~pl.struct(keys).is_first_distinct())["_i"].to_list())
    report = run_suite(df.drop("_row", strict=False), table, expectations)
    entries = [
        {
            "table": table,
            "source": source,
            "row": source_row[i],
            "field": ",".join(keys),
            "reason": "duplicate of an earlier row; first kept",
            "raw": _row_text(df, i),
            "row_kept": False,
        }
        for i in sorted(repeats)
    ]
    dropped = set(repeats)
    for outcome in report.failures():
        # Uniqueness expectations flag every copy; the first copy is legitimate and stays.
        if "unique" in outcome.name:
            continue
        column = _SCHEMA_NAME.get(outcome.column, outcome.column)
        meaning = _MEANINGS.get((outcome.name, column))
        for i in outcome.unexpected_rows:
            dropped.add(i)
            entries.append(
                {
                    "table": table,
                    "source": source,
                    "row": source_row[i],
                    "field": column,
                    "reason": f"failed {outcome.name}" + (f": {meaning}" if meaning else ""),
                    "raw": _row_text(df, i),
                    "row_kept": False,
                }
            )
    keep = indexed.filter(~pl.col("_i").is_in(sorted(dropped))).drop("_i", "_row")
    return keep, pl.DataFrame(entries, schema=QUARANTINE_SCHEMA) if entries else empty_quarantine(), report


def _row_text(df: pl.DataFrame, row: int) -> str:
    record = {k: v for k, v in df.row(row, named=True).items() if k != "_row"}
    return str({k: (v if not isinstance(v, datetime) else v.isoformat()) for k, v in record.items()})[:500]


@dataclass(frozen=True)
class ValidatedData:
    """Both tables with the rows that failed their suites removed, every rejected row, and the suites' reports."""

    source: str
    interactions: pl.DataFrame
    items: pl.DataFrame
    quarantine: pl.DataFrame  # the loader's rejects, then the catalog's, then the interactions'
    interactions_report: SuiteReport  # the suites as they judged the input, before quarantine
    items_report: SuiteReport
    interactions_file: str = ""  # the file each table came from, for messages
    items_file: str = ""

    def quarantined(self, table: str) -> int:
        """Distinct rows of ``table`` rejected by the loader or by its suite (notes on kept rows aside)."""
        return rejected_rows(self.quarantine, table)


def validate_loaded(loaded: LoadedData) -> ValidatedData:
    """Run the catalog's suite, then the interactions' against the clean catalog; quarantine what fails,
    each rejected row named by the file its table came from."""
    items, q_items, items_report = quarantine_invalid(
        loaded.items, "items", loaded.items_file or loaded.source, item_expectations()
    )
    interactions, q_inter, inter_report = quarantine_invalid(
        loaded.interactions,
        "interactions",
        loaded.interactions_file or loaded.source,
        interaction_expectations(items["item_id"].to_list()),
    )
    quarantine = pl.concat([loaded.quarantine, q_items, q_inter])
    return ValidatedData(
        loaded.source,
        interactions,
        items,
        quarantine,
        inter_report,
        items_report,
        interactions_file=loaded.interactions_file or loaded.source,
        items_file=loaded.items_file or loaded.source,
    )


class NoUsableRowsError(ValueError):
    """Nothing of a table survived: an error rather than an empty success, since a model trained on nothing
    would be registered like any other."""


def require_usable(data: ValidatedData) -> None:
    """Raise ``NoUsableRowsError`` when the catalog or the interactions came out empty, naming the file and
    its most common reasons. The catalog comes first: when it is empty every interaction fails with it, so
    the catalog's file is the one named."""
    tables = [("interactions", data.interactions, data.interactions_file)]
    if data.items_file != data.interactions_file:  # else the catalog is the interacted ids, empty with them
        tables.insert(0, ("items", data.items, data.items_file))
    for table, frame, file in tables:
        if frame.height:
            continue
        rejected = data.quarantine.filter((pl.col("table") == table) & ~pl.col("row_kept").fill_null(False))
        if rejected.height == 0:
            raise NoUsableRowsError(f"{file}: no {table} rows; add rows or point at the right file")
        common = (
            rejected.group_by("field", "reason")
            .agg(pl.len().alias("n"), pl.col("row").min().alias("line"))
            .sort(["n", "line"], descending=[True, False])
            .head(3)
        )
        reasons = "; ".join(
            f"{n} x {field}: {reason} (first at line {line})" for field, reason, n, line in common.iter_rows()
        )
        raise NoUsableRowsError(
            f"{file}: all {rejected_rows(data.quarantine, table)} {table} rows were quarantined ({reasons}); "
            "fix them and run again (every rejected row is in quarantined_rows)"
        )
