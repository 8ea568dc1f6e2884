"""A real MLflow SQLite store, created once per module (its migrations take seconds), one model name per test."""

from pathlib import Path

import pytest

from sid_platform.registry import Tracking


@pytest.fixture(scope="module")
def tracking(tmp_path_factory: pytest.TempPathFactory) -> Tracking:
    root: Path = tmp_path_factory.mktemp("mlflow")
    return Tracking(f"sqlite:///{root / 'mlflow.db'}", experiment="tests")


@pytest.fixture
def model_name(request: pytest.FixtureRequest) -> str:
    return f"rec-{request.node.name}"
