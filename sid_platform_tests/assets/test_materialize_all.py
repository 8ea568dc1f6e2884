"""What the UI's Materialize all does on a bare checkout: every asset, no run config, the synthetic generator."""

from __future__ import annotations

import pytest

from sid_platform.automation.run import local_instance
from sid_platform.definitions import defs
from sid_platform.settings import DATA_DIR_ENV


def test_every_asset_materializes_with_no_run_config_on_the_synthetic_generator(monkeypatch: pytest.MonkeyPatch):
    # No data directory: the dataset resource's `auto` source falls back to the generator (320 items).
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)
    job = defs.resolve_job_def("main_job")
    result = job.execute_in_process(instance=local_instance(), raise_on_error=False)  # no run_config at all
    failures = [f"{e.step_key}: {e.step_failure_data.error}" for e in result.get_step_failure_events()]
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert result.success, (failures, checks)
    materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    assert materialized == set(defs.resolve_asset_graph().get_all_asset_keys())
    assert checks == dict.fromkeys(
        ["raw_interactions_expectations", "item_catalog_expectations", "codebook_utilization", "usid_unique"], True
    )
    # The default codebook size followed the catalog: 320 items get 16 codes per level, every level in use.
    codebooks = next(
        e for e in result.get_asset_materialization_events() if e.asset_key.to_user_string() == "codebooks"
    )
    metadata = {key: value.value for key, value in codebooks.materialization.metadata.items()}
    assert metadata["codebook_size"] == 16 and metadata["codebook_size_auto"] is True
    assert min(metadata[f"utilization_level_{level}"] for level in range(1, 5)) >= 0.8
