"""The Dagster graph on the generator's data: one concern per test, all reading the session's shared run (``main_run``)."""

import re
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import polars as pl

from sid_platform.artifacts import read_artifact
from sid_platform.automation.run import local_instance, run_main_job
from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.data.split import UserSequences
from sid_platform.definitions import defs
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.registry import Tracking, champion, download_version, load_bundle
from sid_platform.reranking.dpo import RerankerCheckpoint
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.blend import ScoreBlend
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.retrieval.stored import Candidates
from sid_platform.semantic_ids import CodebooksCheckpoint
from sid_platform.serving.evaluation import serving_model
from sid_platform.storage import LocalBlobStore
from sid_platform_tests.assets.conftest import MainRun

ASSETS = {
    "raw_interactions",
    "item_catalog",
    "quarantined_rows",
    "data_splits",
    "user_sequences",
    "popularity_model",
    "sasrec_model",
    "item_embeddings",
    "codebooks",
    "usid_table",
    "prefix_index",
    "router_checkpoint",
    "faiss_index",
    "candidates",
    "score_blend",
    "dpo_checkpoint",
    "evaluation",
    "model_promotion",
}
CHECKS = {"raw_interactions_expectations", "item_catalog_expectations", "codebook_utilization", "usid_unique"}
# Every asset's stored file: its suffix and the type it reads back as (the dict outputs: JSON, or npz if not plain).
STORED_AS = {
    **{name: (".parquet", pl.DataFrame) for name in ("raw_interactions", "item_catalog", "quarantined_rows")},
    **{name: (".parquet", pl.DataFrame) for name in ("data_splits", "usid_table", "prefix_index")},
    "user_sequences": (".npz", UserSequences),
    "popularity_model": (".npz", PopularityModel),
    "item_embeddings": (".npz", ItemEmbeddings),
    "faiss_index": (".npz", AnnIndex),
    "candidates": (".npz", Candidates),
    "score_blend": (".npz", ScoreBlend),
    "sasrec_model": (".safetensors", SASRecCheckpoint),
    "codebooks": (".safetensors", CodebooksCheckpoint),
    "router_checkpoint": (".safetensors", RouterCheckpoint),
    "dpo_checkpoint": (".safetensors", RerankerCheckpoint),
    "evaluation": ((".json", ".npz"), dict),
    "model_promotion": ((".json", ".npz"), dict),
}


def test_definitions_load_with_every_asset_and_check():
    graph = defs.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == ASSETS
    assert {c.name for c in graph.asset_check_keys} == CHECKS


def test_the_main_job_materializes_every_asset_and_passes_every_check(main_run: MainRun):
    assert main_run.result.success
    assert set(main_run.metadata) == ASSETS
    evaluations = main_run.result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == CHECKS and all(e.passed for e in evaluations)
    assert (main_run.home / "assets" / "data_splits.parquet").is_file()
    assert (main_run.home / "assets" / "candidates.npz").is_file()


def test_every_asset_is_stored_in_a_format_that_carries_no_code(main_run: MainRun):
    store = LocalBlobStore(main_run.home / "assets")
    stored = {path.stem: path.suffix for path in store.root.iterdir()}
    assert set(stored) == set(STORED_AS) == ASSETS  # one file each, no pickle beside any
    for name, (suffix, kind) in STORED_AS.items():
        assert stored[name] in (suffix if isinstance(suffix, tuple) else (suffix,)), name
        assert isinstance(read_artifact(store, name), kind), name


def test_the_codebooks_use_most_of_their_codes(main_run: MainRun):
    utilization = main_run.outputs["evaluation"]["semantic_ids"]["utilization_per_level"]
    assert len(utilization) == 3 and min(utilization) >= 0.8
    assert main_run.outputs["evaluation"]["serving"]["min_codebook_utilization"] == min(utilization)


def test_sasrec_and_both_router_rankings_learn(main_run: MainRun):
    test = main_run.outputs["evaluation"]["test"]["metrics"]
    for model in ("sasrec", "router_generative", "router_hybrid_cosine"):
        assert test[model]["recall@10"] > 3 * test["popularity"]["recall@10"], model


def test_the_union_of_the_channels_covers_at_least_each_channel(main_run: MainRun):
    channels = main_run.outputs["evaluation"]["test"]["channels"]
    assert channels["coverage_union"] >= max(channels["coverage_prefix"], channels["coverage_ann"])
    assert channels["candidates_union"] <= channels["candidates_prefix"] + channels["candidates_ann"]


