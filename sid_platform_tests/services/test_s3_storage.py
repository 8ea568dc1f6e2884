"""``SID_DEPLOYMENT=k8s`` against a real S3 server (moto on loopback): every asset and every side file of a run
lands in the bucket, a second run reads them back, and the local data home stays empty, so a pod that dies
loses nothing it wrote."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from sid_platform.automation.graph import graph_definitions
from sid_platform.registry import Tracking, download_version
from sid_platform_tests.services.conftest import BUCKET, Cluster

pytestmark = pytest.mark.services


def _read(cluster: Cluster, key: str) -> bytes:
    return cluster.s3().get_object(Bucket=BUCKET, Key=key)["Body"].read()


def test_every_asset_is_an_object_under_the_assets_prefix(cluster: Cluster):
    every_asset = {key.to_user_string() for key in graph_definitions().resolve_all_asset_keys()}
    stored = {key.removeprefix("assets/").split(".")[0]: key for key in cluster.keys("assets/")}
    assert set(stored) == every_asset
    # Stored, not merely named: the tables read back equal what the runs produced.
    usid = pl.read_parquet(io.BytesIO(_read(cluster, stored["usid_table"])))
    assert usid.height == 320 and usid["sid"].n_unique() == 320  # the second run's table, every item once
    promotion = json.loads(_read(cluster, stored["model_promotion"]))
    assert promotion["version"] == 2 and promotion["promoted"] is True


def test_every_side_file_is_in_the_bucket(cluster: Cluster):
    run = cluster.first.run_id
    files = set(cluster.keys("files/"))
    assert {
        f"files/runs/{run}/evaluation.json",
        f"files/runs/{run}/report.html",
        "files/semantic_ids/code_label_audit.csv",
        "files/semantic_ids/usid_table_latest.parquet",
    } <= files
    assert any(key.startswith("files/embedding_cache/") and key.endswith(".npz") for key in files)
    evaluation = json.loads(_read(cluster, f"files/runs/{run}/evaluation.json"))
    assert 0 < evaluation["serving"]["recall@10"] <= 1
    assert b"<html" in _read(cluster, f"files/runs/{run}/report.html").lower()
    published = pl.read_parquet(io.BytesIO(_read(cluster, "files/semantic_ids/usid_table_latest.parquet")))
    assert published.equals(pl.read_parquet(io.BytesIO(_read(cluster, "assets/usid_table.parquet"))))


def test_the_router_resume_file_was_written_to_the_bucket_and_removed_when_training_finished(cluster: Cluster):
    """The bucket is versioned, so the resume file's writes (one per epoch) and its deletion are both visible."""
    listing = cluster.s3().list_object_versions(Bucket=BUCKET, Prefix="files/checkpoints/")
    written = [v["Key"] for v in listing.get("Versions", [])]
    deleted = [m["Key"] for m in listing.get("DeleteMarkers", []) if m["IsLatest"]]
    assert written and all(key.startswith("files/checkpoints/router_") for key in written)
    assert set(deleted) == set(written)  # finished: the next run starts fresh
    assert not cluster.keys("files/checkpoints/")


def test_the_step_logs_are_in_the_bucket_through_dagster_aws(cluster: Cluster):
    """deploy/dagster.yaml's S3ComputeLogManager (dagster-aws) stores each run's captured stdout and stderr."""
    for run in (cluster.first.run_id, cluster.second.run_id):
        logs = cluster.keys(f"dagster/compute-logs/storage/{run}/")
        assert {key.rsplit(".", 1)[-1] for key in logs} == {"out", "err"}
    assert b"sasrec" in b"".join(
        _read(cluster, key) for key in cluster.keys(f"dagster/compute-logs/storage/{cluster.first.run_id}/")
    )


def test_nothing_is_written_to_the_local_data_home(cluster: Cluster):
    assert not cluster.sid_home.exists() or not any(cluster.sid_home.rglob("*")), sorted(cluster.sid_home.rglob("*"))


def test_the_second_run_read_the_stored_assets_back(in_cluster: Cluster, tmp_path: Path):
    """It recomputed only the Semantic-ID table (comparing it with the published one it read from the bucket) and
    registered a bundle whose components hold what the first run's did."""
    cluster = in_cluster
    steps = {event.step_key for event in cluster.second.all_node_events if event.step_key}
    assert steps == {"usid_table", "usid_table_usid_unique", "model_promotion"}
    usid = next(
        event.materialization.metadata
        for event in cluster.second.get_asset_materialization_events()
        if event.asset_key.to_user_string() == "usid_table"
    )
    assert usid["stability_n_common"].value == 320 and usid["stability_sid_changed"].value == 0.0
    tracking = Tracking(cluster.tracking_uri)
    first, second = (
        download_version(tracking, tracking.client.get_model_version("sid-recommender", v), tmp_path / f"v{v}")
        for v in ("1", "2")
    )
    components = sorted(path.name for path in (first / "artifacts").iterdir() if path.name != "config.json")
    assert "router_checkpoint.safetensors" in components
    for name in components:  # the same content: read back from the bucket, not retrained
        assert _content(second / "artifacts" / name) == _content(first / "artifacts" / name), name


def _content(path: Path) -> tuple[Any, bytes]:
    """A component's content: its bytes, but a safetensors header as parsed JSON, since safetensors writes its
    metadata map in no fixed order (the same checkpoint saved twice can differ in bytes, and so in SHA-256)."""
    data = path.read_bytes()
    if path.suffix != ".safetensors":
        return None, data
    size = struct.unpack("<Q", data[:8])[0]
    return json.loads(data[8 : 8 + size]), data[8 + size :]
