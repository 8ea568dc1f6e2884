"""The dataset resource names what its source would not find before a run starts, reading nothing."""

from pathlib import Path

import pytest

from sid_platform.resources import DatasetResource
from sid_platform.settings import DATA_DIR_ENV


def test_missing_files_per_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    assert DatasetResource().missing_files() == []  # auto with no data directory: the generator
    assert DatasetResource(source="synthetic").missing_files() == []
    (problem,) = DatasetResource(data_dir=str(tmp_path), dataset="sports").missing_files()  # auto: p5
    assert problem.startswith("P5 dataset 'sports': none of these files exist:") and "\n" not in problem
    (problem,) = DatasetResource(source="generic").missing_files()
    assert "needs a data directory" in problem
    (problem,) = DatasetResource(source="csv").missing_files()
    assert "unknown source 'csv'" in problem
    (tmp_path / "events.csv").write_text("user_id,item_id\nu,a\n")
    generic = DatasetResource(source="generic", data_dir=str(tmp_path), interactions_path="events.csv")
    assert generic.missing_files() == []
    (problem,) = generic.model_copy(update={"items_path": "items.csv"}).missing_files()
    assert problem.startswith("resources.dataset.config.items_path:")
