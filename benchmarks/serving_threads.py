"""The figures behind ``sid_platform/threads.py``: the served model's batch-1 latency (p50/p95/p99) with 1 and 2
torch threads, and one SASRec training epoch (``test`` profile, 6,800 interactions) with 1 and 2 threads, each
with no load of its own (``idle``) and beside one competing process (a busy loop on one core). The machine's
load average at start and end is recorded: on a shared machine "idle" is only this script's side.

    .venv/bin/python -m benchmarks.serving_threads                         # builds a bundle: the test profile
    SID_HOME=/path/to/home .venv/bin/python -m benchmarks.serving_threads  # that home's registered champion
    .venv/bin/python -m benchmarks.serving_threads --contended-run         # also the test profile beside a busy loop

Without a champion under ``$SID_HOME``, the ``test`` profile (synthetic data) runs into a temporary home first,
its wall time recorded, and its champion is served. Writes ``benchmarks/results/serving_threads.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

TORCH_DEFAULT_THREADS = torch.get_num_threads()  # before anything here sets them

import faiss  # noqa: E402
import mlflow.pyfunc  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.results_file import write_result  # noqa: E402
from sid_platform.automation.run import run_main_job  # noqa: E402
from sid_platform.baselines.sasrec import SASRecConfig, train_sasrec  # noqa: E402
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out  # noqa: E402
from sid_platform.data.synthetic import generate  # noqa: E402
from sid_platform.profiles import profile  # noqa: E402
from sid_platform.registry import Tracking, champion, download_version  # noqa: E402
from sid_platform.settings import TORCH_THREADS_ENV  # noqa: E402
from sid_platform.threads import available_cores, threads_for  # noqa: E402

MODEL = "sid-recommender"
THREADS = (1, 2)


@contextmanager
def competing_process(active: bool) -> Iterator[None]:
    """A busy loop on one core for the block (what "one other process on the machine" means here)."""
    if not active:
        yield
        return
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        yield
    finally:
        busy.terminate()
        busy.wait()


def percentiles(ms: list[float]) -> dict[str, float]:
    q = np.percentile(ms, [50, 95, 99])
    return {"requests": len(ms), **{f"p{p}_ms": round(float(v), 2) for p, v in zip((50, 95, 99), q, strict=True)}}


def latencies(predict: Callable[[pd.DataFrame], Any], requests: list[pd.DataFrame], budget_s: float) -> list[float]:
    """Milliseconds per batch-1 request, in order, until the requests or the time budget run out."""
    for frame in requests[:10]:  # warm-up
        predict(frame)
    out, started = [], time.perf_counter()
    for frame in requests:
        start = time.perf_counter()
        predict(frame)
        out.append(1000 * (time.perf_counter() - start))
        if time.perf_counter() - started > budget_s:
            break
    return out


def served_bundle() -> dict[str, Any]:
    """The champion under ``$SID_HOME`` when there is one, else a fresh test-profile run's (timed, idle)."""
    if "SID_HOME" in os.environ and champion(Tracking.resolve(None).client, MODEL) is not None:
        return {"source": f"the registered champion under {os.environ['SID_HOME']}"}
    root = Path(tempfile.mkdtemp(prefix="serving_threads_"))
    os.environ.update({"SID_HOME": str(root / "sid_home"), "DAGSTER_HOME": str(root / "dagster_home")})
    started = time.perf_counter()
    result = run_main_job("test")
    wall = time.perf_counter() - started
    print(f"test profile run {'finished' if result.success else 'FAILED'} in {wall:.0f}s (idle)")
    return {"source": "a test-profile run (synthetic data)", "test_run_wall_seconds_idle": round(wall, 1)}


