"""Early stopping, written once: every trainer (SASRec, the router, the reranker) runs through here.

A trainer supplies two functions: ``run_epoch`` (one pass over its data, returns its training figures)
and ``validate`` (returns its validation figures), and names the validation figure it selects on. This
loop keeps the best epoch's weights, stops after ``patience`` epochs without a better score or at
``max_epochs``, and, given a resume file, saves its whole state after every epoch so a killed run
continues where it stopped. Under ``torchrun`` the same loop runs in every replica (sid_platform/distributed.py):
the epoch's figures are averaged over replicas, rank 0 validates and decides the clock stop for all, and
rank 0 alone writes the resume file and reports progress. Training is capped by epochs, never by wall clock by default, so a busy
machine yields the same model more slowly; ``max_minutes`` exists for interactive use only.

The resume file holds plain tensors and a JSON string: it loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
import io
import json
import numbers
import pickle  # only its UnpicklingError: what torch.load(weights_only=True) raises on anything but tensors
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from sid_platform.distributed import replicas
from sid_platform.progress import LogLine, Progress, duration
from sid_platform.threads import stage_threads


class ResumeFile(Protocol):
    """Where a trainer keeps its state between epochs (a local file, an object in S3)."""

    def read(self) -> bytes | None: ...

    def write(self, data: bytes) -> None: ...

    def delete(self) -> None: ...


@dataclass
class TrainingLog:
    """One record per epoch (training and validation figures, seconds so far) and how training ended."""

    selection: str = ""  # the validation figure the best epoch is chosen on
    epochs: list[dict] = field(default_factory=list)
    best_epoch: int = -1
    best_score: float = float("-inf")
    seconds: float = 0.0
    stopped_by: str = "epochs"  # epochs | patience | max_minutes
    resumed_from_epoch: int | None = None
    chosen: dict = field(default_factory=dict)  # what was chosen on validation after training, with its figures

    @property
    def best(self) -> dict:
        """The best epoch's record (empty before the first epoch)."""
        return next((e for e in self.epochs if e["epoch"] == self.best_epoch), {})

    def curve(self, key: str) -> list[float]:
        return [e[key] for e in self.epochs]

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TrainingLog:
        return cls(**data)


@stage_threads("training")  # every trainer's threads, set here once (see sid_platform/threads.py)
def train_with_early_stopping(
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    run_epoch: Callable[[int], dict[str, float]],
    validate: Callable[[], dict[str, float]],
    selection: str | Callable[[dict[str, float]], float],
    *,
    max_epochs: int,
    patience: int | None = None,
    max_minutes: float | None = None,
    rng: np.random.Generator | None = None,
    resume: ResumeFile | None = None,
    fingerprint: str = "",
    on_epoch: Callable[[dict], None] | None = None,
    selection_name: str | None = None,
    on_progress: LogLine | None = None,
    name: str = "training",
) -> TrainingLog:
    """Train ``model`` epoch by epoch and leave it holding the best epoch's weights, in eval mode.

    ``selection`` names a key of ``validate``'s figures (or computes the score from them); higher is
    better. ``patience=None`` runs every epoch and still keeps the best. ``fingerprint`` identifies the
    data and config: a resume file written for another fingerprint is ignored. ``on_progress`` receives
    ``name``'s progress lines: the plan, epochs done of at most ``max_epochs`` with the time left (about
    once a minute) and how training ended.
    """
    group = replicas()  # one process, or one torchrun replica of several
    if not group.is_main:
        on_epoch = on_progress = None  # rank 0 speaks for every replica
    score_of = (lambda figures: figures[selection]) if isinstance(selection, str) else selection
    log = TrainingLog(selection=selection_name or (selection if isinstance(selection, str) else "score"))
    best_state, stale, first_epoch, spent = None, 0, 0, 0.0
    saved = _load_resume(resume, fingerprint)
    if saved is not None:
        model.load_state_dict(saved["model"])
        if optimizer is not None:
            optimizer.load_state_dict(saved["optimizer"])
        best_state = saved["best_state"] or None
        meta = json.loads(saved["meta"])
        log, stale, spent = TrainingLog.from_dict(meta["log"]), meta["stale"], meta["seconds"]
        log.resumed_from_epoch = first_epoch = meta["epoch"] + 1
        if rng is not None:
            rng.bit_generator.state = meta["rng"]
        torch.set_rng_state(saved["torch_rng"])
    start = time.perf_counter() - spent
    progress = _start_progress(on_progress, name, max_epochs, patience, max_minutes, first_epoch)
    for epoch in range(first_epoch, max_epochs):
        if patience is not None and stale >= patience:
            log.stopped_by = "patience"
            break
        if max_minutes is not None and group.from_main(lambda: time.perf_counter() - start > max_minutes * 60):
            log.stopped_by = "max_minutes"
            break
        model.train()
        figures = group.mean(run_epoch(epoch))
        model.eval()
        figures = {**figures, **group.from_main(validate)}
        score = float(score_of(figures))
        entry = {"epoch": epoch, **figures, "seconds": time.perf_counter() - start}
        log.epochs.append(entry)
        if on_epoch is not None:
            on_epoch(entry)
        if score > log.best_score:
            log.best_epoch, log.best_score, stale = epoch, score, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
        progress.update(epoch + 1, f"{figures_line(figures)}; best epoch {log.best_epoch} ({log.best_score:.4f})")
        if resume is not None and group.is_main:
            _save_resume(resume, fingerprint, epoch, model, optimizer, best_state, stale, start, log, rng)
    else:
        log.stopped_by = "patience" if patience is not None and stale >= patience else "epochs"
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    log.seconds = time.perf_counter() - start
    if resume is not None and group.is_main:
        resume.delete()  # finished: the next run starts fresh
    if on_progress is not None:
        on_progress(
            f"{name}: finished after {len(log.epochs)} epochs in {duration(log.seconds)} ({_STOPS[log.stopped_by]}); "
            f"best epoch {log.best_epoch}, {log.selection} {log.best_score:.4f}"
        )
    return log


