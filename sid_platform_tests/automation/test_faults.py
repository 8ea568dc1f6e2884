"""Concurrent and killed runs corrupt nothing: a killed run is marked failed and the next run resumes the
router from its resume file; two runs at once into one fresh store both finish or one fails cleanly, and the
registry ends with a champion of a successful run, every version carrying the gate's decision."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, DagsterRun, DagsterRunStatus

from sid_platform.automation.orphans import HOST_TAG, PID_TAG, fail_orphaned_runs, process_tags
from sid_platform.registry import Tracking
from sid_platform.registry.promotion import CHAMPION, GATE_TAG


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"MLFLOW_TRACKING_URI", "SID_DATA_DIR"}}
    env.update(SID_HOME=str(tmp_path / "sid_home"), DAGSTER_HOME=str(tmp_path / "dagster_home"))
    return env


def _demo(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "sid_platform.cli", "demo", "--profile", "test"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_a_run_whose_process_is_gone_is_marked_failed_and_a_live_one_is_not(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    instance = DagsterInstance.get()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    dead = DagsterRun(
        job_name="main_job", status=DagsterRunStatus.STARTED, tags={**process_tags(), PID_TAG: str(gone.pid)}
    )
    live = DagsterRun(job_name="main_job", status=DagsterRunStatus.STARTED, tags=process_tags())
    other_host = DagsterRun(
        job_name="main_job", status=DagsterRunStatus.STARTED, tags={HOST_TAG: "elsewhere", PID_TAG: str(gone.pid)}
    )
    for run in (dead, live, other_host):
        instance.add_run(run)
    assert fail_orphaned_runs(instance) == [dead.run_id]
    statuses = {run.run_id: instance.get_run_by_id(run.run_id).status for run in (dead, live, other_host)}
    assert statuses == {
        dead.run_id: DagsterRunStatus.FAILURE,
        live.run_id: DagsterRunStatus.STARTED,  # this very process
        other_host.run_id: DagsterRunStatus.STARTED,  # another machine's process: not ours to judge
    }


def _open_store(uri: str, barrier) -> str:
    barrier.wait(timeout=300)
    return Tracking.resolve(uri, "concurrent").experiment_id


def test_first_use_of_a_fresh_sqlite_store_from_several_processes_at_once(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow' / 'mlflow.db'}"
    context = get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        # An executor, not a Pool: a worker that dies fails the test (BrokenProcessPool) instead of hanging it.
        with ProcessPoolExecutor(4, mp_context=context) as pool:
            futures = [pool.submit(_open_store, uri, barrier) for _ in range(4)]
            experiment_ids = [future.result(timeout=600) for future in futures]
    assert len(set(experiment_ids)) == 1


def test_a_killed_run_is_marked_failed_and_the_next_run_resumes_the_router(tmp_path):
    env = _environment(tmp_path)
    victim = _demo(env)
    resume_files: list[Path] = []
    deadline = time.monotonic() + 600
    while not resume_files and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
        resume_files = list((tmp_path / "sid_home").rglob("router_*.resume.pt"))
    assert resume_files, f"the router never wrote its resume file:\n{victim.communicate()[0][-3000:]}"
    victim.send_signal(signal.SIGKILL)
    victim.wait()

    again = subprocess.run(
        [sys.executable, "-m", "sid_platform.cli", "demo", "--profile", "test"], env=env, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
        instance = DagsterInstance.get()
        runs = instance.get_runs()
        assert sorted(run.status.value for run in runs) == [
            DagsterRunStatus.FAILURE.value,
            DagsterRunStatus.SUCCESS.value,
        ]
        killed = next(run for run in runs if run.status == DagsterRunStatus.FAILURE)
        assert killed.tags[PID_TAG] == str(victim.pid)
        router = instance.get_latest_materialization_event(AssetKey("router_checkpoint"))
        assert router.asset_materialization.metadata["resumed_from_epoch"].value >= 0
    assert not list((tmp_path / "sid_home").rglob("router_*.resume.pt"))  # finished: the file is gone


def test_two_runs_at_once_into_one_fresh_store_leave_a_consistent_registry(tmp_path):
    env = _environment(tmp_path)
    runs = [_demo(env), _demo(env)]
    outputs = [run.communicate()[0] for run in runs]
    codes = [run.returncode for run in runs]
    assert 0 in codes, "\n\n".join(out[-3000:] for out in outputs)
    for code, output in zip(codes, outputs, strict=True):
        if code != 0:  # a clean failure: the CLI's report, no traceback
            assert "Traceback" not in output and "FAILED" in output, output[-3000:]

    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setenv("DAGSTER_HOME", env["DAGSTER_HOME"])
        succeeded = {run.run_id for run in DagsterInstance.get().get_runs() if run.status == DagsterRunStatus.SUCCESS}
    client = Tracking.resolve(f"sqlite:///{tmp_path / 'sid_home' / 'mlflow' / 'mlflow.db'}").client
    versions = client.search_model_versions("name='sid-recommender'")
    assert versions and len(versions) <= 2
    champion = client.get_model_version_by_alias("sid-recommender", CHAMPION)
    assert champion.tags["dagster_run_id"] in succeeded
    for version in versions:
        assert version.tags["dagster_run_id"] in succeeded  # a failed run registers nothing
        assert GATE_TAG in version.tags, version.tags  # every registered version was judged
