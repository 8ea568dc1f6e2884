"""Runs whose process is gone: a run killed with SIGKILL (or a crashed machine) never writes its failure, so
Dagster would show it ``STARTED`` forever and keep any concurrency slot it held (the promotion pool).

Dagster's run monitoring cannot see this for in-process runs (the default run launcher has no worker health
check), so every in-process run carries its host and process id as tags, and ``fail_orphaned_runs`` reports
as failed each started run of this host whose process no longer exists. ``run_main_job`` sweeps before it
starts, and the ``orphaned_runs_sensor`` sweeps once a minute where the daemon runs.
"""

from __future__ import annotations

import os
import socket

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

HOST_TAG = "sid/host"
PID_TAG = "sid/pid"


def process_tags() -> dict[str, str]:
    """The tags that let a later sweep tell whether this process still runs the run."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def fail_orphaned_runs(instance: DagsterInstance) -> list[str]:
    """Mark as failed every started run of this host whose process is gone; returns their run ids."""
    host, failed = socket.gethostname(), []
    runs = instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED], tags={HOST_TAG: host}))
    for run in runs:
        pid = int(run.tags.get(PID_TAG, "0"))
        if pid <= 0 or pid == os.getpid() or _alive(pid):
            continue
        instance.report_run_failed(
            run, f"run {run.run_id} was still STARTED but its process (pid {pid} on {host}) is gone: killed or crashed"
        )
        failed.append(run.run_id)
    return failed
