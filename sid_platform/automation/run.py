"""Running the main job in-process, as ``sid-platform demo`` and the benchmarks do."""

from __future__ import annotations

import fcntl
from typing import Any

from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from sid_platform.assets.promotion import PROMOTION_POOL
from sid_platform.assets.reporting import PROFILE_TAG
from sid_platform.automation.graph import graph_definitions
from sid_platform.automation.orphans import fail_orphaned_runs, process_tags
from sid_platform.automation.run_config import RunConfigError, for_selection, merge, resolve_selection, validated
from sid_platform.profiles import run_config as profile_run_config
from sid_platform.resources import DatasetResource
from sid_platform.settings import dagster_home
from sid_platform.threads import use_threads

# Telemetry off; one slot per concurrency pool, so two runs never promote at once (``model_promotion``'s pool).
LOCAL_INSTANCE_YAML = "telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"


def local_instance() -> DagsterInstance:
    """The instance under ``$DAGSTER_HOME`` (created on first use, telemetry off), else an ephemeral one.

    Made under a file lock: two runs starting at once on a fresh home would both write ``dagster.yaml``, both
    create the SQLite schemas (``table alembic_version already exists``) and both insert the pool's slot.
    """
    path = dagster_home()
    if path is None:
        return DagsterInstance.ephemeral()
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "instance.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        config = path / "dagster.yaml"
        if not config.exists():
            config.write_text(LOCAL_INSTANCE_YAML)
        instance = DagsterInstance.get()
        instance.get_runs(limit=1)  # the first call on each storage creates its schema
        instance.all_instigator_state()
        if PROMOTION_POOL not in instance.event_log_storage.get_concurrency_keys():  # a home made before the pool
            instance.event_log_storage.set_concurrency_slots(PROMOTION_POOL, 1)
    return instance


def main_job_run_config(
    profile: str = "default", extra_run_config: dict[str, Any] | None = None, assets: list[str] | None = None
) -> tuple[dict[str, Any], list[str] | None]:
    """The run config and the assets to build: the profile's run config with ``extra_run_config`` layered over
    it (key by key), cut to the ops of ``assets`` and of their checks when given (with the assets an op must
    build together), and checked against main_job's schema, so a mistake raises ``RunConfigError`` before
    anything runs."""
    definitions = graph_definitions()
    base = {**profile_run_config(profile), "loggers": {"console": {"config": {"log_level": "INFO"}}}}
    run_config = merge(base, extra_run_config or {})
    nodes = None
    if assets is not None:  # config for ops outside the selection would be rejected
        assets, nodes = resolve_selection(definitions, assets)
        run_config = for_selection(run_config, nodes)
    resolved = validated(definitions.resolve_job_def("main_job"), run_config)
    if nodes is None or "ingest" in nodes:  # the data is read: its files must be there
        dataset = DatasetResource(**((resolved.get("resources") or {}).get("dataset") or {}).get("config") or {})
        if problems := dataset.missing_files():
            raise RunConfigError(problems)
    return run_config, assets


def run_main_job(
    profile: str = "default",
    extra_run_config: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    assets: list[str] | None = None,
) -> ExecuteInProcessResult:
    """Materialize every asset (or only ``assets``, reading their inputs from storage) with the profile's config
    and ``extra_run_config`` over it. The config is checked before anything runs.

    Runs are recorded in ``$DAGSTER_HOME`` when set. Torch runs with the ``training`` stage's threads.
    """
    run_config, assets = main_job_run_config(profile, extra_run_config, assets)
    use_threads("training")  # the run's large batches (embedding, retrieval, evaluation); see threads.py
    job = graph_definitions().resolve_job_def("main_job")
    instance = local_instance()
    fail_orphaned_runs(instance)  # a killed run must not look STARTED forever, nor hold the promotion slot
    return job.execute_in_process(
        run_config=run_config,
        instance=instance,
        raise_on_error=raise_on_error,
        tags={PROFILE_TAG: profile, **process_tags()},
        asset_selection=[AssetKey(name) for name in assets] if assets is not None else None,
    )
