"""Jobs over the asset graph, and the registry job that moves the champion back."""

from pathlib import Path

from dagster import AssetSelection, Config, Failure, OpExecutionContext, Output, define_asset_job, job, op
from pydantic import Field

from sid_platform.data.generic import load_items
from sid_platform.registry import champion, pinned_config, rollback
from sid_platform.registry.cold_start import register_new_items
from sid_platform.resources import MlflowResource
from sid_platform.settings import resolve_data_dir

# Materializes every asset (with its checks) on the configured dataset; `make demo` runs it.
main_job = define_asset_job(
    "main_job", selection=AssetSelection.all(), description="The whole graph, data to evaluation and promotion."
)

# What a retrain rebuilds: everything downstream of the data, i.e. the ingest group and all that depends on it.
# Dagster does not skip up-to-date assets inside a job; the cost of an unchanged catalog is kept low by the
# embedding cache (only new or changed items are embedded), and the rest is retrained on the new logs.
retrain_job = define_asset_job(
    "retrain_job",
    selection=AssetSelection.groups("ingest").downstream(),
    description="Retrain on the current data: ingest and everything downstream, ending in model_promotion.",
    tags={"sid/kind": "retrain"},
)

# What the retrain sensors watch: the stored models re-evaluated on freshly ingested logs (the users' sequences
# and their retrieval redone, no training and no promotion). Run it when new interaction logs arrive (or on a
# schedule of your own).
monitoring_job = define_asset_job(
    "monitoring_job",
    selection=AssetSelection.groups("ingest") | AssetSelection.assets("data_splits", "candidates", "evaluation"),
    description="Re-evaluate the stored models on the current logs; the retrain sensors read its evaluation.",
    tags={"sid/kind": "monitoring"},
)


class RollbackConfig(Config):
    to_version: int | None = Field(default=None, description="a former champion; unset = the one before the current")


@op(description="Move the registry's 'champion' alias back to a former champion (the same call as the CLI).")
def rollback_champion(context: OpExecutionContext, config: RollbackConfig, mlflow: MlflowResource) -> Output[dict]:
    tracking = mlflow.tracking()
    source, target = rollback(tracking.client, mlflow.registered_model, config.to_version)
    restored = champion(tracking.client, mlflow.registered_model)
    pinned = pinned_config(tracking, restored) if restored is not None else {}
    context.log.info(f"{mlflow.registered_model}: champion v{source} -> v{target}")
    return Output(
        {"from": source, "to": target, "dagster_run_id": pinned.get("dagster_run_id")},
        metadata={
            "from_version": source,
            "to_version": target,
            "pinned_dagster_run_id": str(pinned.get("dagster_run_id")),
            "pinned_data_fingerprint": str(pinned.get("data", {}).get("fingerprint")),
        },
    )


@job(description="Roll the champion back (config: to_version); readers switch in one alias move.")
def rollback_job():
    rollback_champion()


class NewItemsConfig(Config):
    items_path: str = Field(
        description="the new catalog rows: CSV, Parquet or JSON lines with item_id and, for their Semantic IDs, the "
        "text fields the catalog was embedded from (title, brand, categories, price, description); a relative "
        "path starts at the data directory"
    )
    item_columns: dict[str, str] = Field(default_factory=dict, description="normalized name -> your column")
    category_separator: str = ">"
    from_version: int | None = Field(default=None, description="the version to extend; unset = the champion")
    promote: bool = Field(default=True, description="make the extension champion (when it extends the champion)")


@op(
    description="Give new catalog items Semantic IDs from the champion's codebooks (no retraining), add them to its "
    "USID table, prefix index, router and FAISS index, and register the result (champion: the service reloads it)."
)
def add_new_items(context: OpExecutionContext, config: NewItemsConfig, mlflow: MlflowResource) -> Output[dict]:
    path = Path(config.items_path)
    if not path.is_absolute():
        path = (resolve_data_dir() or Path.cwd()) / path
    items, quarantine = load_items(path, config.item_columns, config.category_separator)
    if quarantine.height:
        context.log.warning(f"{quarantine.height} rows of {path} could not be used, e.g. {quarantine.head(3).rows()}")
    if not items.height:
        raise Failure(f"{path}: no usable item rows")
    released = register_new_items(
        mlflow.tracking(),
        mlflow.registered_model,
        items,
        from_version=config.from_version,
        promote=config.promote,
        on_progress=context.log.info,
    )
    summary = released.as_dict()
    context.log.info(
        f"{mlflow.registered_model}: {len(released.report.added)} new items added to v{released.source_version} -> "
        f"v{released.version} ({'champion' if released.promoted else 'not promoted'})"
    )
    if not released.recommendable:
        context.log.warning(
            f"the champion serves {released.serving}, which cannot rank items it was not trained on: the new items are "
            "searchable and explained by their Semantic IDs, and recommended once a router ranking is served"
        )
    metadata = {k: v for k, v in summary.items() if v is not None}
    return Output(summary, metadata={**metadata, "quarantined_rows": quarantine.height})


@job(description="New catalog rows -> Semantic IDs from the current codebooks -> an extended bundle (cold start).")
def cold_start_job():
    add_new_items()


all_jobs = [main_job, retrain_job, monitoring_job, rollback_job, cold_start_job]
