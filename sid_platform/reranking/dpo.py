"""Bounded DPO reranking.

The base scorer (cosine between the router's user query and item vectors) is the reference policy. The
reranker adds a correction δ(user, item) and the final score is ``base + α·tanh(δ)``: whatever δ
learns, no item moves by more than ±α, so the base ranking stays dominant and a bad correction cannot
wreck it (the unbounded variant, ``base + δ``, is kept for the diagnostic that shows why).

DPO on a pair (chosen c, rejected r) with policy logits score/T: the reference's log-ratio cancels the
base score and the loss is ``-log σ(β·((s(c) − base(c)) − (s(r) − base(r)))/T)``. Rejected items are
hard negatives drawn from the same pool the reranker reorders at inference (the top ``pool_size``
candidates by base score), or uniform random items for the comparison.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sid_platform.checkpoint import load_checkpoint, save_checkpoint
from sid_platform.distributed import replicas
from sid_platform.progress import LogLine
from sid_platform.training import TrainingLog, train_with_early_stopping

NEGATIVE_KINDS = ("hard", "random")


@dataclass(frozen=True)
class RerankerConfig:
    alpha: float = 0.05  # the bound: the correction moves a score by at most ±alpha
    bounded: bool = True  # False: score = base + δ (the diagnostic's unbounded variant)
    temperature: float = 0.05  # policy logits = score / temperature (the router's cosine temperature)
    beta: float = 1.0  # DPO strength
    hidden_dim: int = 64
    pool_size: int = 100  # the candidates the reranker reorders and draws hard negatives from
    negatives: str = "hard"  # hard (from the pool) | random (uniform over the catalog)
    negatives_per_user: int = 4
    lr: float = 1e-3
    weight_decay: float = 1e-4
    epochs: int = 10
    batch_size: int = 1024
    holdout_share: float = 0.2  # share of the training users whose pairs measure validation accuracy
    seed: int = 0


def bounded_score(base: torch.Tensor, delta: torch.Tensor, alpha: float) -> torch.Tensor:
    """``base + α·tanh(δ)``: |score − base| ≤ α for every δ."""
    return base + alpha * torch.tanh(delta)


def dpo_loss(
    margin_chosen: torch.Tensor, margin_rejected: torch.Tensor, beta: float, temperature: float
) -> torch.Tensor:
    """Margins are ``score − base`` (the policy/reference log-ratio times the temperature)."""
    return -nn.functional.logsigmoid(beta * (margin_chosen - margin_rejected) / temperature).mean()


class Reranker(nn.Module):
    """δ(user, item) from the user query q, the item vector k, q⊙k and the base score."""

    def __init__(self, dim: int, cfg: RerankerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = nn.Sequential(nn.Linear(3 * dim + 1, cfg.hidden_dim), nn.GELU(), nn.Linear(cfg.hidden_dim, 1))

    def delta(self, q: torch.Tensor, k: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        q = q.expand_as(k)
        return self.net(torch.cat([q, k, q * k, base.unsqueeze(-1)], dim=-1)).squeeze(-1)

    def correction(self, q: torch.Tensor, k: torch.Tensor, base: torch.Tensor) -> torch.Tensor:
        """score − base: ``α·tanh(δ)`` when bounded, ``δ`` otherwise."""
        delta = self.delta(q, k, base)
        return bounded_score(torch.zeros_like(base), delta, self.cfg.alpha) if self.cfg.bounded else delta


@dataclass
class PreferencePairs:
    """One row per (user, negative): the user's query, the chosen item and a rejected item."""

    user: np.ndarray  # row into the queries
    chosen: np.ndarray
    rejected: np.ndarray

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: np.ndarray) -> PreferencePairs:
        return PreferencePairs(self.user[mask], self.chosen[mask], self.rejected[mask])


