"""``model_promotion``: register the servable bundle, and make it ``champion`` only when the gate says so."""

from typing import Any

import polars as pl
from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetIn,
    DagsterInstance,
    MetadataValue,
    Output,
    asset,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from sid_platform.policy import POLICY
from sid_platform.registry import Candidate, decide, frame_fingerprint, log_bundle
from sid_platform.resources import MlflowResource
from sid_platform.settings import DATA_DIR_ENV, resolve_data_dir

GROUP = "registry"

# The servable recommender: asset name → component, each one file in the registered model.
# A new component (the reranker checkpoint) is one more name here.
BUNDLE_COMPONENTS = (
    "codebooks",
    "usid_table",
    "prefix_index",
    "sasrec_model",
    "router_checkpoint",
    "faiss_index",
    "dpo_checkpoint",
)


def blocking_check_keys(context: AssetExecutionContext) -> list[AssetCheckKey]:
    """Every blocking check of the code location (of the job when run in process, where no repository is set)."""
    try:
        graph = context.repository_def.asset_graph
    except Exception:  # in-process execution sets no repository; the job's graph is the whole graph for main_job
        graph = context.job_def.asset_layer.asset_graph
    return sorted((k for k in graph.asset_check_keys if graph.get_check_spec(k).blocking), key=str)


def failed_checks(instance: DagsterInstance, keys: list[AssetCheckKey]) -> list[str]:
    """Blocking checks whose latest execution did not pass (or that never ran), as ``asset:check (status)``."""
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(keys)
    failed = []
    for key in keys:
        record = latest.get(key)
        status = record.status.value.lower() if record else "never ran"
        if record is None or record.status != AssetCheckExecutionRecordStatus.SUCCEEDED:
            failed.append(f"{key.asset_key.to_user_string()}:{key.name} ({status})")
    return failed


def _resolved_run_config(context: AssetExecutionContext) -> dict[str, Any] | None:
    """The run config with every default filled in, so the pinned config does not depend on code defaults."""
    try:
        from dagster._config import process_config

        result = process_config(context.job_def.run_config_schema.config_type, context.run.run_config)
        return result.value if result.success else None
    except Exception:  # an internal API; the run config as given is pinned either way
        return None


@asset(
    group_name=GROUP,
    ins={name: AssetIn() for name in ("evaluation", "data_splits", "item_catalog", *BUNDLE_COMPONENTS)},
    description="Registers the servable bundle in MLflow; it becomes 'champion' only if the promotion gate passes "
    f"(blocking checks passed, codebook utilization at least {POLICY.min_codebook_utilization:.0%}, Recall@10 at "
    f"most {POLICY.recall_tolerance:.0%} below the champion's; defaults of the mlflow resource).",
)
def model_promotion(
    context: AssetExecutionContext,
    mlflow: MlflowResource,
    evaluation: dict,
    data_splits: pl.DataFrame,
    item_catalog: pl.DataFrame,
    **components: Any,
) -> Output[dict]:
    serving = evaluation["serving"]
    checks = failed_checks(context.instance, blocking_check_keys(context))
    candidate = Candidate(
        recall_at_10=float(serving["recall@10"]),
        min_codebook_utilization=float(serving["min_codebook_utilization"]),
        failed_checks=tuple(checks),
    )
    fingerprint = frame_fingerprint(data_splits, item_catalog)
    data_dir = resolve_data_dir()  # as the dataset resource resolves it when its config names none
    pinned = {
        "dagster_run_id": context.run_id,
        "job": context.job_name,
        "run_config": context.run.run_config,
        "resolved_run_config": _resolved_run_config(context),
        "data": {"fingerprint": fingerprint, DATA_DIR_ENV: str(data_dir) if data_dir else None},
        "evaluation": serving,
    }
    test_metrics = evaluation.get("test", {}).get("metrics", {})
    tracking = mlflow.tracking()
    tags = {"dagster_run_id": context.run_id, "dagster_job": context.job_name or "", "data_fingerprint": fingerprint}
    version = log_bundle(
        tracking,
        mlflow.registered_model,
        {name: components[name] for name in BUNDLE_COMPONENTS},
        pinned,
        run_name="model_promotion",
        metrics={
            **{f"serving_{k}": v for k, v in serving.items() if isinstance(v, int | float)},
            **{f"test_{model}_{k}": v for model, figures in test_metrics.items() for k, v in figures.items()},
        },
        tags=tags,
    )
    decision = decide(tracking.client, mlflow.registered_model, int(version.version), candidate, mlflow.policy())
    outcome = "promoted" if decision.promoted else "refused"
    tracking.client.set_tag(version.run_id, "promotion", outcome)
    tracking.client.set_tag(version.run_id, "gate_reasons", decision.summary[:5000])
    context.instance.add_run_tags(
        context.run_id,
        {"sid/promotion": f"v{version.version} {outcome}", "sid/promotion_reason": decision.summary[:250]},
    )
    log = context.log.info if decision.promoted else context.log.warning
    log(f"{mlflow.registered_model} v{version.version} {outcome}: {decision.summary}")
    result = {
        "registered_model": mlflow.registered_model,
        "version": int(version.version),
        "promoted": decision.promoted,
        "reasons": decision.reasons,
        "summary": decision.summary,
        "previous_champion": decision.previous_champion,
        "recall@10": candidate.recall_at_10,
        "min_codebook_utilization": candidate.min_codebook_utilization,
        "mlflow_run_id": version.run_id,
        "tracking_uri": tracking.uri,
    }
    return Output(
        result,
        metadata={
            "registered_model": mlflow.registered_model,
            "version": int(version.version),
            "decision": outcome,
            "reasons": decision.summary,
            "previous_champion": decision.previous_champion,
            "blocking_checks_failed": ", ".join(checks) or "none",
            "recall@10": candidate.recall_at_10,
            "min_codebook_utilization": candidate.min_codebook_utilization,
            "data_fingerprint": fingerprint,
            "mlflow_run_id": version.run_id,
            "tracking_uri": MetadataValue.text(tracking.uri),
        },
    )
