"""The Dagster graph end to end, on the generator's data, with a real (ephemeral) Dagster instance."""

from pathlib import Path

import mlflow
import pandas as pd
from dagster import AssetKey

from sid_platform.automation.run import run_main_job
from sid_platform.definitions import defs
from sid_platform.registry import Tracking, champion, download_version


def test_definitions_load_with_every_asset_and_check():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "raw_interactions",
        "item_catalog",
        "quarantined_rows",
        "data_splits",
        "popularity_model",
        "sasrec_model",
        "evaluation",
        "model_promotion",
    } <= keys
    checks = {c.name for c in graph.asset_check_keys}
    assert {
        "raw_interactions_expectations",
        "item_catalog_expectations",
        "codebook_utilization",
        "usid_unique",
    } <= checks


def test_main_job_materializes_everything_and_the_model_learns(isolated_home: Path):
    result = run_main_job("test")
    assert result.success
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert {AssetKey("evaluation"), AssetKey("sasrec_model"), AssetKey("data_splits")} <= materialized
    evaluations = result.get_asset_check_evaluations()
    assert len(evaluations) == 4 and all(e.passed for e in evaluations)
    document = result.output_for_node("evaluation")
    utilization = document["semantic_ids"]["utilization_per_level"]
    assert len(utilization) == 3 and min(utilization) >= 0.8
    test = document["test"]["metrics"]
    assert test["sasrec"]["recall@10"] > 3 * test["popularity"]["recall@10"]
    for ranking in ("router_generative", "router_hybrid_cosine"):  # the router's two rankings learn too
        assert test[ranking]["recall@10"] > 3 * test["popularity"]["recall@10"]
    channels = document["test"]["channels"]
    assert channels["coverage_union"] >= max(channels["coverage_prefix"], channels["coverage_ann"])
    assert channels["candidates_union"] <= channels["candidates_prefix"] + channels["candidates_ann"]
    assert document["test"]["protocol"]["exclude_history"] is False
    assert (isolated_home / "runs" / result.run_id / "evaluation.json").is_file()
    assert (isolated_home / "assets" / "data_splits.parquet").is_file()
    # The first model of an empty registry (SQLite under the data home) becomes champion, with its figures.
    promotion = result.output_for_node("model_promotion")
    assert promotion["promoted"] and promotion["tracking_uri"].startswith(f"sqlite:///{isolated_home}")
    current = champion(Tracking.resolve().client, "sid-recommender")
    assert int(current.version) == promotion["version"] == 1
    assert float(current.tags["recall_at_10"]) == document["serving"]["recall@10"]
    # The registered champion serves the router's ranking: item ids in, distinct known item ids out.
    served = mlflow.pyfunc.load_model(str(download_version(Tracking.resolve(), current, isolated_home / "served")))
    catalog = result.output_for_node("ingest", "item_catalog")["item_id"].to_list()
    out = served.predict(pd.DataFrame({"history": [catalog[:3], catalog[5:6]]}), params={"k": 10})
    assert all(len(set(row)) == 10 and set(row) <= set(catalog) for row in out["items"])
    # A selection re-runs on stored inputs: the reranker and the evaluation, nothing upstream.
    again = run_main_job("test", assets=["dpo_checkpoint", "evaluation"])
    assert {e.asset_key.to_user_string() for e in again.get_asset_materialization_events()} == {
        "dpo_checkpoint",
        "evaluation",
    }
    assert (
        again.output_for_node("evaluation")["test"]["metrics"]["router_hybrid_cosine"] == test["router_hybrid_cosine"]
    )


def test_a_failed_blocking_check_stops_everything_downstream(tmp_path: Path):
    # 3 of 10 events point at an item that is not in the catalog: 30 % quarantined, above the 5 % limit.
    events = ["user_id,item_id,position"] + [f"u{i % 2},{'ghost' if i < 3 else 'a'},{i}" for i in range(10)]
    (tmp_path / "events.csv").write_text("\n".join(events) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,Alpha\nb,Beta\n")
    dataset = {
        "source": "generic",
        "data_dir": str(tmp_path),
        "interactions_path": "events.csv",
        "items_path": "items.csv",
    }
    result = run_main_job("test", {"resources": {"dataset": {"config": dataset}}}, raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["raw_interactions_expectations"]
    assert "quarantined" in (failed[0].description or "")
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "raw_interactions" in materialized and "data_splits" not in materialized and "evaluation" not in materialized