_STOPS = {"epochs": "every epoch ran", "patience": "stopped by patience", "max_minutes": "stopped by the time cap"}


def _start_progress(
    on_progress: LogLine | None,
    name: str,
    max_epochs: int,
    patience: int | None,
    max_minutes: float | None,
    first_epoch: int,
) -> Progress:
    """Say the plan (the epoch cap, the patience) and count epochs; the estimate is an upper bound under early stopping."""
    stops = [f"patience {patience}"] if patience is not None else []
    stops += [f"at most {max_minutes:g} minutes"] if max_minutes is not None else []
    if on_progress is not None:
        resumed = f", resuming after epoch {first_epoch - 1}" if first_epoch else ""
        on_progress(f"{name}: up to {max_epochs} epochs{', ' + ', '.join(stops) if stops else ''}{resumed}")
    return Progress(name, max_epochs, on_progress, unit="epochs", done=first_epoch, at_most=bool(stops))


def figures_line(figures: dict) -> str:
    """An epoch's numeric figures as ``name value`` pairs, four significant digits."""
    return ", ".join(f"{key} {value:.4g}" for key, value in figures.items() if isinstance(value, numbers.Real))


def _save_resume(
    resume: ResumeFile,
    fingerprint: str,
    epoch: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None,
    best_state: dict | None,
    stale: int,
    start: float,
    log: TrainingLog,
    rng: np.random.Generator | None,
) -> None:
    meta = {
        "fingerprint": fingerprint,
        "epoch": epoch,
        "stale": stale,
        "seconds": time.perf_counter() - start,
        "log": log.as_dict(),
        "rng": rng.bit_generator.state if rng is not None else None,
    }
    blob = {
        "meta": json.dumps(meta, default=_plain),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else {},
        "best_state": best_state or {},
        "torch_rng": torch.get_rng_state(),
    }
    buffer = io.BytesIO()
    torch.save(blob, buffer)
    resume.write(buffer.getvalue())


def _plain(value: object) -> object:
    """numpy scalars in the epoch records as the JSON numbers they stand for."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _load_resume(resume: ResumeFile | None, fingerprint: str) -> dict | None:
    """The saved state when it exists and belongs to this fingerprint; it never executes code.

    Anything else under the resume key (another run's state, a file in an older format that holds objects
    rather than plain tensors) is ignored: the run starts fresh and overwrites it after its first epoch.
    """
    data = resume.read() if resume is not None else None
    if not data:
        return None
    try:
        saved = torch.load(io.BytesIO(data), weights_only=True)
    except pickle.UnpicklingError:  # not plain tensors: an older format, never unpickled here
        return None
    if not isinstance(saved, dict) or not isinstance(saved.get("meta"), str):
        return None
    if json.loads(saved["meta"]).get("fingerprint") != fingerprint:
        return None
    return saved