def preference_pairs(
    pools: np.ndarray, targets: np.ndarray, n_items: int, kind: str, per_user: int, rng: np.random.Generator
) -> PreferencePairs:
    """Chosen = each user's target; rejected = ``per_user`` items from its pool (hard) or the catalog (random).

    ``pools``: [users, pool_size] item indices by base score (-1 padding). Only users whose target is in
    their pool give pairs: the reranker only ever reorders the pool, and a target from outside it would
    teach the shortcut "lower base score, push up", which scores well on pairs and wrecks the ranking.
    The target is never a negative.
    """
    if kind not in NEGATIVE_KINDS:
        raise ValueError(f"unknown negative kind {kind!r}; choose one of {', '.join(NEGATIVE_KINDS)}")
    users, chosen, rejected = [], [], []
    for row, (pool, target) in enumerate(zip(pools, targets, strict=True)):
        if target not in pool:
            continue
        if kind == "hard":
            options = pool[(pool >= 0) & (pool != target)]
        else:
            options = rng.choice(n_items, size=min(n_items, per_user + 1), replace=False)
            options = options[options != target]
        if not len(options):
            continue
        picked = rng.choice(options, size=min(per_user, len(options)), replace=False)
        users.extend([row] * len(picked))
        chosen.extend([target] * len(picked))
        rejected.extend(picked.tolist())
    as_array = lambda values: np.asarray(values, dtype=np.int64)  # noqa: E731
    return PreferencePairs(as_array(users), as_array(chosen), as_array(rejected))


def _margins(model: Reranker, queries: torch.Tensor, keys: torch.Tensor, pairs: PreferencePairs) -> tuple:
    q = queries[torch.from_numpy(pairs.user)]
    kc, kr = keys[torch.from_numpy(pairs.chosen)], keys[torch.from_numpy(pairs.rejected)]
    base_c, base_r = (q * kc).sum(-1), (q * kr).sum(-1)
    return model.correction(q, kc, base_c), model.correction(q, kr, base_r)


class DpoLoss(nn.Module):
    """A batch's DPO loss as a forward: DDP syncs gradients only through a forward (distributed.py)."""

    def __init__(self, model: Reranker) -> None:
        super().__init__()
        self.model = model

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, pairs: PreferencePairs) -> torch.Tensor:
        chosen, rejected = _margins(self.model, queries, keys, pairs)
        return dpo_loss(chosen, rejected, self.model.cfg.beta, self.model.cfg.temperature)


@torch.no_grad()
def preference_accuracy(model: Reranker, queries: torch.Tensor, keys: torch.Tensor, pairs: PreferencePairs) -> float:
    """Share of pairs whose implicit reward (the correction) prefers the chosen item."""
    if not len(pairs):
        return 0.0
    was_training = model.training
    model.eval()
    chosen, rejected = _margins(model, queries, keys, pairs)
    model.train(was_training)
    return float((chosen > rejected).float().mean())


