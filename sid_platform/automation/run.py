"""Running the main job in-process, as ``sid-platform demo`` and the benchmarks do."""

from __future__ import annotations

import os
from typing import Any

from dagster import DagsterInstance, ExecuteInProcessResult

from sid_platform.settings import profile_run_config


def run_main_job(
    profile: str = "default", extra_run_config: dict[str, Any] | None = None, raise_on_error: bool = True
) -> ExecuteInProcessResult:
    """Materialize every asset with the profile's config; runs are recorded in ``$DAGSTER_HOME`` when set."""
    from sid_platform.definitions import defs

    run_config: dict[str, Any] = {
        "ops": profile_run_config(profile),
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }
    if profile == "test":
        run_config["resources"] = {"dataset": {"config": {"source": "synthetic"}}}
    for section, values in (extra_run_config or {}).items():
        run_config.setdefault(section, {}).update(values)
    instance = DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else DagsterInstance.ephemeral()
    return defs.resolve_job_def("main_job").execute_in_process(
        run_config=run_config, instance=instance, raise_on_error=raise_on_error
    )
