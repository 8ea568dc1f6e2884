"""Training the router: every position of every training sequence, early stopping on validation Recall@10.

The hot path is tensor ops only: sequences are padded once into a cached tensor, batches are cut by
length (short Amazon histories waste little on padding), and the item tokens are computed once per batch
and shared by the inputs, the ANN softmax and the FAISS keys. A resume file written after every epoch
lets a crashed run continue where it stopped. Under ``torchrun`` the same function trains one data-parallel
replica (sid_platform/distributed.py): each replica takes its shard of every global batch, padded to the global
batch's width, and the loss module below is what DDP wraps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from sid_platform.data.split import EvalCases
from sid_platform.distributed import replicas
from sid_platform.evaluation.metrics import recall_at_k, top_k_from_scores
from sid_platform.progress import LogLine
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.beam_search import constrained_beam_search
from sid_platform.retrieval.candidates import top_by_score
from sid_platform.retrieval.generative import fused_scores
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.router import RouterConfig, SemanticRouter
from sid_platform.retrieval.trie import SidTrie
from sid_platform.sequences import exclude_seen, length_bucketed_batches, pad_left, ranking_depth
from sid_platform.training import ResumeFile, TrainingLog, train_with_early_stopping

SELECTION = "mean of the generative and cosine validation Recall@10"
FUSION_WEIGHTS = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)  # the grid the fusion weight is chosen from


def validation_recall(
    model: SemanticRouter, trie: SidTrie, cases: EvalCases, exclude_history: bool
) -> tuple[float, float]:
    """(generative R@10, cosine R@10) on the given cases."""
    states = model.user_states(cases.histories)
    beams = constrained_beam_search(model, states, trie, max(model.cfg.beam_size, 10))
    generative = beams.items
    if exclude_history:
        generative = exclude_seen(generative, cases.histories, 10)
    with torch.no_grad():
        scores = (model.user_queries(states) @ model.item_keys().T).numpy()
    cosine = top_k_from_scores(scores, 10, cases.histories if exclude_history else None)
    return recall_at_k(generative, cases.targets, 10), recall_at_k(cosine, cases.targets, 10)


@torch.no_grad()
def choose_fusion_weight(
    model: SemanticRouter,
    trie: SidTrie,
    cases: EvalCases,
    exclude_history: bool,
    ann_top_n: int = AnnIndexConfig.top_n,
) -> dict[str, float]:
    """Set ``model.fusion_weight`` to the grid value with the best validation Recall@10 of the fused ranking.

    The candidates come from ``retrieve`` itself, the serving path, over an exact (flat) index of the item
    vectors with ``ann_top_n`` neighbours; only the weight varies. Ties keep the smaller weight. Returns
    Recall@10 per weight, for the log.
    """
    with torch.no_grad():
        index = AnnIndex.build(model.item_keys().numpy(), AnnIndexConfig(kind="flat", top_n=ann_top_n))
    found = retrieve(model, trie, index, cases.histories, 10, ann_top_n)
    candidates, cosine, log_probs = found.candidates, found.base_scores, found.log_probs
    depth = ranking_depth(10, cases.histories, exclude_history)
    recall = {}
    for weight in FUSION_WEIGHTS:
        fused = [fused_scores(c, lp, weight, model.score_scale) for c, lp in zip(cosine, log_probs, strict=True)]
        ranked = top_by_score(candidates, fused, depth)
        ranked = exclude_seen(ranked, cases.histories, 10) if exclude_history else ranked[:, :10]
        recall[f"{weight:g}"] = recall_at_k(ranked, cases.targets, 10)
    best = max(FUSION_WEIGHTS, key=lambda w: (recall[f"{w:g}"], -w))
    model.fusion_weight.fill_(best)
    return recall


def _fingerprint(cfg: RouterConfig, trie_sids: torch.Tensor, train: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256(repr(sorted(asdict(cfg).items())).encode())
    digest.update(trie_sids.numpy().tobytes())
    for seq in train:
        digest.update(np.asarray(seq, dtype=np.int64).tobytes())
    return digest.hexdigest()[:16]


def _batch_forward(
    model: SemanticRouter, x: torch.Tensor, y: torch.Tensor, num_negatives: int, rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """States at every real target, target items, their rows among the softmax candidates, candidate keys.

    Only the items the batch touches get a token computed: its inputs and targets plus ``num_negatives``
    uniform items (all items when 0). The batch's own items (each user's history) are thus always among
    the negatives, which an unmasked ranking needs.
    """
    real = y >= 0
    tgt = y[real]
    parts = [x[x >= 0], tgt]
    if num_negatives <= 0 or num_negatives >= model.n_items:
        parts.append(torch.arange(model.n_items))
    else:
        parts.append(torch.from_numpy(rng.choice(model.n_items, size=num_negatives, replace=False)))
    items = torch.unique(torch.cat(parts))
    tokens = model.item_tokens(items)
    local = torch.where(x >= 0, torch.searchsorted(items, x.clamp(min=0)), torch.full_like(x, -1))
    h = model.encode(local, tokens)[real]
    return h, tgt, torch.searchsorted(items, tgt), model.item_keys(tokens)


class RouterLoss(nn.Module):
    """One batch's losses (total, generative, ANN) as a forward: DDP syncs gradients only through a forward."""

    def __init__(self, model: SemanticRouter, cfg: RouterConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, x: torch.Tensor, y: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        h_all, gen_targets, ann_targets, keys = _batch_forward(self.model, x, y, self.cfg.num_negatives, rng)
        gen = self.model.generative_loss(h_all, gen_targets)
        ann = self.model.ann_loss(h_all, ann_targets, keys)
        return torch.stack([self.cfg.generative_weight * gen + self.cfg.ann_weight * ann, gen, ann])


def train_router(
    train_sequences: Sequence[np.ndarray],
    valid: EvalCases,
    trie: SidTrie,
    item_sids: np.ndarray,
    cfg: RouterConfig,
    content: np.ndarray | None = None,
    exclude_history: bool = False,
    resume: ResumeFile | None = None,
    on_epoch: Callable[[dict], None] | None = None,
    on_progress: LogLine | None = None,
) -> tuple[SemanticRouter, TrainingLog]:
    """Train on all positions; keep the epoch best on ``SELECTION``; resume from ``resume`` if it matches.

    ``on_progress`` receives the epoch progress lines (epochs done, time left).
    """
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    sids_t = torch.from_numpy(np.array(item_sids, dtype=np.int64))  # a copy: the stored array may be read-only
    content_t = torch.from_numpy(np.asarray(content, dtype=np.float32)) if content is not None else None
    model = SemanticRouter(cfg, sids_t, trie.vocab_sizes, content_t)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    usable = [s for s in train_sequences if len(s) >= 2]
    tokens = torch.from_numpy(pad_left(usable, cfg.max_len + 1, pad=-1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    lengths = (targets >= 0).sum(1).numpy()
    group = replicas()
    step = group.wrap(RouterLoss(model, cfg), unused_parameters=True)  # the idle query/key or pad heads

    def run_epoch(epoch: int) -> dict[str, float]:
        sums = np.zeros(3)
        batches = 0
        for idx in length_bucketed_batches(lengths, cfg.batch_size, rng):
            width = int(lengths[idx].max())  # the global batch's: padding is attended to, so every shard pads alike
            rows, weight = group.shard(idx, lengths[idx])  # every row of the batch in one process
            losses = weight * step(inputs[rows, -width:], targets[rows, -width:], rng)
            opt.zero_grad(set_to_none=True)
            losses[0].backward()
            opt.step()
            sums += losses.detach().numpy()
            batches += 1
        return {
            "loss": sums[0] / max(batches, 1),
            "generative_loss": sums[1] / max(batches, 1),
            "ann_loss": sums[2] / max(batches, 1),
        }

    def validate() -> dict[str, float]:
        r_gen, r_cos = validation_recall(model, trie, valid, exclude_history)
        return {"valid_recall@10_generative": r_gen, "valid_recall@10_cosine": r_cos}

    log = train_with_early_stopping(
        model,
        opt,
        run_epoch,
        validate,
        lambda figures: (figures["valid_recall@10_generative"] + figures["valid_recall@10_cosine"]) / 2,
        selection_name=SELECTION,
        max_epochs=cfg.epochs,
        patience=cfg.patience,
        max_minutes=cfg.max_minutes,
        rng=rng,
        resume=resume,
        # Same data, config and codebooks → same fingerprint: a file left by another run is ignored.
        fingerprint=_fingerprint(cfg, sids_t, train_sequences),
        on_epoch=on_epoch,
        on_progress=on_progress,
        name="router",
    )
    recall = group.from_main(lambda: choose_fusion_weight(model, trie, valid, exclude_history))
    group.broadcast_state(model)  # rank 0's chosen fusion weight
    log.chosen = {"fusion_weight": float(model.fusion_weight), "valid_recall@10_by_fusion_weight": recall}
    return model, log