def train_reranker(
    queries: torch.Tensor,
    keys: torch.Tensor,
    train_pairs: PreferencePairs,
    valid_pairs: PreferencePairs,
    cfg: RerankerConfig,
    on_epoch: Callable[[dict], None] | None = None,
    on_progress: LogLine | None = None,
    name: str = "reranker",
) -> tuple[Reranker, TrainingLog]:
    """DPO over the pairs for every epoch (no patience); keeps the epoch with the best validation preference accuracy.

    ``on_progress`` receives the epoch progress lines under ``name``.
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = Reranker(keys.shape[1], cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    group = replicas()  # one process, or one torchrun replica: each takes its shard of every batch
    step = group.wrap(DpoLoss(model))

    def run_epoch(epoch: int) -> dict[str, float]:
        order = rng.permutation(len(train_pairs))
        total, batches = 0.0, 0
        for start in range(0, len(order), cfg.batch_size):
            rows, weight = group.shard(order[start : start + cfg.batch_size])
            loss = weight * step(queries, keys, train_pairs.subset(rows))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        return {"loss": total / max(batches, 1)}

    def validate() -> dict[str, float]:
        return {
            "train_accuracy": preference_accuracy(model, queries, keys, train_pairs),
            "valid_accuracy": preference_accuracy(model, queries, keys, valid_pairs),
        }

    log = train_with_early_stopping(
        model,
        opt,
        run_epoch,
        validate,
        "valid_accuracy",
        max_epochs=cfg.epochs,
        rng=rng,
        on_epoch=on_epoch,
        on_progress=on_progress,
        name=name,
    )
    return model, log


@torch.no_grad()
def rerank(
    model: Reranker,
    queries: torch.Tensor,
    keys: torch.Tensor,
    candidates: Sequence[np.ndarray],
    base_scores: Sequence[np.ndarray],
    k: int,
    on_users: Callable[[int], None] | None = None,
    start_scores: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Reorder each user's top ``pool_size`` candidates by ``start + correction``; the rest follow by ``start``.

    ``start_scores`` (default: the base scores) is the ranking the correction is added to, e.g. the fused
    score; the correction itself always reads the base (cosine) score it was trained on. Returns the top ``k``
    [users, k] and each user's full reordered candidate list: the same items as ``candidates``, only in
    another order. ``on_users`` is called with the number of users done (progress).
    """
    pool_size = model.cfg.pool_size
    ranked = np.full((len(candidates), k), -1, dtype=np.int64)
    orders = []
    starts = base_scores if start_scores is None else start_scores
    for row, (items, base, start) in enumerate(zip(candidates, base_scores, starts, strict=True)):
        items = np.asarray(items, dtype=np.int64)
        by_start = np.argsort(-np.asarray(start), kind="stable")
        pool, rest = by_start[:pool_size], by_start[pool_size:]
        base_t = torch.from_numpy(np.asarray(base, dtype=np.float32)[pool])
        start_t = torch.from_numpy(np.asarray(start, dtype=np.float32)[pool])
        score = start_t + model.correction(queries[row], keys[torch.from_numpy(items[pool])], base_t)
        order = np.concatenate([pool[np.argsort(-score.numpy(), kind="stable")], rest])
        orders.append(items[order])
        ranked[row, : min(k, len(order))] = items[order[:k]]
        if on_users is not None:
            on_users(row + 1)
    return ranked, orders


@dataclass
class RerankerCheckpoint:
    """What ``dpo_checkpoint`` stores: config, weights and log of the reranker, the router codebook version whose
    queries and item vectors it reads, and the study run beside it (diagnostics, not needed to serve)."""

    KIND: ClassVar[str] = "dpo_reranker"

    config: RerankerConfig
    dim: int  # width of the router's query and item vectors
    weights: dict[str, torch.Tensor]
    log: TrainingLog | None = None
    tokenizer_version: str = ""  # the router's codebooks
    study: list[dict] = field(default_factory=list)  # one row per (variant, users)
    curves: dict[str, list[dict]] = field(default_factory=dict)  # variant → per-epoch records
    users: dict[str, int] = field(default_factory=dict)  # train / held_out user counts
    upstream: dict = field(default_factory=dict)  # codebook utilization and channel coverage, for the report

    @classmethod
    def of(cls, model: Reranker, dim: int, log: TrainingLog | None = None) -> RerankerCheckpoint:
        """The model's weights; the study fields are left empty for the caller to fill (``dataclasses.replace``)."""
        weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        return cls(model.cfg, dim, weights, log)

    def model(self) -> Reranker:
        """The trained reranker, in eval mode."""
        model = Reranker(self.dim, self.config)
        model.load_state_dict(self.weights)
        return model.eval()

    def save(self, path: str | Path) -> Path:
        meta = {
            "config": asdict(self.config),
            "dim": self.dim,
            "log": self.log.as_dict() if self.log is not None else None,
            "tokenizer_version": self.tokenizer_version,
            "study": self.study,
            "curves": self.curves,
            "users": self.users,
            "upstream": self.upstream,
        }
        return save_checkpoint(path, self.KIND, self.weights, meta)

    @classmethod
    def load(cls, path: str | Path) -> RerankerCheckpoint:
        weights, meta = load_checkpoint(path, cls.KIND)
        log = TrainingLog.from_dict(meta["log"]) if meta["log"] is not None else None
        return cls(
            RerankerConfig(**meta["config"]),
            meta["dim"],
            weights,
            log,
            tokenizer_version=meta["tokenizer_version"],
            study=meta["study"],
            curves=meta["curves"],
            users=meta["users"],
            upstream=meta["upstream"],
        )
