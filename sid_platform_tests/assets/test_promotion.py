"""``model_promotion`` and ``rollback_job`` in real Dagster runs (temporary instance) against a real MLflow store.

Upstream assets are stubs with the real names, so each run states the figures the gate sees; a blocking
check on the stub ``codebooks`` fails on demand.
"""

from pathlib import Path

import polars as pl
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetKey,
    Config,
    asset,
    asset_check,
    instance_for_test,
    materialize,
    validate_run_config,
)

from sid_platform.assets.promotion import failed_checks, model_promotion, resolved_run_config
from sid_platform.automation.jobs import rollback_job
from sid_platform.cli import USAGE_ERROR, main
from sid_platform.definitions import defs
from sid_platform.profiles import run_config
from sid_platform.registry import CHALLENGER, champion, pinned_config
from sid_platform.resources import MlflowResource
from sid_platform.semantic_ids import TokenizerSpec


class EvaluationStub(Config):
    recall: float = 0.1
    utilization: float = 0.9


@asset(name="evaluation")
def evaluation_stub(config: EvaluationStub) -> dict:
    serving = {"model": "sasrec", "recall@10": config.recall, "ndcg@10": config.recall / 2}
    return {
        "serving": {**serving, "min_codebook_utilization": config.utilization},
        "test": {"metrics": {"sasrec": {"recall@10": config.recall}}},
    }


def _constant(name: str, value):
    @asset(name=name)
    def _stub():
        return value

    return _stub


STUBS = [
    evaluation_stub,
    _constant("data_splits", pl.DataFrame({"user_id": ["u"], "item_id": ["a"], "split": ["train"]})),
    _constant("item_catalog", pl.DataFrame({"item_id": ["a", "b"]})),
    _constant("codebooks", {"version": "v0", "config": {"codebook_size": 4}}),
    _constant("usid_table", pl.DataFrame({"item_id": ["a", "b"], "sid": ["0-0-0", "1-0-0"]})),
    _constant("prefix_index", pl.DataFrame({"level": [1], "prefix": ["0"]})),
    _constant("sasrec_model", {"kind": "sasrec", "item_ids": ["a", "b"]}),
    _constant("router_checkpoint", {"kind": "router", "item_ids": ["a", "b"]}),
    _constant("faiss_index", b"index"),
    _constant("dpo_checkpoint", {"kind": "dpo_reranker"}),
    _constant("score_blend", {"kind": "score_blend"}),
    _constant("item_embeddings", {"kind": "item_embeddings"}),
]


class CheckStub(Config):
    passed: bool = True


@asset_check(asset="codebooks", blocking=True)
def codebooks_ok(config: CheckStub) -> AssetCheckResult:
    return AssetCheckResult(passed=config.passed)


def _run(instance, mlflow: MlflowResource, recall: float, check_passes: bool = True):
    run_config = {
        "ops": {
            "evaluation": {"config": {"recall": recall}},
            "codebooks_codebooks_ok": {"config": {"passed": check_passes}},
        }
    }
    return materialize(
        [*STUBS, codebooks_ok, model_promotion],
        instance=instance,
        resources={"mlflow": mlflow},
        run_config=run_config,
        raise_on_error=False,
    )


