"""The IO manager: every asset type through the codecs into a BlobStore, locally or in S3; nothing pickled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, asset, build_input_context, build_output_context, materialize

from sid_platform.data.split import UserSequences
from sid_platform.resources import LocalAssetIOManager, S3AssetIOManager, io_manager_for
from sid_platform.storage import LocalBlobStore, S3BlobStore
from sid_platform_tests.artifact_samples import FakeS3, assert_same, samples, user_sequences


def _round_trip(manager: Any, name: str, value: Any) -> Any:
    key = AssetKey(["group", name])
    manager.handle_output(build_output_context(asset_key=key), value)
    return manager.load_input(build_input_context(asset_key=key))


@pytest.mark.parametrize("name", list(samples()))
def test_every_asset_type_round_trips_through_the_local_io_manager(tmp_path: Path, name: str):
    original = samples()[name]
    assert_same(_round_trip(LocalAssetIOManager(base_dir=str(tmp_path)), name, original), original, name)
    [stored] = (tmp_path / "group").iterdir()
    assert stored.stem == name and stored.suffix in (".parquet", ".safetensors", ".npz", ".json")


def test_the_local_io_manager_writes_under_the_data_home_by_default(isolated_home: Path):
    store = io_manager_for("local").store()
    assert isinstance(store, LocalBlobStore) and store.root == isolated_home / "assets"


def test_the_s3_io_manager_shares_the_code_and_differs_in_the_store(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SID_S3_BUCKET", "sid-bucket")
    monkeypatch.setenv("SID_S3_PREFIX", "runs/assets")
    monkeypatch.setenv("SID_S3_ENDPOINT_URL", "http://minio:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    manager = io_manager_for("k8s")
    assert isinstance(manager, S3AssetIOManager)
    store = manager.process_config_and_initialize().store()  # builds the boto3 client; talks to no server
    assert isinstance(store, S3BlobStore) and (store.bucket, store.prefix) == ("sid-bucket", "runs/assets")
    assert store.client.meta.endpoint_url == "http://minio:9000"

    client = FakeS3()
    monkeypatch.setattr("sid_platform.resources.io.boto3.client", lambda *args, **kwargs: client)
    for name in ("user_sequences", "candidates", "sasrec_model"):
        original = samples()[name]
        assert_same(_round_trip(S3AssetIOManager(bucket="sid-bucket"), name, original), original, name)
    assert {key for _, key in client.objects} == {
        "assets/group/user_sequences.npz",
        "assets/group/candidates.npz",
        "assets/group/sasrec_model.safetensors",
    }


def test_an_output_without_a_format_fails_at_write_naming_asset_and_type(tmp_path: Path):
    with pytest.raises(TypeError, match=r"asset 'group/odd' cannot be stored: builtins\.object has no stored format"):
        LocalAssetIOManager(base_dir=str(tmp_path)).handle_output(
            build_output_context(asset_key=AssetKey(["group", "odd"])), object()
        )
    assert not (tmp_path / "group").exists()


def test_assets_pass_records_through_a_materialization(tmp_path: Path):
    @asset
    def sequences() -> UserSequences:
        return user_sequences()

    @asset
    def train_lengths(sequences: UserSequences) -> list[int]:
        return [len(s) for s in sequences.train]

    @asset
    def odd():
        return object()

    manager = LocalAssetIOManager(base_dir=str(tmp_path))
    result = materialize([sequences, train_lengths], resources={"io_manager": manager})
    assert result.success
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sequences.npz", "train_lengths.json"]
    assert result.output_for_node("train_lengths") == [3, 1, 0]

    failed = materialize([odd], resources={"io_manager": manager}, raise_on_error=False)
    assert not failed.success
    [failure] = [e for e in failed.all_events if e.is_step_failure]
    assert "asset 'odd' cannot be stored: builtins.object has no stored format" in _messages(
        failure.step_failure_data.error
    )
    assert not (tmp_path / "odd.npz").exists()


def _messages(error: Any) -> str:
    """An error's message and those of its causes and contexts (Dagster wraps the IO manager's error)."""
    if error is None:
        return ""
    return "\n".join((error.message, _messages(error.cause), _messages(error.context)))
