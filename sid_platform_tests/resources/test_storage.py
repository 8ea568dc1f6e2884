"""The side-file storage resource: local files under the data home, or S3 in the cluster."""

from pathlib import Path

import pytest
from dagster import AssetExecutionContext, asset, materialize

from sid_platform.resources import LocalStorage, S3Storage, SideFileStorage, storage_for
from sid_platform.storage import LocalBlobStore, S3BlobStore


def test_local_storage_writes_under_the_data_home(isolated_home: Path):
    store = LocalStorage().store()
    assert isinstance(store, LocalBlobStore) and store.root == isolated_home
    where = store.write("runs/r1/evaluation.json", b"{}")
    assert Path(where) == isolated_home / "runs" / "r1" / "evaluation.json"
    assert store.read("runs/r1/evaluation.json") == b"{}"
    assert store.read("runs/r2/evaluation.json") is None


def test_local_storage_root_and_files(tmp_path: Path):
    resume = LocalStorage(root=str(tmp_path)).file("checkpoints/router.resume.pt")
    assert resume.read() is None
    resume.write(b"weights")
    assert (tmp_path / "checkpoints" / "router.resume.pt").read_bytes() == b"weights"
    resume.delete()
    assert resume.read() is None


def test_an_asset_writes_a_side_file_through_the_resource(tmp_path: Path):
    @asset
    def report(context: AssetExecutionContext, storage: SideFileStorage) -> str:
        return storage.store().write(f"runs/{context.run_id}/report.txt", b"ok")

    result = materialize([report], resources={"storage": LocalStorage(root=str(tmp_path))})
    assert result.success
    assert (tmp_path / "runs" / result.run_id / "report.txt").read_bytes() == b"ok"


def test_storage_per_deployment(monkeypatch: pytest.MonkeyPatch):
    assert isinstance(storage_for("local"), LocalStorage)
    monkeypatch.setenv("SID_S3_BUCKET", "sid-bucket")
    monkeypatch.setenv("SID_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    resource = storage_for("k8s")
    assert isinstance(resource, S3Storage)
    # Resolving the EnvVar and building the boto3 client talks to no server.
    store = resource.process_config_and_initialize().store()
    assert isinstance(store, S3BlobStore)
    assert store.bucket == "sid-bucket" and store.uri("runs/r1/evaluation.json").startswith("s3://sid-bucket/")
    assert store.client.meta.endpoint_url == "http://minio:9000"
    with pytest.raises(ValueError, match="SID_DEPLOYMENT"):
        storage_for("mainframe")
