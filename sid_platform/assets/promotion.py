"""``model_promotion``: register the servable bundle, and make it ``champion`` only when the gate says so."""

from collections.abc import Mapping
from typing import Any

import polars as pl
from dagster import (
    AssetCheckEvaluation,
    AssetExecutionContext,
    AssetIn,
    DagsterEventType,
    DagsterInstance,
    JobDefinition,
    MetadataValue,
    Output,
    asset,
    validate_run_config,
)

from sid_platform.policy import POLICY
from sid_platform.registry import Candidate, Release, frame_fingerprint, release
from sid_platform.resources import MlflowResource
from sid_platform.service.components import ITEM_TITLES, USER_HISTORIES, item_titles_table, user_histories_table
from sid_platform.serving import POPULARITY, popularity_table
from sid_platform.settings import DATA_DIR_ENV, resolve_data_dir

GROUP = "registry"

# The servable recommender: asset name → component, each one file in the registered model.
# A new component (the reranker checkpoint) is one more name here. Beside them the bundle holds ``popularity``
# (training interactions per item, from ``data_splits``): the answer to a history the model cannot rank; and for the
# HTTP service (``sid_platform/service/``) the known users' histories and the items' titles (``item_embeddings``,
# above, is what its text search compares against).
BUNDLE_COMPONENTS = (
    "codebooks",
    "usid_table",
    "prefix_index",
    "sasrec_model",
    "router_checkpoint",
    "faiss_index",
    "dpo_checkpoint",
    "score_blend",
    "item_embeddings",
)


def check_evaluations(instance: DagsterInstance, run_id: str) -> list[AssetCheckEvaluation]:
    """The asset check evaluations one run recorded, in the order they happened."""
    entries = instance.all_logs(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    return [e.dagster_event.asset_check_evaluation_data for e in entries if e.dagster_event is not None]


def failed_checks(instance: DagsterInstance, run_id: str) -> list[str]:
    """The blocking checks of this run that did not pass, as ``asset:check (failed)``.

    Only the run's own evaluations count: a concurrent run's check says nothing about this run's inputs. A
    blocking check that fails with severity ERROR already stops the run before the gate; this catches the
    rest (severity WARN), and refuses a run that ran no blocking check at all, which has nothing to vouch
    for the data it would promote.
    """
    latest = {e.asset_check_key: e for e in check_evaluations(instance, run_id) if e.blocking}  # a retry: its last
    if not latest:
        return [f"no blocking asset check ran in run {run_id}"]
    return sorted(f"{k.asset_key.to_user_string()}:{k.name} (failed)" for k, e in latest.items() if not e.passed)


# One promotion at a time: two runs reading the champion and moving the alias at once could both pass the gate
# against the same champion. The instance gives this pool one slot (``automation/run.py``, ``deploy/dagster.yaml``).
PROMOTION_POOL = "promotion"


def resolved_run_config(job: JobDefinition, run_config: Mapping[str, Any]) -> dict[str, Any]:
    """The run config with every default filled in, so the pinned config does not depend on code defaults.

    Still a run config of ``job`` (rerunnable as it is): every op's and resource's config as validated, loggers,
    and the execution section as given (the validated form names the executor, which run config does not).
    """
    validated = validate_run_config(job, run_config)
    resolved: dict[str, Any] = {
        "ops": {name: {"config": op["config"]} for name, op in validated["ops"].items() if op.get("config")},
        "resources": validated["resources"],
        "loggers": validated["loggers"],
    }
    if "execution" in run_config:
        resolved["execution"] = run_config["execution"]
    return resolved


@asset(
    group_name=GROUP,
    pool=PROMOTION_POOL,
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
    serving, checks = evaluation["serving"], failed_checks(context.instance, context.run_id)
    candidate = Candidate(
        float(serving["recall@10"]),
        float(serving["min_codebook_utilization"]),
        tuple(checks),
        serving_model=serving["model"],
        valid_recall_at_10=serving.get("valid_recall@10"),
        baseline_valid_recall_at_10=serving.get("baseline_valid_recall@10"),
    )
    fingerprint = frame_fingerprint(data_splits, item_catalog)
    tags = {"dagster_run_id": context.run_id, "dagster_job": context.job_name or "", "data_fingerprint": fingerprint}
    outcome = release(
        mlflow.tracking(),
        mlflow.registered_model,
        {name: components[name] for name in BUNDLE_COMPONENTS} | derived_components(data_splits, item_catalog),
        pinned_config_of(context, serving, fingerprint),
        candidate,
        mlflow.policy(),
        metrics=release_metrics(evaluation),
        tags=tags,
    )
    summary = f"{outcome.registered_model} v{outcome.version} {outcome.outcome}: {outcome.summary}"
    context.instance.add_run_tags(
        context.run_id,
        {"sid/promotion": f"v{outcome.version} {outcome.outcome}", "sid/promotion_reason": outcome.summary[:250]},
    )
    (context.log.info if outcome.promoted else context.log.warning)(summary)
    return Output(outcome.as_dict(), metadata=release_metadata(outcome, checks, fingerprint))


def derived_components(data_splits: pl.DataFrame, item_catalog: pl.DataFrame) -> dict[str, pl.DataFrame]:
    """The bundle's tables built here rather than by an asset of their own."""
    return {
        POPULARITY: popularity_table(data_splits),
        USER_HISTORIES: user_histories_table(data_splits),
        ITEM_TITLES: item_titles_table(item_catalog),
    }


def pinned_config_of(context: AssetExecutionContext, serving: dict, fingerprint: str) -> dict[str, Any]:
    """What a registered version pins: the run config as given and resolved, the data, the serving figures."""
    data_dir = resolve_data_dir()  # as the dataset resource resolves it when its config names none
    return {
        "dagster_run_id": context.run_id,
        "job": context.job_name,
        "run_config": context.run.run_config,
        "resolved_run_config": resolved_run_config(context.job_def, context.run.run_config),
        "data": {"fingerprint": fingerprint, DATA_DIR_ENV: str(data_dir) if data_dir else None},
        "evaluation": serving,
    }


def release_metrics(evaluation: dict) -> dict[str, float]:
    """The serving figures and every test figure, as the bundle's MLflow run metrics."""
    test_metrics = evaluation.get("test", {}).get("metrics", {})
    serving = {f"serving_{k}": v for k, v in evaluation["serving"].items() if isinstance(v, int | float)}
    return serving | {f"test_{model}_{k}": v for model, figures in test_metrics.items() for k, v in figures.items()}


def release_metadata(outcome: Release, checks: list[str], fingerprint: str) -> dict[str, Any]:
    return {
        "registered_model": outcome.registered_model,
        "version": outcome.version,
        "decision": outcome.outcome,
        "reasons": outcome.summary,
        "previous_champion": outcome.previous_champion,
        "blocking_checks_failed": ", ".join(checks) or "none",
        "recall@10": outcome.recall_at_10,
        "min_codebook_utilization": outcome.min_codebook_utilization,
        "data_fingerprint": fingerprint,
        "mlflow_run_id": outcome.mlflow_run_id,
        "tracking_uri": MetadataValue.text(outcome.tracking_uri),
    }
