"""Retrain sensors and the weekly schedule: real evaluation events in a temporary Dagster instance, a real
MLflow registry in SQLite."""

from datetime import UTC, datetime

import pytest
from dagster import (
    AssetMaterialization,
    DagsterInstance,
    MaterializeResult,
    SensorResult,
    SkipReason,
    asset,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    materialize,
)

from sid_platform.automation.schedules import weekly_retrain, weekly_retrain_schedule
from sid_platform.automation.sensors import REASON_TAG, codebook_utilization_sensor, recall_drop_sensor
from sid_platform.definitions import defs
from sid_platform.registry import Candidate, decide, log_bundle
from sid_platform.resources import MlflowResource


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One SQLite store for the module (creating one takes seconds); each test registers its own model name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def mlflow(store: str, request: pytest.FixtureRequest) -> MlflowResource:
    return MlflowResource(tracking_uri=store, registered_model=f"rec-{request.node.name}")


@pytest.fixture
def instance():
    with instance_for_test() as temporary:
        yield temporary


def _register_champion(mlflow: MlflowResource, recall: float) -> int:
    tracking = mlflow.tracking()
    version = int(log_bundle(tracking, mlflow.registered_model, {"weights": b"0"}, {}).version)
    decision = decide(tracking.client, mlflow.registered_model, version, Candidate(recall, 0.9), mlflow.policy())
    assert decision.promoted
    return version


def _evaluation(instance: DagsterInstance, recall: float, utilization: float = 0.9) -> None:
    metadata = {"serving_recall@10": recall, "min_codebook_utilization": utilization}
    instance.report_runless_asset_event(AssetMaterialization("evaluation", metadata=metadata))


class Ticker:
    """Evaluates a sensor the way the daemon does: each tick starts from the cursor the previous one left."""

    def __init__(self, sensor, instance: DagsterInstance, mlflow: MlflowResource):
        self.sensor, self.instance, self.mlflow, self.cursor = sensor, instance, mlflow, None

    def __call__(self) -> list:
        context = build_sensor_context(instance=self.instance, cursor=self.cursor, resources={"mlflow": self.mlflow})
        result = self.sensor(context)
        if isinstance(result, SkipReason):
            return []
        assert isinstance(result, SensorResult)
        self.cursor = result.cursor or self.cursor
        return list(result.run_requests or [])


def test_recall_drop_sensor_fires_once_per_cause(instance: DagsterInstance, mlflow: MlflowResource):
    tick = Ticker(recall_drop_sensor, instance, mlflow)
    assert tick() == []  # no evaluation at all
    _evaluation(instance, recall=0.05)
    assert tick() == []  # nothing registered to compare with
    v1 = _register_champion(mlflow, recall=0.100)
    _evaluation(instance, recall=0.099)  # 1 % below: within the 2 % alert
    assert tick() == []
    _evaluation(instance, recall=0.100, utilization=0.5)  # utilization is the other sensor's business
    assert tick() == []
    _evaluation(instance, recall=0.097)  # 3 % below
    [request] = tick()
    assert request.run_key == f"recall_drop_sensor:champion-v{v1}"
    assert f"Recall@10 0.0970 is 3.0% below champion v{v1}'s registered 0.1000" in request.tags[REASON_TAG]
    assert tick() == []  # same cursor, nothing new
    _evaluation(instance, recall=0.090)  # the retrain's own, still worse, evaluation: same cause
    assert tick() == []
    v2 = _register_champion(mlflow, recall=0.120)  # a new champion opens a new cause
    _evaluation(instance, recall=0.110)
    [request] = tick()
    assert request.run_key == f"recall_drop_sensor:champion-v{v2}"