def test_the_evaluation_document_says_its_protocol_and_is_written_as_json(main_run: MainRun):
    document = main_run.outputs["evaluation"]
    assert document["test"]["protocol"]["exclude_history"] is False
    assert document["test"]["protocol"]["split"] == "test" and document["valid"]["protocol"]["split"] == "valid"
    assert (main_run.home / "runs" / main_run.result.run_id / "evaluation.json").is_file()
    meta = main_run.metadata["evaluation"]
    model = serving_model(document["valid"]["metrics"])  # chosen on validation users
    assert meta["serving_model"] == model == document["serving"]["model"]
    assert meta["serving_recall@10"] == document["test"]["metrics"][model]["recall@10"]
    assert document["serving"]["valid_recall@10"] == document["valid"]["metrics"][model]["recall@10"]
    assert document["serving"]["baseline_valid_recall@10"] == document["valid"]["metrics"]["sasrec"]["recall@10"]


def test_every_trainer_reports_its_epochs_and_logs_one_mlflow_run(main_run: MainRun):
    meta = main_run.metadata
    for trainer in ("sasrec_model", "router_checkpoint"):
        assert {"training_plot", "training_curve", "mlflow_run_id", "best_epoch", "train_seconds"} <= set(meta[trainer])
    assert {"val@4", "tokenizer_version", "stopped_by", "selection", "resumed_from_epoch"} <= set(
        meta["router_checkpoint"]
    )
    assert {"code_usage", "utilization_level_1", "mlflow_run_id", "version"} <= set(meta["codebooks"])
    assert {"study", "preference_accuracy_plot", "test_recall10_dpo", "valid_ndcg10_base", "mlflow_run_id"} <= set(
        meta["dpo_checkpoint"]
    )
    assert "valid_preference_accuracy_bounded_random_negatives" in meta["dpo_checkpoint"]
    client = Tracking.resolve(main_run.outputs["model_promotion"]["tracking_uri"]).client
    runs = client.search_runs(
        [client.get_experiment_by_name("sid-platform").experiment_id],
        f"tags.dagster_run_id = '{main_run.result.run_id}'",
    )
    trainers = {r.info.run_name: r for r in runs if r.info.run_name not in ("model_promotion", "evaluation")}
    assert set(trainers) == {"sasrec_model", "codebooks", "router_checkpoint", "dpo_checkpoint"}
    for name, run in trainers.items():
        assert run.data.tags["dagster_asset"] == name and meta[name]["mlflow_run_id"] == run.info.run_id


def test_the_run_report_is_one_self_contained_page_linked_from_the_evaluation_and_mlflow(main_run: MainRun):
    meta, document = main_run.metadata["evaluation"], main_run.outputs["evaluation"]
    path = Path(meta["report"])
    assert path == main_run.home / "runs" / main_run.result.run_id / "report.html"
    page = path.read_text()
    for split, title in (("test", "Test users"), ("valid", "Validation users")):  # the evaluation table, both splits
        assert f"<h3>{title}: {document[split]['users']}," in page
        table = page.split(f"<h3>{title}")[1].split("</table>")[0]
        assert all(f"<td>{model}</td>" in table for model in document[split]["metrics"])
    assert f'<p class="model">{document["serving"]["model"]}</p>' in page and "Why: " in page
    assert f"<th>run id</th><td>{main_run.result.run_id}</td>" in page
    assert "<th>profile</th><td>test</td>" in page and "<th>dataset</th><td>synthetic" in page
    assert "history not masked (exclude_history=false)" in page
    # Channels, code usage, and the curves of SASRec, the router, the reranker, its variants and the codebooks.
    images = re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', page)
    assert len(images) == page.count("<img") == 7
    assert not re.search(r'(src|href)="(?!data:)', page) and "<script" not in page  # nothing to fetch
    client = Tracking.resolve(main_run.outputs["model_promotion"]["tracking_uri"]).client
    run = client.get_run(meta["report_mlflow_run_id"])
    assert run.info.run_name == "evaluation" and run.data.tags["dagster_run_id"] == main_run.result.run_id
    assert [a.path for a in client.list_artifacts(run.info.run_id, "report")] == ["report/report.html"]


