"""SASRec (Kang & McAuley, 2018): a causal transformer over the item sequence, trained next-item.

The loss is cross-entropy over the full catalog (``num_negatives=0``) or over a shared set of uniformly
sampled negatives per batch (``num_negatives>0``); Klenitskiy & Vasilev (RecSys 2023) report that a
cross-entropy SASRec beats the original one-negative BCE by a wide margin. Early stopping keeps the epoch with the best validation Recall@10.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from sid_platform.checkpoint import load_checkpoint, save_checkpoint
from sid_platform.data.split import EvalCases
from sid_platform.evaluation.metrics import rank_with_scorer, recall_at_k
from sid_platform.progress import LogLine
from sid_platform.sequences import length_bucketed_batches, pad_left
from sid_platform.training import TrainingLog, train_with_early_stopping


@dataclass(frozen=True)
class SASRecConfig:
    """Defaults are the ``default`` profile, chosen on Beauty's validation users (see the README)."""

    hidden_dim: int = 64
    num_layers: int = 2
    num_heads: int = 1
    feedforward_dim: int = 0  # width of each block's feed-forward layer; 0 = hidden_dim
    max_len: int = 50
    dropout: float = 0.5
    lr: float = 2e-3
    weight_decay: float = 0.0
    batch_size: int = 256
    epochs: int = 200
    patience: int = 5  # epochs without a better validation Recall@10 before stopping
    num_negatives: int = 0  # 0 = full softmax over the catalog; n > 0: n shared uniform negatives per batch
    batch_negatives: bool = True  # add the items of the batch's input sequences to the sampled negatives
    seed: int = 0


