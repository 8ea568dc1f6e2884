"""One test-profile run of the whole graph, shared by the graph tests so each checks one concern without a run of its own."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from dagster import ExecuteInProcessResult

from sid_platform.assets.promotion import BUNDLE_COMPONENTS
from sid_platform.automation.run import run_main_job
from sid_platform.settings import HOME_ENV

# Every asset whose stored value a graph test reads; read back while the run's data home is set.
OUTPUTS = ("data_splits", "user_sequences", "candidates", "evaluation", "model_promotion", *BUNDLE_COMPONENTS)


@dataclass(frozen=True)
class MainRun:
    """The run, its data home, the stored outputs and each materialized asset's metadata (plain values)."""

    result: ExecuteInProcessResult
    home: Path
    dagster_home: Path
    outputs: dict[str, Any]
    metadata: dict[str, dict[str, Any]]


def _environment(monkeypatch: pytest.MonkeyPatch, home: Path, dagster_home: Path) -> None:
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def main_run(tmp_path_factory: pytest.TempPathFactory) -> MainRun:
    """``main_job`` with the ``test`` profile (synthetic data), once per session, under its own data home."""
    root = tmp_path_factory.mktemp("main_run")
    home, dagster_home = root / "sid_home", root / "dagster_home"
    with pytest.MonkeyPatch.context() as monkeypatch:
        _environment(monkeypatch, home, dagster_home)
        result = run_main_job("test")
        outputs = {name: result.output_for_node(name) for name in OUTPUTS}
        outputs["item_catalog"] = result.output_for_node("ingest", "item_catalog")
    metadata = {
        event.asset_key.to_user_string(): {key: value.value for key, value in event.materialization.metadata.items()}
        for event in result.get_asset_materialization_events()
    }
    return MainRun(result, home, dagster_home, outputs, metadata)


@pytest.fixture
def in_main_run_home(main_run: MainRun, monkeypatch: pytest.MonkeyPatch) -> Iterator[MainRun]:
    """The shared run's data home and Dagster home for this test (to run again on its stored assets)."""
    _environment(monkeypatch, main_run.home, main_run.dagster_home)
    yield main_run