def test_promotion_refusal_failed_run_and_rollback(tmp_path: Path, capsys: pytest.CaptureFixture):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow = MlflowResource(tracking_uri=uri)
    client, name = mlflow.tracking().client, mlflow.registered_model
    with instance_for_test() as instance:
        first = _run(instance, mlflow, recall=0.10)
        assert first.success and first.output_for_node("model_promotion")["promoted"]
        assert int(champion(client, name).version) == 1
        assert instance.get_run_by_id(first.run_id).tags["sid/promotion"] == "v1 promoted"

        worse = _run(instance, mlflow, recall=0.08)
        decision = worse.output_for_node("model_promotion")
        assert worse.success and not decision["promoted"] and decision["version"] == 2
        reason = "Recall@10 0.0800 is below the champion's 0.1000"
        assert reason in client.get_model_version(name, "2").tags["gate_reasons"]
        [event] = [e for e in worse.get_asset_materialization_events() if e.asset_key == AssetKey("model_promotion")]
        metadata = event.materialization.metadata
        assert metadata["decision"].value == "refused" and reason in metadata["reasons"].value
        assert reason in instance.get_run_by_id(worse.run_id).tags["sid/promotion_reason"]
        assert int(client.get_model_version_by_alias(name, CHALLENGER).version) == 2
        assert int(champion(client, name).version) == 1

        # A run whose blocking check fails never reaches the registry: no version, same champion.
        failed = _run(instance, mlflow, recall=0.30, check_passes=False)
        assert not failed.success
        assert AssetKey("model_promotion") not in {e.asset_key for e in failed.get_asset_materialization_events()}
        assert len(client.search_model_versions(f"name='{name}'")) == 2
        assert int(champion(client, name).version) == 1
        assert failed_checks(instance, failed.run_id) == ["codebooks:codebooks_ok (failed)"]
        assert failed_checks(instance, "no-such-run") == ["no blocking asset check ran in run no-such-run"]

        better = _run(instance, mlflow, recall=0.12)
        assert better.output_for_node("model_promotion")["promoted"]
        assert int(champion(client, name).version) == 3
        assert pinned_config(mlflow.tracking(), champion(client, name))["dagster_run_id"] == better.run_id

        back = rollback_job.execute_in_process(instance=instance, resources={"mlflow": mlflow})
        assert back.success and back.output_for_node("rollback_champion")["to"] == 1
        restored = champion(client, name)
        assert int(restored.version) == 1
        assert pinned_config(mlflow.tracking(), restored)["dagster_run_id"] == first.run_id  # its own config

    # The command line does the same through the same function.
    assert main(["rollback", "--to", "3", "--tracking-uri", uri]) == 0
    assert "v1 -> v3" in capsys.readouterr().out
    assert int(champion(client, name).version) == 3
    assert main(["rollback", "--to", "2", "--tracking-uri", uri]) == USAGE_ERROR  # one line, no traceback
    assert "rollback refused: v2 was never champion" in capsys.readouterr().err


@asset(name="evaluation", deps=["codebooks"])
def evaluation_beside_a_failing_run(context: AssetExecutionContext) -> dict:
    """Runs after this run's blocking check, and before its gate, while another run's check fails."""
    failing_elsewhere = AssetCheckEvaluation(asset_key=AssetKey("codebooks"), check_name="codebooks_ok", passed=False)
    context.instance.report_runless_asset_event(failing_elsewhere)
    return evaluation_stub(EvaluationStub())


@asset_check(asset="codebooks", blocking=True)
def codebooks_warns(config: CheckStub) -> AssetCheckResult:
    return AssetCheckResult(passed=config.passed, severity=AssetCheckSeverity.WARN)


def test_the_gate_judges_its_own_runs_checks(tmp_path: Path):
    mlflow = MlflowResource(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    others = [stub for stub in STUBS if stub is not evaluation_stub]
    with instance_for_test() as instance:
        # Another run's failing check lands between this run's passing check and its gate: still promoted.
        mixed = materialize(
            [*others, evaluation_beside_a_failing_run, codebooks_ok, model_promotion],
            instance=instance,
            resources={"mlflow": mlflow},
        )
        assert mixed.success and mixed.output_for_node("model_promotion")["promoted"]
        latest = instance.get_latest_asset_check_evaluation_record(AssetCheckKey(AssetKey("codebooks"), "codebooks_ok"))
        assert latest is not None and latest.run_id != mixed.run_id  # the latest evaluation anywhere failed

        # A blocking check failing with severity WARN does not stop the run; the gate refuses on it.
        warned = materialize(
            [*STUBS, codebooks_warns, model_promotion],
            instance=instance,
            resources={"mlflow": mlflow},
            run_config={"ops": {"codebooks_codebooks_warns": {"config": {"passed": False}}}},
        )
        decision = warned.output_for_node("model_promotion")
        assert warned.success and not decision["promoted"]
        assert "blocking asset checks did not pass: codebooks:codebooks_warns (failed)" in decision["summary"]


def test_the_pinned_resolved_config_is_a_rerunnable_run_config_with_defaults_filled_in():
    job = defs.resolve_job_def("main_job")
    given = {**run_config("test"), "loggers": {"console": {"config": {"log_level": "INFO"}}}}
    resolved = resolved_run_config(job, given)
    validate_run_config(job, resolved)  # rerunnable as it is
    assert resolved["ops"]["codebooks"]["config"]["levels"] == 3  # as given
    assert resolved["ops"]["codebooks"]["config"]["kmeans_niter"] == TokenizerSpec().kmeans_niter  # a default
    assert resolved["resources"]["dataset"]["config"]["source"] == "synthetic"