class SASRec(nn.Module):
    """Item and position embeddings → pre-norm causal transformer → dot product with item embeddings."""

    def __init__(self, n_items: int, cfg: SASRecConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_items = n_items
        self.item_emb = nn.Embedding(n_items + 1, cfg.hidden_dim, padding_idx=0)  # 0 = padding, item i ↦ i+1
        self.pos_emb = nn.Embedding(cfg.max_len, cfg.hidden_dim)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            cfg.hidden_dim,
            cfg.num_heads,
            dim_feedforward=cfg.feedforward_dim or cfg.hidden_dim,
            dropout=cfg.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(cfg.hidden_dim)
        causal = torch.triu(torch.ones(cfg.max_len, cfg.max_len, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] padded (left) item tokens → [B, L, d] hidden states."""
        length = seq.shape[1]
        x = self.item_emb(seq) * self.cfg.hidden_dim**0.5 + self.pos_emb.weight[-length:]
        x = self.dropout(x) * (seq > 0).unsqueeze(-1)
        h = self.encoder(x, mask=self.causal_mask[:length, :length], is_causal=True)
        return self.norm(h)

    def item_vectors(self) -> torch.Tensor:
        """[n_items, d] output embeddings, row i for item index i (tied with the input embeddings)."""
        return self.item_emb.weight[1:]

    @torch.no_grad()
    def user_vectors(self, histories: Sequence[np.ndarray]) -> torch.Tensor:
        seq = torch.from_numpy(pad_left([h + 1 for h in histories], self.cfg.max_len, pad=0))
        return self.forward(seq)[:, -1]

    @torch.no_grad()
    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        was_training = self.training
        self.eval()
        scores = (self.user_vectors(histories) @ self.item_vectors().T).numpy()
        self.train(was_training)
        return scores


def train_sasrec(
    train_sequences: Sequence[np.ndarray],
    valid: EvalCases,
    n_items: int,
    cfg: SASRecConfig,
    exclude_history: bool = False,
    on_epoch: Callable[[dict], None] | None = None,
    on_progress: LogLine | None = None,
) -> tuple[SASRec, TrainingLog]:
    """Train on every position of each user's training sequence; keep the best epoch on validation R@10.

    ``on_progress`` receives the epoch progress lines (epochs done, time left).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model = SASRec(n_items, cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # Each sequence of n items gives inputs seq[:-1] and targets seq[1:], both shifted to tokens (+1).
    usable = [s + 1 for s in train_sequences if len(s) >= 2]
    tokens = torch.from_numpy(pad_left(usable, cfg.max_len + 1, pad=0))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    lengths = (targets > 0).sum(1).numpy()

    def run_epoch(epoch: int) -> dict[str, float]:
        total, batches = 0.0, 0
        for idx in length_bucketed_batches(lengths, cfg.batch_size, rng):
            width = int(lengths[idx].max())  # left-padded: the last `width` columns hold every token
            x, y = inputs[idx, -width:], targets[idx, -width:]
            h = model(x)[y > 0]  # [P, d] positions with a real target
            tgt = y[y > 0] - 1  # item indices
            batch_items = torch.unique(x[x > 0]) - 1 if cfg.batch_negatives else None
            loss = _next_item_loss(h, tgt, model.item_vectors(), cfg.num_negatives, rng, batch_items)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item()
            batches += 1
        return {"loss": total / max(batches, 1)}

    def validate() -> dict[str, float]:
        ranked = rank_with_scorer(model.score, valid.histories, 10, exclude_history)
        return {"valid_recall@10": recall_at_k(ranked, valid.targets, 10)}

    log = train_with_early_stopping(
        model,
        opt,
        run_epoch,
        validate,
        "valid_recall@10",
        max_epochs=cfg.epochs,
        patience=cfg.patience,
        rng=rng,
        on_epoch=on_epoch,
        on_progress=on_progress,
        name="sasrec",
    )
    return model, log


def _next_item_loss(
    h: torch.Tensor,
    tgt: torch.Tensor,
    items: torch.Tensor,
    num_negatives: int,
    rng: np.random.Generator,
    batch_items: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the target against the full catalog, or against shared sampled negatives.

    ``batch_items`` (the items in the batch's input sequences) join the uniform sample as negatives:
    they include each user's own history, which an unmasked full-catalog ranking must learn to rank low.
    """
    if num_negatives <= 0 or num_negatives >= len(items):
        return nn.functional.cross_entropy(h @ items.T, tgt)
    negatives = torch.from_numpy(rng.choice(len(items), size=num_negatives, replace=False))
    if batch_items is not None:
        negatives = torch.unique(torch.cat([negatives, batch_items]))
    pos = (h * items[tgt]).sum(-1, keepdim=True)
    neg = h @ items[negatives].T
    neg = neg.masked_fill(negatives.unsqueeze(0) == tgt.unsqueeze(1), float("-inf"))  # a negative that is the target
    logits = torch.cat([pos, neg], dim=1)
    return nn.functional.cross_entropy(logits, torch.zeros(len(tgt), dtype=torch.long))


@dataclass
class SASRecCheckpoint:
    """What ``sasrec_model`` stores: the config, the item vocabulary its indices refer to, the weights, the log."""

    KIND: ClassVar[str] = "sasrec"

    config: SASRecConfig
    item_ids: list[str]  # row i of the item embeddings (token i + 1) is item_ids[i]
    weights: dict[str, torch.Tensor]
    log: TrainingLog | None = None

    @classmethod
    def of(cls, model: SASRec, item_ids: Sequence[str], log: TrainingLog | None = None) -> SASRecCheckpoint:
        weights = {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
        return cls(model.cfg, list(item_ids), weights, log)

    def model(self) -> SASRec:
        """The trained model, in eval mode."""
        model = SASRec(len(self.item_ids), self.config)
        model.load_state_dict(self.weights)
        return model.eval()

    def with_items(self, item_ids: Sequence[str], rows: np.ndarray) -> SASRecCheckpoint:
        """This SASRec over the catalog plus new items (cold start): ``rows`` [n, d] are their item embeddings
        (input and output, tied), e.g. borrowed from the items that share their Semantic-ID prefix. Nothing
        trained changes; the known items keep their indices."""
        item_ids = list(item_ids)
        clash = set(item_ids) & set(self.item_ids)
        if clash or len(set(item_ids)) != len(item_ids):
            raise ValueError(f"new items must be unique and unknown to SASRec; known or repeated: {sorted(clash)[:5]}")
        table = self.weights["item_emb.weight"]
        if np.shape(rows) != (len(item_ids), table.shape[1]):
            raise ValueError(f"rows must be [{len(item_ids)}, {table.shape[1]}], got {np.shape(rows)}")
        weights = dict(self.weights)
        weights["item_emb.weight"] = torch.cat([table, torch.from_numpy(np.asarray(rows, np.float32)).to(table.dtype)])
        return SASRecCheckpoint(self.config, [*self.item_ids, *item_ids], weights, self.log)

    def save(self, path: str | Path) -> Path:
        meta = {
            "config": asdict(self.config),
            "item_ids": self.item_ids,
            "log": self.log.as_dict() if self.log is not None else None,
        }
        return save_checkpoint(path, self.KIND, self.weights, meta)

    @classmethod
    def load(cls, path: str | Path) -> SASRecCheckpoint:
        weights, meta = load_checkpoint(path, cls.KIND)
        log = TrainingLog.from_dict(meta["log"]) if meta["log"] is not None else None
        return cls(SASRecConfig(**meta["config"]), meta["item_ids"], weights, log)