def test_the_first_model_becomes_champion_with_its_figures(main_run: MainRun):
    promotion = main_run.outputs["model_promotion"]
    assert promotion["promoted"] and promotion["tracking_uri"].startswith(f"sqlite:///{main_run.home}")
    current = champion(Tracking.resolve(promotion["tracking_uri"]).client, "sid-recommender")
    assert int(current.version) == promotion["version"] == 1
    assert float(current.tags["recall_at_10"]) == main_run.outputs["evaluation"]["serving"]["recall@10"]


def test_the_registered_champion_serves_distinct_known_items(main_run: MainRun, tmp_path: Path):
    tracking = Tracking.resolve(main_run.outputs["model_promotion"]["tracking_uri"])
    current = champion(tracking.client, "sid-recommender")
    folder = download_version(tracking, current, tmp_path / "served")
    served = mlflow.pyfunc.load_model(str(folder))
    catalog = main_run.outputs["item_catalog"]["item_id"].to_list()
    histories = pd.DataFrame({"history": [catalog[:3], catalog[5:6]]})
    out = served.predict(histories, params={"k": 10})
    assert all(len(set(row)) == 10 and set(row) <= set(catalog) for row in out["items"])
    # Without MLflow's loader (no python_model.pkl): the same components, hash-checked, the same ranking.
    direct = load_bundle(folder).predict(None, histories, params={"k": 10})
    assert [list(row) for row in direct["items"]] == [list(row) for row in out["items"]]


def test_every_long_step_logs_its_progress_to_the_run(in_main_run_home: MainRun):
    messages = [entry.user_message for entry in local_instance().all_logs(in_main_run_home.result.run_id)]
    for start in (
        "embedding (",
        "codebooks (rq-vae): ",
        "sasrec: up to 40 epochs, patience 8",
        "sasrec: finished after ",
        "router: up to 25 epochs, patience 6",
        "candidates (valid users): ",
        "candidates (test users): ",
        "DPO study, variant 2/3: unbounded, hard negatives",
        "reranker (bounded, random negatives): finished after 5 epochs",
        "evaluation (test users): sasrec: ",
        "evaluation (valid users): router_fused_dpo reranking: ",
        "run report: ",
    ):
        assert any(message.startswith(start) for message in messages), start


def test_a_selection_reruns_only_the_selected_assets_on_stored_inputs(in_main_run_home: MainRun):
    again = run_main_job("test", assets=["dpo_checkpoint", "evaluation"])
    materialized = {e.asset_key.to_user_string() for e in again.get_asset_materialization_events()}
    assert materialized == {"dpo_checkpoint", "evaluation"}
    # Same stored candidates, same seeds: the reranker and every figure come out the same.
    before, after = in_main_run_home.outputs["evaluation"], again.output_for_node("evaluation")
    assert after["test"]["metrics"] == before["test"]["metrics"]
    assert after["valid"]["metrics"] == before["valid"]["metrics"]
    assert np.isclose(after["serving"]["recall@10"], before["serving"]["recall@10"])


def test_a_failed_blocking_check_stops_everything_downstream(tmp_path: Path):
    # 3 of 10 events point at an item that is not in the catalog: 30 % quarantined, above the 5 % limit,
    # and 3 rows, above the row limit this run sets (the default, 10 rows, lets a small source through).
    events = ["user_id,item_id,position"] + [f"u{i % 2},{'ghost' if i < 3 else 'a'},{i}" for i in range(10)]
    (tmp_path / "events.csv").write_text("\n".join(events) + "\n")
    (tmp_path / "items.csv").write_text("item_id,title\na,Alpha\nb,Beta\n")
    dataset = {
        "source": "generic",
        "data_dir": str(tmp_path),
        "interactions_path": "events.csv",
        "items_path": "items.csv",
    }
    checks = {"raw_interactions_raw_interactions_expectations": {"config": {"max_quarantined_rows": 2}}}
    result = run_main_job("test", {"ops": checks, "resources": {"dataset": {"config": dataset}}}, raise_on_error=False)
    assert not result.success
    failed = [e for e in result.get_asset_check_evaluations() if not e.passed]
    assert [e.check_name for e in failed] == ["raw_interactions_expectations"]
    assert "quarantined" in (failed[0].description or "")
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "raw_interactions" in materialized and "data_splits" not in materialized and "evaluation" not in materialized
