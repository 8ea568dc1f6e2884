"""Jobs over the asset graph, and the registry job that moves the champion back."""

from dagster import AssetSelection, Config, OpExecutionContext, Output, define_asset_job, job, op
from pydantic import Field

from sid_platform.registry import champion, pinned_config, rollback
from sid_platform.resources import MlflowResource

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


all_jobs = [main_job, retrain_job, monitoring_job, rollback_job]
