"""RQ-VAE (TIGER, Rajput et al. 2023): MLP encoder → residual quantization → MLP decoder.

Three things keep the codebooks alive and meaningful, each a config switch:

* ``init="kmeans"`` fits every level's codebook by k-means on the untrained encoder's residuals (the
  RQ-KMeans routine), instead of a small random init that leaves most codes unreachable;
* ``reseed_dead`` moves every code no item uses, after each epoch, onto the residual of a random item
  at that level, so utilization cannot decay;
* ``taxonomy_weight`` > 0 adds a graded contrastive loss over the category tree on the quantized
  prefix of every level (coarse levels weighted more), with batches built so positives exist.

Inputs are standardized first (catalog mean removed, divided by one global standard deviation, both
stored with the weights): unit-norm text embeddings have coordinates near 0.05, and an untrained
encoder maps them to a latent cloud so tight that the first Adam steps move it off the k-means codes,
collapsing utilization in the first epoch. A single scale keeps the embedding geometry.

Loss = reconstruction + Σ_levels (codebook + β·commitment) + λ·contrastive. Reconstruction and
quantization terms are squared errors summed over dimensions and averaged over items. Gradients pass
the quantizer straight through. The logged ``recon_mse`` is per coordinate in standardized units, so
1.0 means no better than predicting the catalog mean.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sid_platform.semantic_ids.base import Categories, as_float32
from sid_platform.semantic_ids.rqkmeans import residual_kmeans
from sid_platform.semantic_ids.taxonomy import Taxonomy, hierarchical_batches, pair_weights
from sid_platform.training import TrainingLog

KIND = "rqvae"
_CHUNK = 65536  # rows per no-grad pass over the catalog


@dataclass(frozen=True)
class RQVAEConfig:
    """TIGER's sizes (256 codes per level, latent 32, MLP 512-256-128, batch 1024, β 0.25), 4 levels.

    100 epochs on 12k × 384 take about 2.5 minutes on one CPU thread (1.3-1.5 s per epoch, catalog
    pass and re-seeding included; encoding the 12k items takes 0.3 s).
    """

    levels: int = 4
    codebook_size: int = 256
    latent_dim: int = 32
    hidden_dims: tuple[int, ...] = (512, 256, 128)
    epochs: int = 100
    batch_size: int = 1024
    lr: float = 1e-3
    beta: float = 0.25  # commitment weight
    init: Literal["kmeans", "random"] = "kmeans"  # kmeans | random initialization of every level's codebook
    kmeans_niter: int = 25  # k-means iterations of the k-means init (and of RQ-KMeans)
    reseed_dead: bool = True
    taxonomy_weight: float = 0.0  # λ of the contrastive term; 0 = off, 0.01 is the intended setting
    taxonomy_temperature: float = 0.1
    taxonomy_group_size: int = 8  # items of one leaf placed together in a batch
    seed: int = 0


def _mlp(dims: list[int]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def _nearest(residual: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest code (squared L2; the residual's own norm does not change the argmin)."""
    return ((codebook**2).sum(1) - 2 * residual @ codebook.T).argmin(1)


@dataclass
class Quantized:
    codes: torch.Tensor  # [B, levels]
    quantized: torch.Tensor  # [B, levels, latent] the chosen code vector of each level
    residuals: torch.Tensor  # [B, levels, latent] what each level was asked to quantize


class RQVAE(nn.Module):
    def __init__(self, input_dim: int, cfg: RQVAEConfig) -> None:
        super().__init__()
        self.encoder = _mlp([input_dim, *cfg.hidden_dims, cfg.latent_dim])
        self.decoder = _mlp([cfg.latent_dim, *reversed(cfg.hidden_dims), input_dim])
        bound = 1.0 / cfg.codebook_size  # the VQ-VAE embedding init: codes crowd the origin
        self.codebooks = nn.Parameter(
            torch.empty(cfg.levels, cfg.codebook_size, cfg.latent_dim).uniform_(-bound, bound)
        )
        self.register_buffer("input_mean", torch.zeros(input_dim))
        self.register_buffer("input_scale", torch.ones(()))

    def standardize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.input_mean) / self.input_scale

    @torch.no_grad()
    def latent(self, standardized: torch.Tensor) -> torch.Tensor:
        """Encoder output for many rows, in blocks, without gradient."""
        self.eval()
        return torch.cat([self.encoder(standardized[s : s + _CHUNK]) for s in range(0, len(standardized), _CHUNK)])

    def quantize(self, z: torch.Tensor) -> Quantized:
        """Nearest code per level on the running residual; the argmin passes no gradient."""
        residual = z
        codes, quantized, residuals = [], [], []
        for codebook in self.codebooks:
            code = _nearest(residual.detach(), codebook.detach())
            q = codebook[code]
            codes.append(code)
            quantized.append(q)
            residuals.append(residual)
            residual = residual - q.detach()
        return Quantized(torch.stack(codes, 1), torch.stack(quantized, 1), torch.stack(residuals, 1))


