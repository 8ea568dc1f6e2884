"""Running the main job in-process, as ``sid-platform demo`` and the benchmarks do."""

from __future__ import annotations

from typing import Any

from dagster import AssetKey, DagsterInstance, ExecuteInProcessResult

from sid_platform.assets.reporting import PROFILE_TAG
from sid_platform.automation.graph import graph_definitions
from sid_platform.profiles import run_config as profile_run_config
from sid_platform.settings import dagster_home


def local_instance() -> DagsterInstance:
    """The instance under ``$DAGSTER_HOME`` (created on first use, telemetry off), else an ephemeral one."""
    path = dagster_home()
    if path is None:
        return DagsterInstance.ephemeral()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text("telemetry:\n  enabled: false\n")
    return DagsterInstance.get()


def run_main_job(
    profile: str = "default",
    extra_run_config: dict[str, Any] | None = None,
    raise_on_error: bool = True,
    assets: list[str] | None = None,
) -> ExecuteInProcessResult:
    """Materialize every asset (or only ``assets``, reading their inputs from storage) with the profile's config.

    Runs are recorded in ``$DAGSTER_HOME`` when set.
    """
    run_config = {**profile_run_config(profile), "loggers": {"console": {"config": {"log_level": "INFO"}}}}
    for section, values in (extra_run_config or {}).items():
        run_config.setdefault(section, {}).update(values)
    if assets is not None:  # config for assets outside the selection would be rejected
        run_config["ops"] = {name: value for name, value in run_config.get("ops", {}).items() if name in assets}
    job = graph_definitions().resolve_job_def("main_job")
    return job.execute_in_process(
        run_config=run_config,
        instance=local_instance(),
        raise_on_error=raise_on_error,
        tags={PROFILE_TAG: profile},
        asset_selection=[AssetKey(name) for name in assets] if assets is not None else None,
    )
