"""Retrain sensors: fresh ``evaluation`` results against the champion's registered figures.

Both sensors read the metadata every ``evaluation`` materialization carries (``serving_recall@10``,
``min_codebook_utilization``). They watch monitoring evaluations: the stored models re-evaluated, e.g. on
newly arrived interaction logs, by a run that does not promote. An evaluation from a run that also plans
``model_promotion`` (``main_job``, ``retrain_job``) measures a fresh candidate, which the promotion gate
judges; a sensor ignores it, or every refused candidate would request a retrain on the very data it was
refused on. A cause is (condition, champion version): each sensor requests at most one ``retrain_job``
run per cause, and a new champion opens new causes. The cursor
holds the last evaluation seen and the causes already fired (and each request's ``run_key`` is its cause,
so the daemon would drop a duplicate too). On its first tick a sensor judges only the latest evaluation,
not the whole history.

Default status RUNNING: a sensor only reads the event log and, when a new evaluation exists, the champion's
tags in MLflow; it launches nothing until a figure actually degrades, and a loop that has to be switched on
by hand is a loop that is not there.
"""

import json
from collections.abc import Callable

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)
from mlflow.entities.model_registry import ModelVersion

from sid_platform.assets.reporting import PROFILE_TAG
from sid_platform.automation.jobs import retrain_job
from sid_platform.automation.orphans import fail_orphaned_runs
from sid_platform.policy import POLICY
from sid_platform.profiles import run_config
from sid_platform.registry import champion
from sid_platform.registry.promotion import RECALL_TAG
from sid_platform.resources import MlflowResource
from sid_platform.settings import profile_name

EVALUATION = AssetKey("evaluation")
PROMOTION = AssetKey("model_promotion")
RECALL_KEY = "serving_recall@10"
UTILIZATION_KEY = "min_codebook_utilization"
REASON_TAG = "sid/retrain_reason"
TRIGGER_TAG = "sid/retrain_trigger"

# (evaluation metadata, champion or None, thresholds) → the reason to retrain, or None.
Condition = Callable[[dict[str, float], ModelVersion | None, MlflowResource], str | None]


def recall_dropped(figures: dict[str, float], current: ModelVersion | None, mlflow: MlflowResource) -> str | None:
    if current is None or RECALL_TAG not in current.tags or RECALL_KEY not in figures:
        return None  # nothing registered to compare with
    registered, fresh = float(current.tags[RECALL_TAG]), figures[RECALL_KEY]
    if registered > 0 and (registered - fresh) / registered > mlflow.recall_drop_alert:
        return (
            f"Recall@10 {fresh:.4f} is {(registered - fresh) / registered:.1%} below champion "
            f"v{current.version}'s registered {registered:.4f} (alert above {mlflow.recall_drop_alert:.0%})"
        )
    return None


def utilization_low(figures: dict[str, float], current: ModelVersion | None, mlflow: MlflowResource) -> str | None:
    fresh = figures.get(UTILIZATION_KEY)
    if fresh is not None and fresh < mlflow.min_utilization:
        return f"codebook utilization {fresh:.1%} is below {mlflow.min_utilization:.0%}"
    return None


def plans_promotion(instance: DagsterInstance, run_id: str) -> bool:
    """Whether a run planned ``model_promotion`` (planned events are written when the run starts)."""
    if not run_id:  # reported without a run, e.g. by an external monitoring job
        return False
    planned = instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED).records
    return any(
        r.event_log_entry.dagster_event.asset_key == PROMOTION for r in planned if r.event_log_entry.dagster_event
    )


def retrain_run_config() -> dict:
    """The run config of a requested retrain: the profile in ``$SID_PROFILE`` (default ``default``)."""
    return run_config(profile_name())


def evaluation_sensor(name: str, condition: Condition, description: str) -> SensorDefinition:
    """A sensor over new ``evaluation`` materializations that requests one retrain per cause."""

    @sensor(
        name=name,
        job=retrain_job,
        minimum_interval_seconds=60,
        default_status=DefaultSensorStatus.RUNNING,
        description=description,
    )
    def _sensor(context: SensorEvaluationContext, mlflow: MlflowResource) -> SensorResult | SkipReason:
        state = json.loads(context.cursor) if context.cursor else {}
        after, fired = state.get("after"), set(state.get("fired", []))
        if after is None:  # first tick: the latest evaluation only
            records = context.instance.fetch_materializations(EVALUATION, limit=1).records
        else:
            records = context.instance.fetch_materializations(
                AssetRecordsFilter(asset_key=EVALUATION, after_storage_id=after), limit=100, ascending=True
            ).records
        if not records:
            return SkipReason("no new evaluation")
        tracking = mlflow.tracking()
        current = champion(tracking.client, mlflow.registered_model)
        requests, skipped = [], []
        for record in records:
            if plans_promotion(context.instance, record.run_id):
                continue
            metadata = record.asset_materialization.metadata if record.asset_materialization else {}
            figures = {key: float(metadata[key].value) for key in (RECALL_KEY, UTILIZATION_KEY) if key in metadata}
            reason = condition(figures, current, mlflow)
            cause = f"{name}:champion-v{current.version if current else 'none'}"
            if reason is None:
                continue
            if cause in fired:
                skipped.append(cause)
                continue
            fired.add(cause)
            context.log.info(f"{name}: requesting retrain_job: {reason}")
            requests.append(
                RunRequest(
                    run_key=cause,
                    run_config=retrain_run_config(),
                    tags={
                        REASON_TAG: reason[:250],
                        TRIGGER_TAG: name,
                        "sid/evaluation_run": record.run_id,
                        PROFILE_TAG: profile_name(),
                    },
                )
            )
        cursor = json.dumps({"after": max(r.storage_id for r in records), "fired": sorted(fired)})
        if requests:
            return SensorResult(run_requests=requests, cursor=cursor)
        why = f"already requested for {', '.join(sorted(set(skipped)))}" if skipped else "figures within thresholds"
        return SensorResult(skip_reason=SkipReason(f"{len(records)} new evaluation(s): {why}"), cursor=cursor)

    return _sensor


recall_drop_sensor = evaluation_sensor(
    "recall_drop_sensor",
    recall_dropped,
    f"Requests a retrain when a fresh evaluation's Recall@10 is more than {POLICY.recall_drop_alert:.0%} (relative) "
    "below the champion's (the mlflow resource's recall_drop_alert).",
)
codebook_utilization_sensor = evaluation_sensor(
    "codebook_utilization_sensor",
    utilization_low,
    f"Requests a retrain when a fresh evaluation's codebook utilization falls below "
    f"{POLICY.min_codebook_utilization:.0%} (the mlflow resource's min_utilization).",
)


@sensor(minimum_interval_seconds=60, default_status=DefaultSensorStatus.RUNNING)
def orphaned_runs_sensor(context: SensorEvaluationContext) -> SkipReason:
    """Marks as failed the started in-process runs of this host whose process is gone (``automation/orphans.py``)."""
    failed = fail_orphaned_runs(context.instance)
    return SkipReason(f"marked failed: {', '.join(failed)}" if failed else "no orphaned runs")


all_sensors = [recall_drop_sensor, codebook_utilization_sensor, orphaned_runs_sensor]
