"""``train_with_early_stopping``: best epoch kept, patience, epoch cap, and a resume file that survives a kill."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from sid_platform.storage import LocalBlobStore, StoredFile
from sid_platform.training import TrainingLog, train_with_early_stopping


@dataclass
class MemoryFile:
    """A resume file in memory (what a local file or an S3 object is to the loop)."""

    data: bytes | None = None

    def read(self) -> bytes | None:
        return self.data

    def write(self, data: bytes) -> None:
        self.data = data

    def delete(self) -> None:
        self.data = None


def scripted(scores: list[float]):
    """A linear model whose validation scores are given; snapshots its weights after every epoch."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)
    snapshots: list[torch.Tensor] = []

    def run_epoch(epoch: int) -> dict[str, float]:
        with torch.no_grad():
            model.weight.add_(1.0)
        snapshots.append(model.weight.detach().clone())
        return {"loss": float(-epoch)}

    def validate() -> dict[str, float]:
        return {"valid_score": scores[len(snapshots) - 1]}

    return model, run_epoch, validate, snapshots


def test_keeps_the_best_epoch_and_leaves_the_model_in_eval_mode():
    model, run_epoch, validate, snapshots = scripted([0.1, 0.5, 0.3, 0.2])
    log = train_with_early_stopping(model, None, run_epoch, validate, "valid_score", max_epochs=4)
    assert [e["epoch"] for e in log.epochs] == [0, 1, 2, 3] and log.stopped_by == "epochs"
    assert log.best_epoch == 1 and log.best_score == 0.5 and log.best["valid_score"] == 0.5
    assert log.selection == "valid_score" and log.curve("loss") == [0.0, -1.0, -2.0, -3.0]
    assert torch.equal(model.weight, snapshots[1]) and not model.training


def test_stops_after_patience_epochs_without_a_better_score():
    model, run_epoch, validate, snapshots = scripted([0.1, 0.5, 0.3, 0.2, 0.9, 0.9])
    log = train_with_early_stopping(model, None, run_epoch, validate, "valid_score", max_epochs=6, patience=2)
    assert len(log.epochs) == 4 and log.stopped_by == "patience"  # epoch 4's 0.9 is never reached
    assert log.best_epoch == 1 and torch.equal(model.weight, snapshots[1])


def test_respects_max_epochs_and_a_computed_selection():
    model, run_epoch, validate, _ = scripted([0.1, 0.2, 0.3, 0.4, 0.5])
    log = train_with_early_stopping(
        model, None, run_epoch, validate, lambda f: -f["valid_score"], selection_name="lowest score", max_epochs=3
    )
    assert len(log.epochs) == 3 and log.stopped_by == "epochs"
    assert log.best_epoch == 0 and log.selection == "lowest score"


def toy_training(seed: int = 0):
    """A small model with dropout (torch random numbers) and shuffled batches (numpy random numbers)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    x = torch.from_numpy(np.random.default_rng(99).normal(size=(200, 8)).astype(np.float32))
    y = (x[:, :1] * 2 - x[:, 1:2]).clone()
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)

    def run_epoch(epoch: int) -> dict[str, float]:
        total = 0.0
        for batch in np.array_split(rng.permutation(len(x)), 5):
            loss = nn.functional.mse_loss(model(x[batch]), y[batch])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        return {"loss": np.float32(total / 5)}  # a numpy scalar: the log must still be written as JSON

    def validate() -> dict[str, float]:
        with torch.no_grad():
            return {"valid_neg_mse": -float(nn.functional.mse_loss(model(x[:50]), y[:50]))}

    return model, opt, rng, run_epoch, validate


def train(resume=None, fingerprint: str = "data-v1", on_epoch=None) -> tuple[nn.Module, TrainingLog]:
    model, opt, rng, run_epoch, validate = toy_training()
    log = train_with_early_stopping(
        model, opt, run_epoch, validate, "valid_neg_mse", max_epochs=6, patience=3, rng=rng,
        resume=resume, fingerprint=fingerprint, on_epoch=on_epoch,
    )  # fmt: skip
    return model, log


def crash_at(epoch: int):
    def on_epoch(entry: dict) -> None:
        if entry["epoch"] == epoch:
            raise KeyboardInterrupt  # the process dies; the epochs before were saved

    return on_epoch


def without_seconds(log: TrainingLog) -> list[dict]:
    return [{k: v for k, v in e.items() if k != "seconds"} for e in log.epochs]


def test_a_killed_run_resumes_to_the_same_model_as_an_uninterrupted_one(tmp_path: Path):
    reference, reference_log = train()
    resume = StoredFile(LocalBlobStore(tmp_path), "checkpoints/toy.resume.pt")
    with pytest.raises(KeyboardInterrupt):
        train(resume, on_epoch=crash_at(3))
    assert resume.read() is not None
    model, log = train(resume)
    assert log.resumed_from_epoch == 3 and [e["epoch"] for e in log.epochs] == list(range(6))
    assert without_seconds(log) == without_seconds(reference_log)
    assert (log.best_epoch, log.stopped_by) == (reference_log.best_epoch, reference_log.stopped_by)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(tensor, model.state_dict()[name]), name  # bit-identical
    assert resume.read() is None  # a finished run leaves no resume file behind


def test_a_resume_file_of_another_fingerprint_is_ignored():
    resume = MemoryFile()
    with pytest.raises(KeyboardInterrupt):
        train(resume, fingerprint="data-v1", on_epoch=crash_at(2))
    _, log = train(resume, fingerprint="data-v2")
    assert log.resumed_from_epoch is None and log.epochs[0]["epoch"] == 0 and len(log.epochs) == 6


EXECUTED: list[str] = []


class Payload:
    """Unpickling this would run code; a weights-only load must refuse it."""

    def __reduce__(self):
        return (EXECUTED.append, ("payload ran",))


def test_the_resume_file_loads_weights_only_and_never_runs_code():
    resume = MemoryFile()
    with pytest.raises(KeyboardInterrupt):
        train(resume, on_epoch=crash_at(2))
    saved = torch.load(io.BytesIO(resume.read() or b""), weights_only=True)  # plain tensors and a JSON string
    assert set(saved) == {"meta", "model", "optimizer", "best_state", "torch_rng"} and isinstance(saved["meta"], str)
    buffer = io.BytesIO()
    torch.save({"meta": "{}", "model": Payload()}, buffer)
    resume.write(buffer.getvalue())
    _, log = train(resume)
    assert log.resumed_from_epoch is None and EXECUTED == []