def test_utilization_sensor_fires_once_per_cause(instance: DagsterInstance, mlflow: MlflowResource):
    tick = Ticker(codebook_utilization_sensor, instance, mlflow)
    _register_champion(mlflow, recall=0.1)
    _evaluation(instance, recall=0.1, utilization=0.85)
    assert tick() == []
    _evaluation(instance, recall=0.05, utilization=0.85)  # a recall drop is the other sensor's business
    assert tick() == []
    _evaluation(instance, recall=0.1, utilization=0.70)
    [request] = tick()
    assert request.tags[REASON_TAG] == "codebook utilization 70.0% is below 80%"
    assert request.tags["sid/retrain_trigger"] == "codebook_utilization_sensor"
    _evaluation(instance, recall=0.1, utilization=0.60)
    assert tick() == []


@asset(name="evaluation")
def evaluation_of_a_candidate() -> MaterializeResult:
    return MaterializeResult(metadata={"serving_recall@10": 0.01, "min_codebook_utilization": 0.1})


@asset(name="model_promotion", deps=["evaluation"])
def promotion_stub() -> None:
    pass


def test_a_candidates_evaluation_is_left_to_the_gate(instance: DagsterInstance, mlflow: MlflowResource):
    _register_champion(mlflow, recall=0.1)
    recall, utilization = (
        Ticker(recall_drop_sensor, instance, mlflow),
        Ticker(codebook_utilization_sensor, instance, mlflow),
    )
    _evaluation(instance, recall=0.1)
    assert recall() == [] and utilization() == []
    assert materialize([evaluation_of_a_candidate, promotion_stub], instance=instance).success
    assert recall() == [] and utilization() == []  # a run that promotes: the gate's business
    assert materialize([evaluation_of_a_candidate], instance=instance).success
    assert len(recall()) == 1 and len(utilization()) == 1  # the same figures from a run that only evaluates


def test_first_tick_judges_only_the_latest_evaluation(instance: DagsterInstance, mlflow: MlflowResource):
    _evaluation(instance, recall=0.1, utilization=0.5)  # history from before the sensor existed
    _evaluation(instance, recall=0.1, utilization=0.9)
    assert Ticker(codebook_utilization_sensor, instance, mlflow)() == []


def test_schedule_and_sensors_target_the_retrain_job(monkeypatch: pytest.MonkeyPatch):
    assert weekly_retrain.job_name == "retrain_job" and weekly_retrain.cron_schedule == "0 3 * * 1"
    assert recall_drop_sensor.job_name == codebook_utilization_sensor.job_name == "retrain_job"
    assert {s.name for s in defs.sensors} == {
        "recall_drop_sensor",
        "codebook_utilization_sensor",
        "orphaned_runs_sensor",
    }
    assert [s.name for s in defs.schedules] == ["weekly_retrain"]
    monkeypatch.setenv("SID_RETRAIN_CRON", "30 1 * * 0")
    monkeypatch.setenv("SID_PROFILE", "test")
    schedule = weekly_retrain_schedule()
    assert schedule.cron_schedule == "30 1 * * 0"
    context = build_schedule_context(scheduled_execution_time=datetime(2026, 11, 29, 1, 30, tzinfo=UTC))
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags[REASON_TAG] == "weekly schedule (30 1 * * 0)"
    assert request.run_config["resources"]["dataset"]["config"]["source"] == "synthetic"
    # The retrain job rebuilds everything downstream of the data, through the promotion.
    retrain = defs.resolve_job_def("retrain_job")
    keys = {key.to_user_string() for key in retrain.asset_layer.selected_asset_keys}
    assert {"raw_interactions", "item_catalog", "sasrec_model", "codebooks", "evaluation", "model_promotion"} <= keys


def test_monitoring_job_re_evaluates_without_training_or_promoting():
    from sid_platform.definitions import defs

    job = defs.resolve_job_def("monitoring_job")
    keys = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert {"raw_interactions", "item_catalog", "data_splits", "evaluation"} <= keys
    assert not keys & {"model_promotion", "router_checkpoint", "sasrec_model", "codebooks", "dpo_checkpoint"}