def serving_latency(n_requests: int, budget_s: float) -> dict[str, Any]:
    tracking = Tracking.resolve(None)
    version = champion(tracking.client, MODEL)
    model = mlflow.pyfunc.load_model(str(download_version(tracking, version, Path(tempfile.mkdtemp()))))
    after_load = torch.get_num_threads()
    catalog = sorted(model.unwrap_python_model().served.catalog)
    rng = np.random.default_rng(0)
    requests = [
        pd.DataFrame({"history": [list(rng.choice(catalog, size=int(rng.integers(1, 21))))]}) for _ in range(n_requests)
    ]
    figures: dict[str, Any] = {
        "model_version": int(version.version),
        "serving_model": model.unwrap_python_model().serving,
        "catalog_items": len(catalog),
        "history_lengths": "1-20 random catalog items",
        "threads_after_load_context": after_load,
    }
    for contended in (False, True):
        setting = "one_competing_process" if contended else "idle"
        with competing_process(contended):
            for threads in THREADS:
                torch.set_num_threads(threads)
                faiss.omp_set_num_threads(threads)
                ms = latencies(lambda frame: model.predict(frame, params={"k": 10}), requests, budget_s)
                figures[f"{setting}_{threads}_threads"] = percentiles(ms)
                print(f"serving, {setting}, {threads} thread(s): {figures[f'{setting}_{threads}_threads']}")
    return figures


def sasrec_epochs(epochs: int) -> dict[str, Any]:
    """Seconds per SASRec epoch (training and validation) on the test profile's data, per thread count."""
    data = generate(n_users=800, n_items=320, seed=0)
    sequences = UserSequences.from_splits(leave_one_out(data.interactions), ItemVocab.from_catalog(data.items))
    cfg = replace(profile("test").sasrec_model, epochs=epochs, patience=None)
    figures: dict[str, Any] = {"interactions": len(data.interactions), "epochs_timed": epochs}
    return figures | sasrec_epoch_seconds(sequences, cfg, "sasrec epoch", digits=3)


def sasrec_epoch_seconds(sequences: UserSequences, cfg: SASRecConfig, label: str, digits: int) -> dict[str, float]:
    """Median seconds per SASRec epoch with each thread count, idle and beside one busy process."""
    figures: dict[str, float] = {}
    for contended in (False, True):
        setting = "one_competing_process" if contended else "idle"
        with competing_process(contended):
            for threads in THREADS:
                os.environ[TORCH_THREADS_ENV] = f"training={threads}"  # train_with_early_stopping sets them
                _, log = train_sasrec(sequences.train, sequences.valid, len(sequences.vocab), cfg)
                ends = [0.0, *log.curve("seconds")]
                per_epoch = statistics.median(b - a for a, b in zip(ends, ends[1:], strict=False))
                figures[f"{setting}_{threads}_threads_s_per_epoch"] = round(per_epoch, digits)
                print(f"{label}, {setting}, {threads} thread(s): {per_epoch:.{digits}f}s", flush=True)
    os.environ.pop(TORCH_THREADS_ENV, None)
    return figures


def contended_run() -> dict[str, Any]:
    """The test profile's wall time beside one competing process, with the threads the platform now sets."""
    root = Path(tempfile.mkdtemp(prefix="serving_threads_contended_"))
    os.environ.update({"SID_HOME": str(root / "sid_home"), "DAGSTER_HOME": str(root / "dagster_home")})
    with competing_process(True):
        started = time.perf_counter()
        result = run_main_job("test")
        wall = time.perf_counter() - started
    print(f"test profile run {'finished' if result.success else 'FAILED'} in {wall:.0f}s beside a busy loop")
    return {"test_run_wall_seconds_one_competing_process": round(wall, 1), "success": result.success}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300, help="batch-1 requests per setting")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds at most per setting")
    parser.add_argument("--epochs", type=int, default=3, help="SASRec epochs per setting (the median is kept)")
    parser.add_argument("--contended-run", action="store_true", help="also the test profile beside a busy loop")
    args = parser.parse_args()
    load_before = os.getloadavg()
    source = served_bundle()
    payload: dict[str, Any] = {
        "load_average_1_5_15_min_at_start": [round(v, 2) for v in load_before],  # others' load on a shared machine
        "cores_available": available_cores(),
        "torch_default_threads": TORCH_DEFAULT_THREADS,
        "chosen_threads": {"serving": threads_for("serving"), "training": threads_for("training")},
        "bundle": source,
        "serving_batch1_k10": serving_latency(args.requests, args.budget),
        "sasrec_training_test_profile": sasrec_epochs(args.epochs),
    }
    if args.contended_run:
        payload["test_profile_run"] = contended_run()
    payload["load_average_1_5_15_min_at_end"] = [round(v, 2) for v in os.getloadavg()]
    print(f"wrote {write_result('serving_threads', payload)}")


if __name__ == "__main__":
    main()
