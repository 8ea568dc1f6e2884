"""Data-parallel training under ``torchrun``, through the same trainers and loop as one process.

Why one path: a trainer written twice drifts. Every trainer asks ``replicas()`` where it runs; in a plain
process that is a single replica whose every method is the identity, so single-process training is the
world-size-1 case of the distributed one, not a second loop. Under ``torchrun`` (after ``process_group``):

- ``wrap`` puts the trainer's loss module in ``DistributedDataParallel``: its gradients are averaged over
  the replicas during ``backward`` (only computation through the wrapped module's ``forward`` is synced,
  which is why each trainer computes its batch loss in one small ``nn.Module``);
- every replica draws the same global batch order (same seed, same numpy generator), and ``shard`` gives
  each its rows of the global batch and a weight. The weight makes the averaged gradient the gradient of
  the global batch's mean loss, so a step over a global batch matches one process's step over it even when
  the shards hold different numbers of rows or positions;
- ``mean`` averages the epoch's (weighted) loss figures over replicas: the log shows the global figures;
- ``from_main`` runs validation (and any clock-based decision) on rank 0 and hands the result to every
  replica, so all take the same early-stopping decisions and keep the same best epoch;
- rank 0 alone writes resume files and checkpoints and reports progress (``is_main``).

The gloo backend runs on CPUs (the tests, this machine); NCCL on GPUs uses the same code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from sid_platform.settings import torchrun_process

T = TypeVar("T")
# Rank 0 validates while the other replicas wait in a broadcast: the wait must outlast a full validation.
WAIT = timedelta(hours=2)


@dataclass(frozen=True)
class Replicas:
    """This process's place among the training replicas: rank 0 of 1 in a plain process."""

    rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the replica that validates, logs and writes files."""
        return self.rank == 0

    def wrap(self, module: nn.Module, unused_parameters: bool = False) -> nn.Module:
        """``module`` itself in one process; under torchrun, in DDP so ``backward`` averages its gradients.

        ``unused_parameters``: some parameters get no gradient in a step (the router's cosine query/key heads
        sit idle under the dot head); DDP then walks the graph each step to find them. Buffers are synced
        once, not before every step: they are constants (Semantic IDs, content vectors, masks). Each replica then reseeds torch from the shared seed plus its rank: the same dropout masks on every
        replica would correlate their gradients.
        """
        if not self.distributed:
            return module
        torch.manual_seed(torch.initial_seed() + self.rank)
        return DistributedDataParallel(module, find_unused_parameters=unused_parameters, forward_sync_buffers=False)

    def shard(self, rows: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, float]:
        """This replica's rows of a global batch (every ``world_size``-th, from ``rank``) and its loss weight.

        ``counts`` is what the loss averages over in each row (target positions of a sequence; 1 per pair by
        default). With the loss a mean over the shard, weight ``world_size · shard count / global count``
        makes DDP's gradient average ``Σ_r weight_r · ∇mean_r / world_size`` equal the global batch's
        ``∇mean``. A replica left without rows (a batch smaller than the world) takes one row at weight 0:
        it still runs forward and backward, which the gradient all-reduce needs from every replica.
        """
        counts = np.ones(len(rows)) if counts is None else np.asarray(counts, dtype=np.float64)
        mine = np.arange(self.rank, len(rows), self.world_size)
        if not len(mine):
            return rows[:1], 0.0
        return rows[mine], float(self.world_size * counts[mine].sum() / counts.sum())

    def mean(self, figures: dict[str, float]) -> dict[str, float]:
        """Each figure averaged over the replicas (weighted losses: the global batch means)."""
        if not self.distributed:
            return figures
        values = torch.tensor([float(v) for v in figures.values()], dtype=torch.float64)
        dist.all_reduce(values)
        return dict(zip(figures, (values / self.world_size).tolist(), strict=True))

    def from_main(self, compute: Callable[[], T]) -> T:
        """``compute()`` run on rank 0 alone; every replica gets its (JSON) result.

        JSON, not pickle (which ``broadcast_object_list`` uses): the result is figures and decisions.
        """
        if not self.distributed:
            return compute()
        payload = json.dumps(compute(), default=_plain).encode() if self.is_main else b""
        size = torch.tensor([len(payload)], dtype=torch.int64)
        dist.broadcast(size, src=0)
        data = torch.zeros(int(size.item()), dtype=torch.uint8)
        if self.is_main:
            data = torch.frombuffer(bytearray(payload), dtype=torch.uint8)
        dist.broadcast(data, src=0)
        return json.loads(data.numpy().tobytes())

    def broadcast_state(self, module: nn.Module) -> None:
        """Rank 0's parameters and buffers into every replica's ``module`` (what rank 0 set alone)."""
        if self.distributed:
            for tensor in module.state_dict().values():
                dist.broadcast(tensor, src=0)


def replicas() -> Replicas:
    """Where this process trains: the initialized process group's rank and size, else a single replica."""
    if dist.is_available() and dist.is_initialized():
        return Replicas(dist.get_rank(), dist.get_world_size())
    return Replicas()


@contextmanager
def process_group(
    backend: str = "gloo", *, rank: int | None = None, world_size: int | None = None, init_method: str = "env://"
) -> Iterator[Replicas]:
    """Join the replicas for the block: torchrun's (its environment) or the given rank and world size.

    Outside torchrun and without arguments it yields a single replica and starts nothing, so an entry point
    wrapped in it runs the same under ``python -m`` and ``torchrun``.
    """
    if rank is None or world_size is None:
        place = torchrun_process()
        rank, world_size = (place[0], place[1]) if place is not None else (0, 1)
    if world_size <= 1 or dist.is_initialized():
        yield replicas()
        return
    dist.init_process_group(backend, init_method=init_method, rank=rank, world_size=world_size, timeout=WAIT)
    try:
        yield replicas()
    finally:
        dist.destroy_process_group()


def _plain(value: object) -> object:
    """numpy scalars as the JSON numbers they stand for."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")
