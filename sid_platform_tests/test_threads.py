"""Torch threads per stage: one for serving, half the cores (at most a few) for training, an environment override,
and the trainers' loop running with the training count and restoring the caller's afterwards."""

import numpy as np
import pytest
import torch
from torch import nn

from sid_platform import threads
from sid_platform.settings import TORCH_THREADS_ENV
from sid_platform.threads import parse_override, stage_threads, threads_for, use_threads
from sid_platform.training import train_with_early_stopping


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(TORCH_THREADS_ENV, raising=False)
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, {}),
        ("", {}),
        ("3", {"serving": 3, "training": 3}),
        ("serving=1, training=4", {"serving": 1, "training": 4}),
        ("training=2", {"training": 2}),
    ],
)
def test_the_override_sets_every_stage_or_named_ones(value, expected):
    assert parse_override(value) == expected


@pytest.mark.parametrize("value", ["0", "many", "gpu=2", "serving=", "training=-1", "serving=1,x"])
def test_a_bad_override_names_the_variable(value):
    with pytest.raises(ValueError, match=f"^{TORCH_THREADS_ENV}="):
        parse_override(value)


@pytest.mark.parametrize(("cores", "training"), [(1, 1), (2, 1), (4, 2), (16, threads.TRAINING_MAX_THREADS)])
def test_serving_gets_one_thread_and_training_half_the_cores_capped(monkeypatch, cores: int, training: int):
    monkeypatch.setattr(threads, "available_cores", lambda: cores)
    assert threads_for("serving") == 1 and threads_for("training") == training
    monkeypatch.setenv(TORCH_THREADS_ENV, "training=3")
    assert threads_for("serving") == 1 and threads_for("training") == 3
    with pytest.raises(ValueError, match="unknown stage"):
        threads_for("inference")  # type: ignore[arg-type]


def test_available_cores_is_at_least_one():
    assert threads.available_cores() >= 1


def test_a_stage_sets_the_process_or_a_block_and_the_block_restores(monkeypatch):
    monkeypatch.setenv(TORCH_THREADS_ENV, "serving=1,training=2")
    assert use_threads("training") == 2 and torch.get_num_threads() == 2
    with stage_threads("serving") as count:
        assert count == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_every_trainer_runs_with_the_training_threads(monkeypatch):
    monkeypatch.setenv(TORCH_THREADS_ENV, "serving=1,training=2")
    torch.set_num_threads(1)
    model, seen = nn.Linear(2, 1), []

    def run_epoch(epoch: int) -> dict[str, float]:
        seen.append(torch.get_num_threads())
        return {"loss": 1.0}

    train_with_early_stopping(
        model, None, run_epoch, lambda: {"score": 0.0}, "score", max_epochs=2, rng=np.random.default_rng(0)
    )
    assert seen == [2, 2] and torch.get_num_threads() == 1
