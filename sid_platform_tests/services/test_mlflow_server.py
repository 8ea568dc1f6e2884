"""A real ``mlflow server`` (Postgres backend store, S3 artifacts proxied to moto): the graph's training runs log
to it, the gate promotes through it, ``sid-platform rollback`` moves the alias, and the champion loads from it."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import polars as pl
import pytest
import requests
from fastapi.testclient import TestClient

from sid_platform.cli import main
from sid_platform.registry import Tracking, champion, download_version, load_bundle
from sid_platform.service.app import create_app
from sid_platform.service.lookup import InProcessLookupStore
from sid_platform.service.reload import ChampionWatcher
from sid_platform_tests.services.conftest import BUCKET, Cluster

pytestmark = pytest.mark.services

MODEL = "sid-recommender"
# Every asset that logs an MLflow run of its own (MlflowResource.log_training_run / log_report / the bundle).
LOGGED = {"sasrec_model", "codebooks", "router_checkpoint", "dpo_checkpoint", "evaluation", "model_promotion"}


def test_the_server_refuses_a_client_without_credentials(cluster: Cluster):
    response = requests.get(f"{cluster.tracking_uri}/api/2.0/mlflow/experiments/search?max_results=1", timeout=30)
    assert response.status_code == 401  # MLflow's basic-auth app, as deploy/k8s/mlflow-server.yaml runs it
    user = (cluster.mlflow.username, cluster.mlflow.password)
    assert requests.get(response.url, auth=user, timeout=30).status_code == 200


def test_the_training_runs_are_in_the_servers_postgres_store_with_artifacts_in_s3(in_cluster: Cluster):
    cluster = in_cluster
    tracking = Tracking(cluster.tracking_uri)
    runs = tracking.client.search_runs(
        [tracking.experiment_id], filter_string=f"tags.dagster_run_id = '{cluster.first.run_id}'"
    )
    assert {run.info.run_name for run in runs} == LOGGED
    assert all(run.info.status == "FINISHED" for run in runs)
    by_name = {run.info.run_name: run for run in runs}
    for name in ("sasrec_model", "router_checkpoint", "dpo_checkpoint"):
        assert by_name[name].data.metrics, f"{name} logged no metrics"
    # The server's backend store is Postgres: the same runs are rows there.
    rows = dict(cluster.query("mlflow", "SELECT run_uuid, status FROM runs"))
    assert {run.info.run_id for run in runs} <= set(rows) and {rows[run.info.run_id] for run in runs} == {"FINISHED"}
    # Artifacts go through the server to S3: the run report is the same bytes as the run's side file.
    evaluation = by_name["evaluation"].info
    assert evaluation.artifact_uri.startswith("mlflow-artifacts:")
    key = f"mlflow/{evaluation.experiment_id}/{evaluation.run_id}/artifacts/report/report.html"
    logged = cluster.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    side_file = f"files/runs/{cluster.first.run_id}/report.html"
    assert logged == cluster.s3().get_object(Bucket=BUCKET, Key=side_file)["Body"].read()
    for name in ("codebooks", "router_checkpoint", "dpo_checkpoint"):
        run = by_name[name].info
        assert cluster.keys(f"mlflow/{run.experiment_id}/{run.run_id}/artifacts/plots/"), f"{name}: no plot in S3"


def test_the_gate_promotes_rollback_moves_the_alias_and_the_champion_loads(
    in_cluster: Cluster, tmp_path: Path, capsys: pytest.CaptureFixture
):
    cluster = in_cluster
    client = Tracking(cluster.tracking_uri).client
    assert int(champion(client, MODEL).version) == 2  # both runs passed the gate; the second is champion
    aliases = "SELECT alias, version FROM registered_model_aliases WHERE name = %s"
    assert dict(cluster.query("mlflow", aliases, MODEL))["champion"] == 2
    assert main(["rollback", "--tracking-uri", cluster.tracking_uri]) == 0
    assert f"{MODEL}: champion v2 -> v1 ({cluster.tracking_uri})" in capsys.readouterr().out
    assert int(champion(client, MODEL).version) == 1
    assert dict(cluster.query("mlflow", aliases, MODEL))["champion"] == 1
    # What a serving process does: download the champion through the server (from S3) and rank with it.
    folder = download_version(Tracking(cluster.tracking_uri), champion(client, MODEL), tmp_path / "served")
    catalog_key = next(key for key in cluster.keys("assets/item_catalog."))
    catalog = pl.read_parquet(io.BytesIO(cluster.s3().get_object(Bucket=BUCKET, Key=catalog_key)["Body"].read()))
    items = catalog["item_id"].to_list()
    ranked = load_bundle(folder).predict(None, pd.DataFrame({"history": [items[:3], items[7:8]]}), params={"k": 10})
    assert all(len(set(row)) == 10 and set(row) <= set(items) for row in ranked["items"])
    # The HTTP service (``sid-platform serve``) loads the champion through the same server and answers.
    watcher = ChampionWatcher(Tracking(cluster.tracking_uri), MODEL, InProcessLookupStore(), precompute_users=50)
    assert watcher.poll_once() and watcher.current is not None and watcher.current.version == "1"
    with TestClient(create_app(watcher, start_watcher=False)) as http:
        answer = http.post("/recommend", json={"history": items[:3], "k": 10})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_version"] == "1" and len({item["item_id"] for item in body["items"]}) == 10
