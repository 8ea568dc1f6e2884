"""The Dagster instance of ``deploy/dagster.yaml`` on a real PostgreSQL: the graph's runs, every asset
materialization, the asset checks' results and the promotion's tags are rows in Postgres, and an instance loaded
from the same file reads them back."""

from __future__ import annotations

import json

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus
from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage, PostgresScheduleStorage

from sid_platform.assets.promotion import PROMOTION_POOL
from sid_platform.automation.graph import graph_definitions
from sid_platform_tests.services.conftest import SECOND_RUN_ASSETS, Cluster

pytestmark = pytest.mark.services

# The graph's blocking checks: the Great Expectations suites, codebook utilization and Semantic-ID uniqueness.
CHECKS = {
    ("raw_interactions", "raw_interactions_expectations"),
    ("item_catalog", "item_catalog_expectations"),
    ("codebooks", "codebook_utilization"),
    ("usid_table", "usid_unique"),
}


def _asset_name(stored_key: str) -> str:
    """Dagster stores an asset key as its JSON path, e.g. ``["usid_table"]``."""
    return "/".join(json.loads(stored_key))


def test_both_runs_succeeded_and_are_rows_in_postgres(cluster: Cluster):
    assert cluster.first.success and cluster.second.success
    rows = dict(cluster.query("dagster", "SELECT run_id, status FROM runs"))
    assert rows == {cluster.first.run_id: "SUCCESS", cluster.second.run_id: "SUCCESS"}
    jobs = {job for (job,) in cluster.query("dagster", "SELECT DISTINCT pipeline_name FROM runs")}
    assert jobs == {"main_job"}


def test_every_asset_materialization_is_in_the_event_log(cluster: Cluster):
    every_asset = {key.to_user_string() for key in graph_definitions().resolve_all_asset_keys()}
    stored = cluster.query(
        "dagster",
        "SELECT run_id, asset_key FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION'",
    )
    by_run: dict[str, set[str]] = {}
    for run_id, key in stored:
        by_run.setdefault(run_id, set()).add(_asset_name(key))
    assert by_run[cluster.first.run_id] == every_asset  # the whole graph, all 17 assets
    assert by_run[cluster.second.run_id] == set(SECOND_RUN_ASSETS)
    assert len(every_asset) >= 17


def test_the_check_results_are_in_postgres(cluster: Cluster):
    rows = cluster.query(
        "dagster", "SELECT run_id, asset_key, check_name, execution_status FROM asset_check_executions"
    )
    first = {(_asset_name(key), name): status for run, key, name, status in rows if run == cluster.first.run_id}
    second = {(_asset_name(key), name): status for run, key, name, status in rows if run == cluster.second.run_id}
    assert first == dict.fromkeys(CHECKS, "SUCCEEDED")
    assert second == {("usid_table", "usid_unique"): "SUCCEEDED"}  # the second run's gate had a check to vouch for it


def test_the_promotion_is_recorded_on_the_runs_and_its_pool_in_postgres(cluster: Cluster):
    tags = dict(
        ((run, key), value) for run, key, value in cluster.query("dagster", "SELECT run_id, key, value FROM run_tags")
    )
    assert tags[(cluster.first.run_id, "sid/promotion")] == "v1 promoted"
    assert tags[(cluster.second.run_id, "sid/promotion")] == "v2 promoted"
    assert tags[(cluster.first.run_id, "sid/profile")] == "test"
    slots = cluster.query("dagster", "SELECT concurrency_key FROM concurrency_slots")
    assert slots == [(PROMOTION_POOL,)]  # one slot: two runs never promote at once


def test_an_instance_from_the_deployed_file_reads_it_back(in_cluster: Cluster):
    instance = DagsterInstance.get()  # $DAGSTER_HOME/dagster.yaml: deploy/dagster.yaml's storage
    assert isinstance(instance.run_storage, PostgresRunStorage)
    assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
    assert instance.get_run_by_id(in_cluster.first.run_id).status == DagsterRunStatus.SUCCESS
    latest = instance.get_latest_materialization_event(AssetKey("usid_table"))
    assert latest is not None and latest.run_id == in_cluster.second.run_id
    assert instance.get_latest_materialization_event(AssetKey("sasrec_model")).run_id == in_cluster.first.run_id
    assert instance.all_instigator_state() == []  # the schedule storage answers from Postgres (no daemon ran)
    migrated = in_cluster.query("dagster", "SELECT version_num FROM alembic_version")
    assert len(migrated) == 1 and migrated[0][0]
