"""Torch's (and FAISS's) intra-op threads, set per stage in one place.

Why: torch starts one intra-op thread per core, and its OpenMP threads spin while they wait for each other.
For the tiny operations of one served request (a 64-wide transformer over at most 50 positions) extra
threads cost more than they save, and where another process holds a core a spinning thread waits for a
descheduled one: one user took 490 ms p50 with torch's default threads against 16.7 ms with one, and a
``test``-profile run was 12x slower beside one other process. So, per stage:

- ``serving`` (the bundle's ``load_context``; small batches): 1 thread.
- ``training`` (the trainers' loop; the in-process run's large batches: embedding, retrieval, evaluation):
  half the cores this process may use (its CPU affinity and cgroup quota), at least 1 and at most
  ``TRAINING_MAX_THREADS``. Half, so that one competing process still finds a free core for each thread.

Measured by ``benchmarks/serving_threads.py`` on the idle 2-core development machine: batch-1 predict p50
12.1 ms with 1 thread against 11.5 ms with 2, and 12.2 ms against 22.3 ms (p99 20.6 against 183 ms) beside one
busy process; a test-profile SASRec epoch 0.092 s against 0.117 s (0.114 s against 0.537 s beside the busy
process). For large batches (``benchmarks/training_threads.py``, one Beauty SASRec epoch with the full-catalog
softmax, batches of 256 users): 38.3 s with 1 thread against 22.9 s with 2 on the idle machine, but 35.7 s against
46.4 s beside one busy process. Half the cores is the choice that holds up on a shared machine (a busy neighbour
costs it nothing, while 2 threads on 2 cores lose 30 %); on a machine the run has to itself,
``SID_TORCH_THREADS=training=2`` makes a 2-core epoch 1.7x faster. The cap of 4 on larger machines is not measured.

``$SID_TORCH_THREADS`` overrides (read in ``settings``): ``4`` for every stage, or ``serving=1,training=4``.
Inter-op threads (used by ``torch.jit.fork``, which nothing here calls) are set once per process, by the
first stage applied: torch refuses to change them later.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Literal

import faiss
import torch

from sid_platform.settings import TORCH_THREADS_ENV, torch_threads

Stage = Literal["serving", "training"]
STAGES: tuple[Stage, ...] = ("serving", "training")
SERVING_THREADS = 1
TRAINING_MAX_THREADS = 4  # the models are small (hidden 64, batches of 256): more threads add sync, not speed

_interop_set = False


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity, cut to the container's cgroup CPU quota when set."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cores, math.ceil(quota))) if quota else max(1, cores)


def _cgroup_quota() -> float | None:
    """CPUs granted by the cgroup (v2 ``cpu.max``, else v1 ``cfs_quota_us``); ``None`` when unlimited or unknown."""
    try:
        v2 = Path("/sys/fs/cgroup/cpu.max")
        if v2.is_file():
            quota, period = v2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")
        if v1.is_file():
            quota_us = int(v1.read_text())
            period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
            return None if quota_us <= 0 else quota_us / period_us
    except (OSError, ValueError):
        return None
    return None


def parse_override(value: str | None) -> dict[str, int]:
    """``"4"`` → every stage 4; ``"serving=1,training=2"`` → those stages; a mistake names the variable."""
    if not value or not value.strip():
        return {}
    problem = (
        f"{TORCH_THREADS_ENV}={value!r}: expected a thread count (e.g. 4) or stage=count pairs "
        f"(e.g. serving=1,training=4) with stages {', '.join(STAGES)}"
    )
    parts = [part.strip() for part in value.split(",") if part.strip()]
    counts: dict[str, int] = {}
    try:
        if len(parts) == 1 and "=" not in parts[0]:
            counts = dict.fromkeys(STAGES, int(parts[0]))
        else:
            for part in parts:
                stage, _, count = part.partition("=")
                if stage.strip() not in STAGES:
                    raise ValueError(stage)
                counts[stage.strip()] = int(count)
    except ValueError as error:
        raise ValueError(problem) from error
    if any(count < 1 for count in counts.values()):
        raise ValueError(problem)
    return counts


def threads_for(stage: Stage) -> int:
    """The intra-op thread count of ``stage``: the override when set, else the rule above."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; stages: {', '.join(STAGES)}")
    override = parse_override(torch_threads())
    if stage in override:
        return override[stage]
    if stage == "serving":
        return SERVING_THREADS
    return max(1, min(available_cores() // 2, TRAINING_MAX_THREADS))


def _set(count: int) -> None:
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)
    faiss.omp_set_num_threads(count)


def use_threads(stage: Stage) -> int:
    """Set ``stage``'s threads for the whole process (a serving process, a run); returns the count."""
    global _interop_set
    count = threads_for(stage)
    _set(count)
    if not _interop_set:
        _interop_set = True
        # Inter-op work already started (or the count was set elsewhere): the pool keeps its size.
        with suppress(RuntimeError):
            torch.set_num_interop_threads(count)
    return count


@contextmanager
def stage_threads(stage: Stage) -> Iterator[int]:
    """``stage``'s threads inside the block, the previous counts after it (a trainer called from anywhere)."""
    previous = torch.get_num_threads(), faiss.omp_get_max_threads()
    count = threads_for(stage)
    _set(count)
    try:
        yield count
    finally:
        torch.set_num_threads(previous[0])
        faiss.omp_set_num_threads(previous[1])
