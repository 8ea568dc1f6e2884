"""Tracking, the servable bundle, the gate, promotion and rollback, against a real MLflow SQLite store."""

import math
import pickle
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
import polars as pl
import pytest

from sid_platform.baselines.sasrec import SASRec, SASRecCheckpoint, SASRecConfig
from sid_platform.evaluation.plots import twin_line_plot
from sid_platform.registry import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS,
    BundleIntegrityError,
    Candidate,
    GatePolicy,
    ServableRecommender,
    Tracking,
    alias_version,
    champion,
    champion_history,
    decide,
    download_version,
    frame_fingerprint,
    gate,
    load_bundle,
    log_bundle,
    log_run,
    pinned_config,
    png_from_markdown,
    resolve_tracking_uri,
    rollback,
)
from sid_platform.registry.bundle import write_component
from sid_platform.semantic_ids import build_usid_table
from sid_platform_tests.artifact_samples import ann_index, assert_same

POLICY = GatePolicy(recall_tolerance=0.02, min_utilization=0.8)


def test_tracking_uri_defaults_to_sqlite_under_the_data_home_and_yields_to_env_and_config(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert resolve_tracking_uri() == f"sqlite:///{isolated_home / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert resolve_tracking_uri() == "http://mlflow:5000"
    assert resolve_tracking_uri("sqlite:///elsewhere.db") == "sqlite:///elsewhere.db"


def test_gate_rules():
    good = Candidate(recall_at_10=0.100, min_codebook_utilization=0.9)
    assert gate(good, None, POLICY) == (True, [])
    assert gate(good, 0.102, POLICY)[0]  # 2 % tolerance: the floor is 0.09996
    promote, reasons = gate(Candidate(0.0979, 0.9), 0.100, POLICY)
    assert not promote and "Recall@10 0.0979 is below the champion's 0.1000" in reasons[0]
    promote, reasons = gate(Candidate(0.2, 0.79), None, POLICY)
    assert not promote and reasons == ["codebook utilization 79.0% is below 80%"]
    promote, reasons = gate(Candidate(0.2, 0.9, failed_checks=("codebooks:codebook_utilization",)), 0.1, POLICY)
    assert not promote and "codebooks:codebook_utilization" in reasons[0]
    assert not gate(Candidate(math.nan, 0.9), 0.1, POLICY)[0]
    assert not gate(Candidate(0.1, math.nan), None, POLICY)[0]


def test_the_gate_refuses_a_serving_ranking_below_its_own_runs_sasrec_on_validation(
    tracking: Tracking, model_name: str
):
    def judged(valid: float | None, baseline: float | None) -> Candidate:
        return Candidate(
            0.2, 0.9, serving_model="router_fused", valid_recall_at_10=valid, baseline_valid_recall_at_10=baseline
        )

    assert gate(judged(0.091, 0.090), None, POLICY) == (True, [])
    assert gate(judged(0.090, 0.090), None, POLICY)[0]  # a tie is not below
    promote, reasons = gate(judged(0.089, 0.090), None, POLICY)  # refused even with no champion to beat
    assert not promote and reasons == [
        "the serving ranking router_fused has validation Recall@10 0.089 below the same run's SASRec (0.0900): "
        "a baseline beats the model"
    ]
    assert not gate(judged(None, 0.090), None, POLICY)[0]  # a serving figure that is missing is not a pass
    assert gate(judged(None, None), None, POLICY)[0]  # no baseline in the run: the rule does not apply
    config = {"run_config": {}, "evaluation": {"model": "router_fused"}}
    version = int(log_bundle(tracking, model_name, _components(0), config).version)
    decision = decide(tracking.client, model_name, version, judged(0.089, 0.090), POLICY)
    refused = tracking.client.get_model_version(model_name, str(version))
    assert not decision.promoted and refused.tags["gate"] == "refused"
    assert "below the same run's SASRec (0.0900)" in refused.tags["gate_reasons"]
    assert champion(tracking.client, model_name) is None


def test_log_run_records_params_metrics_curves_and_plots(tracking: Tracking):
    plot = twin_line_plot([0, 1, 2], [3.0, 2.0, 1.5], [0.1, 0.2, 0.25], "epoch", "loss", "R@10")
    run_id = log_run(
        tracking,
        "sasrec_model",
        params={"hidden_dim": 32, "nested": {"lr": 0.005}},
        metrics={"best_valid_recall@10": 0.25, "nan": math.nan},
        curves={"loss": [3.0, 2.0, 1.5]},
        images={"training_plot": png_from_markdown(plot)},
        tags={"dagster_run_id": "abc"},
    )
    run = tracking.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["dagster_run_id"] == "abc"
    assert run.data.params == {"hidden_dim": "32", "nested.lr": "0.005"}
    assert run.data.metrics["best_valid_recall_at_10"] == 0.25 and "nan" not in run.data.metrics
    assert [m.value for m in tracking.client.get_metric_history(run_id, "loss")] == [3.0, 2.0, 1.5]
    [plots] = [a for a in tracking.client.list_artifacts(run_id) if a.path == "plots"]
    assert [a.path for a in tracking.client.list_artifacts(run_id, "plots")] == ["plots/training_plot.png"]
    assert plots.is_dir


def _components(seed: int) -> dict:
    items = [f"i{i}" for i in range(12)]
    torch_model = SASRec(len(items), SASRecConfig(hidden_dim=8, max_len=5, num_layers=1, seed=seed))
    codes = np.stack([np.arange(12) % 4, np.arange(12) // 4], axis=1)
    return {
        "sasrec_model": SASRecCheckpoint.of(torch_model, items),
        "usid_table": build_usid_table(items, codes, "v0"),
    }


def _register(tracking: Tracking, name: str, recall: float, utilization: float = 0.9, seed: int = 0):
    config = {"run_config": {"ops": {"sasrec_model": {"config": {"seed": seed}}}}, "evaluation": {"model": "sasrec"}}
    version = log_bundle(tracking, name, _components(seed), config, metrics={"recall@10": recall})
    return int(version.version), decide(
        tracking.client, name, int(version.version), Candidate(recall, utilization), POLICY
    )


def test_promotion_refusal_and_rollback(tracking: Tracking, model_name: str, tmp_path: Path):
    client = tracking.client
    v1, first = _register(tracking, model_name, recall=0.100, seed=1)
    assert first.promoted and first.summary == "first champion"
    assert int(champion(client, model_name).version) == v1

    v2, worse = _register(tracking, model_name, recall=0.090, seed=2)
    assert not worse.promoted and worse.previous_champion == v1
    refused = client.get_model_version(model_name, str(v2))
    assert refused.tags["gate"] == "refused" and refused.tags["role"] == CHALLENGER
    assert "Recall@10 0.0900 is below the champion's 0.1000" in refused.tags["gate_reasons"]
    assert int(alias_version(client, model_name, CHALLENGER).version) == v2
    assert int(champion(client, model_name).version) == v1  # a refused version never touches the champion

    v3, better = _register(tracking, model_name, recall=0.110, seed=3)
    assert better.promoted and "vs champion v1's 0.1000" in better.summary
    assert int(champion(client, model_name).version) == v3
    assert int(alias_version(client, model_name, PREVIOUS).version) == v1
    assert client.get_model_version(model_name, str(v1)).tags["role"] == "retired"
    assert champion_history(client, model_name) == [v1, v3]

    with pytest.raises(ValueError, match="never champion"):
        rollback(client, model_name, to_version=v2)
    assert rollback(client, model_name) == (v3, v1)
    restored = champion(client, model_name)
    assert int(restored.version) == v1 and restored.tags["role"] == CHAMPION
    assert client.get_model_version(model_name, str(v3)).tags["role"] == "rolled_back"
    assert alias_version(client, model_name, PREVIOUS) is None
    # The restored champion carries the exact config that produced it, and serves.
    pinned = pinned_config(tracking, restored)
    assert pinned["run_config"] == {"ops": {"sasrec_model": {"config": {"seed": 1}}}}
    assert pinned["components"]["sasrec_model"]["file"] == "sasrec_model.safetensors"  # its own format, no pickle
    model = mlflow.pyfunc.load_model(str(download_version(tracking, restored, tmp_path)))
    out = model.predict(pd.DataFrame({"history": [["i1", "i2"], ["i5"]]}), params={"k": 3})
    assert [len(row) for row in out["items"]] == [3, 3]
    assert all(sid.count("-") == 2 for row in out["sids"] for sid in row)
    with pytest.raises(ValueError, match="first champion"):
        rollback(client, model_name)
    assert rollback(client, model_name, to_version=v3) == (v1, v3)  # a former champion, by name
    assert int(champion(client, model_name).version) == v3


def test_bundle_pins_component_hashes(tracking: Tracking, model_name: str):
    frame = pl.DataFrame({"a": [1, 2]})
    version = log_bundle(tracking, model_name, {"table": frame, "raw": b"\x00\x01"}, {"run_config": {}})
    pinned = pinned_config(tracking, version)
    assert set(pinned["components"]) == {"table", "raw"}
    assert pinned["components"]["raw"]["file"] == "raw.bin" and len(pinned["components"]["raw"]["sha256"]) == 64


def test_frame_fingerprint_follows_the_content():
    frame = pl.DataFrame({"user_id": ["u1", "u2"], "item_id": ["a", "b"], "categories": [["x"], None]})
    assert frame_fingerprint(frame) == frame_fingerprint(frame.clone())
    assert frame_fingerprint(frame) != frame_fingerprint(frame.with_columns(pl.lit("c").alias("item_id")))
    assert frame_fingerprint(frame) != frame_fingerprint(frame.reverse())


def test_bundle_components_are_stored_without_pickle(tracking: Tracking, model_name: str, tmp_path: Path):
    components = {**_components(0), "faiss_index": ann_index(), "document": {"k": [1, 2]}}
    version = log_bundle(tracking, model_name, components, {"evaluation": {"model": "sasrec"}})
    files = {name: entry["file"] for name, entry in pinned_config(tracking, version)["components"].items()}
    assert files == {
        "sasrec_model": "sasrec_model.safetensors",
        "usid_table": "usid_table.parquet",
        "faiss_index": "faiss_index.npz",
        "document": "document.json",
    }
    model = load_bundle(download_version(tracking, version, tmp_path))
    for name, value in components.items():
        assert_same(model.components[name], value, name)
    with pytest.raises(TypeError, match="bundle component 'odd' cannot be stored"):
        write_component("odd", object(), tmp_path)


# What MLflow's pickle of the model may name: our class, and MLflow's record of predict()'s type hints.
PYFUNC_GLOBALS = {
    ("sid_platform.registry.bundle", "ServableRecommender"),
    ("mlflow.models.signature", "_TypeHints"),
    ("pandas", "DataFrame"),
}


class _OnlyTheRecommender(pickle.Unpickler):
    """Resolves only the classes in ``PYFUNC_GLOBALS``; any other global is refused unresolved."""

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in PYFUNC_GLOBALS:
            raise pickle.UnpicklingError(f"python_model.pkl refers to {module}.{name}")
        return super().find_class(module, name)


def test_mlflows_own_pickle_holds_only_class_references(tracking: Tracking, model_name: str, tmp_path: Path):
    version = log_bundle(tracking, model_name, _components(0), {"evaluation": {"model": "sasrec"}})
    folder = download_version(tracking, version, tmp_path)
    with open(folder / "python_model.pkl", "rb") as handle:
        model = _OnlyTheRecommender(handle).load()
    assert type(model) is ServableRecommender and not hasattr(model, "components")  # a reference, no data


def test_a_component_altered_after_registration_is_refused_naming_the_file(
    tracking: Tracking, model_name: str, tmp_path: Path
):
    version = log_bundle(tracking, model_name, _components(0), {"evaluation": {"model": "sasrec"}})
    folder = download_version(tracking, version, tmp_path)
    table = folder / "artifacts" / "usid_table.parquet"
    table.write_bytes(table.read_bytes() + b"\0")  # one byte more than was registered
    with pytest.raises(BundleIntegrityError, match=r"usid_table\.parquet: its SHA-256 .* refusing to load it"):
        load_bundle(folder)
    with pytest.raises(Exception, match=r"usid_table\.parquet: its SHA-256"):  # MLflow's loader: the same check
        mlflow.pyfunc.load_model(str(folder))
    table.unlink()
    with pytest.raises(FileNotFoundError):
        load_bundle(folder)
