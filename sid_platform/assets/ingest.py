"""Data in: ``raw_interactions``, ``item_catalog`` and the rows that could not be used, plus their checks."""

import polars as pl
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetOut,
    MetadataValue,
    Output,
    asset_check,
    multi_asset,
)

from sid_platform.data.schema import rejected_rows
from sid_platform.data.validation import (
    NoUsableRowsError,
    ValidatedData,
    interaction_expectations,
    item_expectations,
    require_usable,
    run_suite,
    validate_loaded,
)
from sid_platform.evaluation.report import markdown_table
from sid_platform.policy import QuarantineLimits
from sid_platform.resources import DatasetResource
from sid_platform.resources.config import config_class

GROUP = "ingest"


@multi_asset(
    outs={
        "raw_interactions": AssetOut(
            group_name=GROUP, description="Interaction logs in the normalized schema; invalid rows removed."
        ),
        "item_catalog": AssetOut(group_name=GROUP, description="Items in the normalized schema; invalid rows removed."),
        "quarantined_rows": AssetOut(
            group_name=GROUP,
            description="Every row a loader or expectation rejected, with file, row, field and reason.",
        ),
    },
)
def ingest(context: AssetExecutionContext, dataset: DatasetResource):
    """Load the configured source once, validate both tables, and quarantine what fails. A source of which
    nothing usable remains fails the step, after storing its quarantine so every rejected row can be read."""
    data = validate_loaded(dataset.load())
    interactions, items, quarantine = data.interactions, data.items, data.quarantine
    try:
        require_usable(data)
    except NoUsableRowsError:
        yield Output(quarantine, output_name="quarantined_rows", metadata=quarantine_metadata(data))
        raise
    context.log.info(
        f"{data.source}: {interactions.height} interactions, {items.height} items, {quarantine.height} quarantined"
    )
    yield Output(interactions, output_name="raw_interactions", metadata=interactions_metadata(data))
    yield Output(items, output_name="item_catalog", metadata=catalog_metadata(data))
    yield Output(quarantine, output_name="quarantined_rows", metadata=quarantine_metadata(data))


def interactions_metadata(data: ValidatedData) -> dict:
    return {
        "source": data.source,
        "rows": data.interactions.height,
        "users": data.interactions["user_id"].n_unique(),
        "quarantined": data.quarantined("interactions"),
        "expectations_on_input": MetadataValue.md(data.interactions_report.markdown()),
    }


def catalog_metadata(data: ValidatedData) -> dict:
    items = data.items
    return {
        "source": data.source,
        "items": items.height,
        "with_title": items["title"].is_not_null().sum(),
        "with_categories": items["categories"].is_not_null().sum(),
        "quarantined": data.quarantined("items"),
        "expectations_on_input": MetadataValue.md(data.items_report.markdown()),
    }


def quarantine_metadata(data: ValidatedData) -> dict:
    by_reason = data.quarantine.group_by("table", "field", "reason").len().sort("len", descending=True)
    table = markdown_table(by_reason.columns, by_reason.head(20).rows()) if by_reason.height else "nothing quarantined"
    return {"rows": data.quarantine.height, "by_reason": MetadataValue.md(table)}


class QuarantineCheckConfig(config_class("QuarantineLimitFields", QuarantineLimits)):  # type: ignore[misc]
    """The limits of both ingest checks; the same fields as a profile's ``quarantine_limits``."""


_LIMITS = QuarantineLimits()


def _check(
    table: str, frame: pl.DataFrame, quarantine: pl.DataFrame, expectations: list, limits: QuarantineLimits
) -> AssetCheckResult:
    report = run_suite(frame, table, expectations)
    rejected = rejected_rows(quarantine, table)
    total = rejected + frame.height
    share = rejected / max(total, 1)
    too_many = limits.exceeded(rejected, total)
    passed = report.success and not too_many
    return AssetCheckResult(
        passed=passed,
        severity=AssetCheckSeverity.ERROR,
        description=None
        if passed
        else (
            f"{len(report.failures())} expectation(s) failed on the stored table"
            if not report.success
            else f"{rejected:,} of {total:,} {table} rows ({share:.1%}) were quarantined, {limits.describe()} "
            "(max_quarantined_rows, max_quarantined_fraction); see quarantined_rows"
        ),
        metadata={
            "expectations": MetadataValue.md(report.markdown()),
            "quarantined_rows": rejected,
            "quarantined_share": share,
        },
    )


@asset_check(
    asset="raw_interactions",
    additional_ins={"item_catalog": AssetIn(), "quarantined_rows": AssetIn()},
    blocking=True,
    description="Great Expectations suite on the stored interactions, and a limit on the quarantined rows "
    f"(fails on {_LIMITS.describe()} by default).",
)
def raw_interactions_expectations(
    context: AssetCheckExecutionContext,
    config: QuarantineCheckConfig,
    raw_interactions: pl.DataFrame,
    item_catalog: pl.DataFrame,
    quarantined_rows: pl.DataFrame,
) -> AssetCheckResult:
    expectations = interaction_expectations(item_catalog["item_id"].to_list())
    return _check("interactions", raw_interactions, quarantined_rows, expectations, config.core())


@asset_check(
    asset="item_catalog",
    additional_ins={"quarantined_rows": AssetIn()},
    blocking=True,
    description="Great Expectations suite on the stored catalog, and a limit on the quarantined rows "
    f"(fails on {_LIMITS.describe()} by default).",
)
def item_catalog_expectations(
    context: AssetCheckExecutionContext,
    config: QuarantineCheckConfig,
    item_catalog: pl.DataFrame,
    quarantined_rows: pl.DataFrame,
) -> AssetCheckResult:
    return _check("items", item_catalog, quarantined_rows, item_expectations(), config.core())