def _level_weights(levels: int) -> torch.Tensor:
    """levels, levels-1, …, 1, normalized: the coarse codes should carry the taxonomy most."""
    w = torch.arange(levels, 0, -1, dtype=torch.float32)
    return w / w.sum()


def taxonomy_contrastive(
    prefixes: torch.Tensor, positive: torch.Tensor, negative: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Graded supervised InfoNCE on each level's prefix [B, levels, latent], weighted coarse-first.

    For an anchor, the softmax runs over its positives and negatives only (neutral pairs are left out),
    and each positive's log-probability counts with its weight (leaf 1.0, sibling 0.5). Anchors without
    both a positive and a negative in the batch do not contribute.
    """
    anchors = (positive > 0).any(1) & negative.any(1)
    if not anchors.any():
        return prefixes.new_zeros(())
    candidates = ((positive > 0) | negative)[anchors]
    weights = positive[anchors]
    level_weights = _level_weights(prefixes.shape[1])
    total = prefixes.new_zeros(())
    for level in range(prefixes.shape[1]):
        z = F.normalize(prefixes[:, level], dim=1)
        logits = (z[anchors] @ z.T / temperature).masked_fill(~candidates, float("-inf"))
        log_prob = (logits - logits.logsumexp(1, keepdim=True)).masked_fill(~candidates, 0.0)
        per_anchor = -(weights * log_prob).sum(1) / weights.sum(1)
        total = total + level_weights[level] * per_anchor.mean()
    return total


class RQVAETokenizer:
    """RQ-VAE behind the ``SemanticTokenizer`` interface."""

    kind = KIND

    def __init__(self, config: RQVAEConfig | None = None) -> None:
        self.config = config or RQVAEConfig()
        self.model: RQVAE | None = None

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def fit(
        self,
        embeddings: np.ndarray,
        categories: Categories | None = None,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> TrainingLog:
        """Train from scratch; ``categories`` is read only when ``taxonomy_weight`` > 0."""
        cfg = self.config
        start = time.perf_counter()
        raw = torch.from_numpy(as_float32(embeddings))
        if cfg.init not in ("kmeans", "random"):
            raise ValueError(f"init must be 'kmeans' or 'random', got {cfg.init!r}")
        taxonomy = None
        if cfg.taxonomy_weight > 0:
            if categories is None:
                raise ValueError("taxonomy_weight > 0 needs the categories of the items")
            if len(categories) != len(raw):
                raise ValueError(f"{len(categories)} category paths for {len(raw)} embeddings")
            taxonomy = Taxonomy.from_categories(categories)
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        model = RQVAE(raw.shape[1], cfg)
        model.input_mean.copy_(raw.mean(0))
        model.input_scale.fill_(max(float((raw - model.input_mean).std()), 1e-12))
        x = model.standardize(raw)
        if cfg.init == "kmeans":
            codebooks, _ = residual_kmeans(
                model.latent(x).numpy(), cfg.levels, cfg.codebook_size, cfg.kmeans_niter, cfg.seed
            )
            with torch.no_grad():
                model.codebooks.copy_(torch.from_numpy(codebooks))
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        log = TrainingLog()
        for epoch in range(cfg.epochs):
            model.train()
            sums = {"loss": 0.0, "recon": 0.0, "rq": 0.0, "contrastive": 0.0}
            if taxonomy is None:
                order = rng.permutation(len(x))
                batches = [order[b : b + cfg.batch_size] for b in range(0, len(x), cfg.batch_size)]
            else:
                batches = hierarchical_batches(taxonomy, cfg.batch_size, cfg.taxonomy_group_size, rng)
            for idx in batches:
                parts = self._batch_loss(model, x[idx], taxonomy, idx)
                opt.zero_grad(set_to_none=True)
                parts["loss"].backward()
                opt.step()
                for key, value in parts.items():
                    sums[key] += value.item() * len(idx)
            entry = {"epoch": epoch, **{key: value / len(x) for key, value in sums.items()}}
            entry.update(self._refresh_codebooks(model, opt, x, rng))
            entry["seconds"] = time.perf_counter() - start
            log.epochs.append(entry)
            if on_epoch:
                on_epoch(entry)
        model.eval()
        self.model = model
        log.seconds = time.perf_counter() - start
        return log

    def _batch_loss(
        self, model: RQVAE, x: torch.Tensor, taxonomy: Taxonomy | None, idx: np.ndarray
    ) -> dict[str, torch.Tensor]:
        cfg = self.config
        z = model.encoder(x)
        q = model.quantize(z)
        z_hat = q.quantized.sum(1)
        x_hat = model.decoder(z + (z_hat - z).detach())  # straight-through estimator
        recon = ((x_hat - x) ** 2).sum(1).mean()
        codebook = ((q.quantized - q.residuals.detach()) ** 2).sum(2).mean(0).sum()
        commitment = ((q.residuals - q.quantized.detach()) ** 2).sum(2).mean(0).sum()
        rq = codebook + cfg.beta * commitment
        parts = {"recon": recon, "rq": rq}
        loss = recon + rq
        if taxonomy is not None:
            positive, negative = pair_weights(taxonomy.leaf[idx], taxonomy.parent[idx], taxonomy.top[idx])
            # Each level's prefix sum of codes, straight-through to the encoder and direct to the codebooks.
            prefixes = q.quantized.cumsum(1) + (z - z.detach()).unsqueeze(1)
            contrastive = taxonomy_contrastive(
                prefixes, torch.from_numpy(positive), torch.from_numpy(negative), cfg.taxonomy_temperature
            )
            parts["contrastive"] = contrastive
            loss = loss + cfg.taxonomy_weight * contrastive
        parts["loss"] = loss
        return parts

    @torch.no_grad()
    def _refresh_codebooks(
        self, model: RQVAE, opt: torch.optim.Optimizer, x: torch.Tensor, rng: np.random.Generator
    ) -> dict:
        """Full-catalog pass: reconstruction error, utilization per level, and dead-code re-seeding.

        Utilization is measured before re-seeding (what the epoch's training left). Level by level, a
        dead code takes the residual of a random item at that level and loses its Adam moments, and the
        level is reassigned before the next level's residuals are formed.
        """
        cfg = self.config
        residual = model.latent(x)
        x_hat = torch.cat(
            [model.decoder(model.quantize(residual[s : s + _CHUNK]).quantized.sum(1)) for s in range(0, len(x), _CHUNK)]
        )
        recon_mse = ((x_hat - x) ** 2).mean().item()
        utilization, reseeded = [], []
        adam = opt.state.get(model.codebooks, {})
        for level in range(cfg.levels):
            codebook = model.codebooks[level]
            codes = _nearest(residual, codebook)
            used = torch.bincount(codes, minlength=cfg.codebook_size) > 0
            utilization.append(used.float().mean().item())
            dead = torch.nonzero(~used).flatten()
            if cfg.reseed_dead and len(dead):
                donors = rng.choice(len(x), size=len(dead), replace=len(dead) > len(x))
                codebook[dead] = residual[torch.from_numpy(donors)]
                for moment in ("exp_avg", "exp_avg_sq"):
                    if moment in adam:
                        adam[moment][level, dead] = 0.0
                codes = _nearest(residual, codebook)
            reseeded.append(len(dead) if cfg.reseed_dead else 0)
            residual = residual - codebook[codes]
        return {"recon_mse": recon_mse, "utilization": utilization, "reseeded": reseeded}

    def _trained(self) -> RQVAE:
        if self.model is None:
            raise RuntimeError("RQVAETokenizer has no model: call fit() or load a CodebooksCheckpoint first")
        return self.model

    @torch.no_grad()
    def encode(self, embeddings: np.ndarray) -> np.ndarray:
        model = self._trained()
        z = model.latent(model.standardize(torch.from_numpy(as_float32(embeddings))))
        return model.quantize(z).codes.numpy().astype(np.int64)

    @torch.no_grad()
    def reconstruct(self, embeddings: np.ndarray) -> np.ndarray:
        """Decoder output from the quantized latent, in the input's units: what the codes alone keep."""
        model = self._trained()
        z = model.latent(model.standardize(torch.from_numpy(as_float32(embeddings))))
        x_hat = model.decoder(model.quantize(z).quantized.sum(1))
        return (x_hat * model.input_scale + model.input_mean).numpy()

    def weights(self) -> dict[str, torch.Tensor]:
        return {name: tensor.detach().clone() for name, tensor in self._trained().state_dict().items()}

    @classmethod
    def from_weights(cls, config: RQVAEConfig, weights: dict[str, torch.Tensor]) -> RQVAETokenizer:
        tokenizer = cls(config)
        model = RQVAE(int(weights["input_mean"].shape[0]), config)  # the input width is the mean's
        model.load_state_dict(weights)
        model.eval()
        tokenizer.model = model
        return tokenizer
