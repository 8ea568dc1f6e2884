"""``cold_start_job`` over a champion registered from the shared test-profile run: new catalog rows get Semantic IDs
from its codebooks (MiniLM, as the run embedded the catalog), a new version is registered and made champion, and
the service's model loaded from it knows, explains and finds the new items; existing IDs do not move."""

from pathlib import Path

import polars as pl
import pytest
from dagster import DagsterInstance

from sid_platform.assets.promotion import BUNDLE_COMPONENTS, derived_components
from sid_platform.automation.jobs import cold_start_job
from sid_platform.cli import main
from sid_platform.registry import Tracking, champion, download_version, log_bundle, pinned_config, set_champion
from sid_platform.registry.cold_start import ColdStartRelease
from sid_platform.resources import MlflowResource
from sid_platform.semantic_ids import UsidLookup
from sid_platform.service.lookup import InProcessLookupStore
from sid_platform.service.model import ServiceModel
from sid_platform.serving.cold_start import ColdStartReport
from sid_platform_tests.assets.conftest import MainRun

MODEL = "sid-cold-start-test"


def test_new_catalog_rows_become_a_champion_that_serves_them(
    main_run: MainRun, tmp_path: Path, capsys: pytest.CaptureFixture
):
    tracking = Tracking.resolve(main_run.outputs["model_promotion"]["tracking_uri"])
    pinned = pinned_config(tracking, champion(tracking.client, "sid-recommender"))
    outputs = main_run.outputs
    components = {name: outputs[name] for name in BUNDLE_COMPONENTS}
    components |= derived_components(outputs["data_splits"], outputs["item_catalog"])
    routed = {**pinned, "evaluation": {**pinned["evaluation"], "model": "router_fused_dpo"}}  # router: ranks new items
    source = log_bundle(tracking, MODEL, components, routed)
    set_champion(tracking.client, MODEL, int(source.version), note="the cold-start test's champion")

    catalog = outputs["item_catalog"]
    known = catalog.row(0, named=True)
    rows = pl.DataFrame(
        {
            "item_id": ["NEW0001", "NEW0002", known["item_id"]],
            "title": ["Gentle Face Cream no. 9001", "Bold Lips Balm no. 9002", "an id the catalog already has"],
            "categories": ["Beauty>Makeup>Face>Cream", "Beauty>Skin Care>Lips>Balm", "Beauty"],
            "description": ["A cream for the face, from the makeup range.", "A balm for the lips.", None],
        }
    )
    path = tmp_path / "new_items.csv"
    rows.write_csv(path)
    mlflow = MlflowResource(tracking_uri=tracking.uri, registered_model=MODEL)
    result = cold_start_job.execute_in_process(
        run_config={"ops": {"add_new_items": {"config": {"items_path": str(path)}}}},
        instance=DagsterInstance.ephemeral(),
        resources={"mlflow": mlflow},
    )
    assert result.success
    summary = result.output_for_node("add_new_items")
    assert summary["added"] == 2 and summary["skipped"] == 1 and summary["promoted"] and summary["recommendable"]
    assert summary["source_version"] == int(source.version) and summary["version"] == int(source.version) + 1

    extended = champion(tracking.client, MODEL)
    assert int(extended.version) == summary["version"]
    config = pinned_config(tracking, extended)
    assert (
        config["cold_start"]["source_version"] == int(source.version) and config["evaluation"] == routed["evaluation"]
    )

    served = ServiceModel.load(
        download_version(tracking, extended, tmp_path / "served"), str(extended.version), InProcessLookupStore(), precompute_users=2
    )  # fmt: skip
    table = served.components["usid_table"]
    old = outputs["usid_table"]
    assert table.head(old.height).equals(old)  # existing IDs unchanged
    UsidLookup(table)  # unique full IDs
    assert {"NEW0001", "NEW0002"} <= served.served.catalog  # the ranking's catalog: the router knows them
    explained = served.item("NEW0001", limit=5)
    assert explained["sid"] == table.filter(pl.col("item_id") == "NEW0001")["sid"].item()
    assert explained["prefixes"][0]["items"] >= 2 and len(explained["neighbours"]) == 5  # under a shared prefix
    assert served.search is not None  # the extended vectors still match the codebooks' space
    found = served.search_text("Bold Lips Balm no. 9002", 5, None, 0.0)
    assert "NEW0002" in [item["item_id"] for item in found["items"]]
    answer, _ = served.recommend(["NEW0001", known["item_id"]], None, 10)
    assert answer.unknown_items == [] and len(answer.items) == 10  # a new item in a history is read, not dropped
    assert all(item["channel"] in ("prefix", "ann", "both", "beams") for item in answer.items)  # explained
    # SASRec got vectors borrowed through the new items' Semantic-ID prefixes: served, it knows them too.
    assert summary["borrowed_id_vectors"] == ["router_checkpoint", "sasrec_model"]
    by_sasrec = ServiceModel.load(
        download_version(tracking, extended, tmp_path / "sasrec"), str(extended.version), InProcessLookupStore(),
        serving="sasrec",
    )  # fmt: skip
    assert {"NEW0001", "NEW0002"} <= by_sasrec.served.catalog
    answer, _ = by_sasrec.recommend(["NEW0001", known["item_id"]], None, 10)
    assert answer.unknown_items == [] and len(answer.items) == 10

    # The command line does the same through the same function; known ids are skipped.
    more = tmp_path / "more.jsonl"
    more.write_text('{"item_id": "NEW0003", "title": "Fresh Eyes Serum no. 9003"}\n{"item_id": "NEW0001"}\n')
    assert main(["add-items", str(more), "--model", MODEL, "--tracking-uri", tracking.uri]) == 0
    assert "1 new items added to v2 -> v3 (champion); 1 already known" in capsys.readouterr().out
    assert int(champion(tracking.client, MODEL).version) == 3
    assert main(["add-items", str(tmp_path / "absent.csv"), "--model", MODEL, "--tracking-uri", tracking.uri]) == 2


def test_a_sasrec_champion_recommends_new_items_only_when_they_borrowed_its_vectors():
    report = ColdStartReport({"N": "1-2-0"}, borrowed=("router_checkpoint",))
    assert ColdStartRelease(1, 2, True, report, "router_fused").recommendable
    assert not ColdStartRelease(1, 2, True, report, "sasrec").recommendable
    both = ColdStartReport({"N": "1-2-0"}, borrowed=("router_checkpoint", "sasrec_model"))
    assert ColdStartRelease(1, 2, True, both, "sasrec").recommendable
