"""Run config files before a run: layering, overrides, selections, and messages that name the key."""

from __future__ import annotations

import pytest

from sid_platform.automation.graph import graph_definitions
from sid_platform.automation.run import main_job_run_config
from sid_platform.automation.run_config import RunConfigError, for_selection, merge, resolve_selection, with_overrides


def test_a_file_layers_over_the_profile_key_by_key():
    base = {"ops": {"codebooks": {"config": {"levels": 3, "codebook_size": 16}}}, "resources": {"dataset": {}}}
    merged = merge(base, {"ops": {"codebooks": {"config": {"epochs": 5, "hidden_dims": [64]}}}})
    assert merged["ops"]["codebooks"]["config"] == {"levels": 3, "codebook_size": 16, "epochs": 5, "hidden_dims": [64]}
    assert merge({"a": {"list": [1, 2]}}, {"a": {"list": [3]}}) == {"a": {"list": [3]}}  # lists replace
    assert base["ops"]["codebooks"]["config"] == {"levels": 3, "codebook_size": 16}  # inputs untouched
    config, _ = main_job_run_config("test", {"ops": {"codebooks": {"config": {"epochs": 5}}}})
    assert config["ops"]["codebooks"]["config"] == {"levels": 3, "codebook_size": 16, "epochs": 5, "batch_size": 128}


def test_overrides_set_one_key_with_its_yaml_type():
    config = with_overrides(
        {"resources": {}}, ["resources.dataset.config.data_dir=/data", "ops.codebooks.config.levels=3"]
    )
    assert config == {
        "resources": {"dataset": {"config": {"data_dir": "/data"}}},
        "ops": {"codebooks": {"config": {"levels": 3}}},
    }
    with pytest.raises(RunConfigError, match="expected KEY.PATH=VALUE"):
        with_overrides({}, ["levels"])
    with pytest.raises(RunConfigError, match="ops is not a mapping"):
        with_overrides({"ops": 3}, ["ops.codebooks=1"])


def test_a_selection_keeps_its_ops_and_the_ops_of_their_checks():
    definitions = graph_definitions()
    assets, nodes = resolve_selection(definitions, ["codebooks"])
    assert assets == ["codebooks"] and nodes == {"codebooks", "codebooks_codebook_utilization"}
    # ingest builds its three assets together, so selecting one brings the others and both checks along.
    assets, nodes = resolve_selection(definitions, ["raw_interactions"])
    assert assets == ["item_catalog", "quarantined_rows", "raw_interactions"]
    assert nodes == {
        "ingest",
        "raw_interactions_raw_interactions_expectations",
        "item_catalog_item_catalog_expectations",
    }
    config = {"ops": {"codebooks_codebook_utilization": {"config": {"min_utilization": 0.5}}, "sasrec_model": {}}}
    assert for_selection(config, nodes | {"codebooks_codebook_utilization"})["ops"] == {
        "codebooks_codebook_utilization": {"config": {"min_utilization": 0.5}}
    }
    with pytest.raises(RunConfigError, match="unknown asset"):
        resolve_selection(definitions, ["codebook"])
