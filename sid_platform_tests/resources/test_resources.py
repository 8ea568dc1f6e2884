"""Resources: where data comes from and where assets go, locally and in the cluster."""

import logging
from pathlib import Path

import pytest

from sid_platform.data.files import DataNotFoundError
from sid_platform.resources import DatasetResource, LocalAssetIOManager, S3AssetIOManager, io_manager_for


def test_auto_without_any_data_dir_falls_back_to_synthetic_loudly(monkeypatch, caplog):
    monkeypatch.delenv("SID_DATA_DIR", raising=False)
    with caplog.at_level(logging.WARNING):
        loaded = DatasetResource(synthetic_users=50, synthetic_items=40).load()
    assert loaded.source.startswith("synthetic")
    assert "SYNTHETIC" in caplog.text


def test_auto_with_a_data_dir_never_falls_back(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("SID_DATA_DIR", str(tmp_path))
    with pytest.raises(DataNotFoundError, match="sequential_data.txt"):
        DatasetResource().load()


def test_unknown_source_is_rejected(tmp_path: Path):
    with pytest.raises(ValueError, match="unknown source"):
        DatasetResource(source="ftp", data_dir=str(tmp_path)).load()


def test_io_manager_per_deployment(monkeypatch):
    assert isinstance(io_manager_for("local"), LocalAssetIOManager)
    monkeypatch.setenv("SID_S3_BUCKET", "bucket")
    assert isinstance(io_manager_for("k8s"), S3AssetIOManager)  # the same code over S3 (see test_io.py), no pickle
    with pytest.raises(ValueError, match="SID_DEPLOYMENT"):
        io_manager_for("mainframe")
