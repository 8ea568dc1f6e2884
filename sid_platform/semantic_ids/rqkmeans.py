"""Residual k-means: level l clusters what levels 1..l-1 left unexplained (faiss k-means per level).

No training beyond k-means, so it is the fast, strong reference that RQ-VAE is measured against, and
the same routine initializes every RQ-VAE codebook.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import faiss
import numpy as np
import torch

from sid_platform.semantic_ids.base import Categories, as_float32
from sid_platform.training import TrainingLog

KIND = "rqkmeans"
_CHUNK = 65536  # rows per distance block: bounds memory at CHUNK × K floats


@dataclass(frozen=True)
class RQKMeansConfig:
    levels: int = 4
    codebook_size: int = 256
    niter: int = 25
    normalize: bool = False  # L2-normalize inputs first, so the codes follow cosine geometry
    seed: int = 0


def nearest(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid (squared L2) per row; ties go to the lowest index."""
    sq = (centroids * centroids).sum(1)
    out = np.empty(len(x), dtype=np.int64)
    for start in range(0, len(x), _CHUNK):
        block = x[start : start + _CHUNK]
        out[start : start + len(block)] = np.argmin(sq[None, :] - 2.0 * (block @ centroids.T), axis=1)
    return out


def residual_assign(x: np.ndarray, codebooks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes [n, levels] and the residual [n, d] left after the last level."""
    residual = x.copy()
    codes = np.empty((len(x), len(codebooks)), dtype=np.int64)
    for level, codebook in enumerate(codebooks):
        codes[:, level] = nearest(residual, codebook)
        residual -= codebook[codes[:, level]]
    return codes, residual


def residual_kmeans(
    x: np.ndarray, levels: int, codebook_size: int, niter: int, seed: int
) -> tuple[np.ndarray, list[dict]]:
    """Codebooks [levels, K, d] from faiss k-means on the residuals each previous level leaves.

    Also returns, per level, the mean squared residual after it and the share of codes in use.
    """
    if len(x) < codebook_size:
        raise ValueError(f"{len(x)} items cannot fill a codebook of {codebook_size} codes; lower codebook_size")
    residual = np.ascontiguousarray(x, dtype=np.float32).copy()
    codebooks = np.empty((levels, codebook_size, x.shape[1]), dtype=np.float32)
    stats = []
    for level in range(levels):
        kmeans = faiss.Kmeans(x.shape[1], codebook_size, niter=niter, seed=seed + level, verbose=False)
        kmeans.train(residual)
        codebooks[level] = kmeans.centroids
        codes = nearest(residual, codebooks[level])
        residual -= codebooks[level][codes]
        stats.append(
            {
                "level": level + 1,
                "residual_mse": float((residual**2).mean()),
                "utilization": len(np.unique(codes)) / codebook_size,
            }
        )
    return codebooks, stats


class RQKMeansTokenizer:
    """Residual k-means behind the ``SemanticTokenizer`` interface; categories are not used."""

    kind = KIND

    def __init__(self, config: RQKMeansConfig | None = None) -> None:
        self.config = config or RQKMeansConfig()
        self.codebooks: np.ndarray | None = None

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def _prepare(self, embeddings: np.ndarray) -> np.ndarray:
        x = as_float32(embeddings)
        if self.config.normalize:
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        return x

    def fit(self, embeddings: np.ndarray, categories: Categories | None = None) -> TrainingLog:
        start = time.perf_counter()
        cfg = self.config
        x = self._prepare(embeddings)
        self.codebooks, stats = residual_kmeans(x, cfg.levels, cfg.codebook_size, cfg.niter, cfg.seed)
        return TrainingLog(epochs=stats, seconds=time.perf_counter() - start)  # one record per level

    def encode(self, embeddings: np.ndarray) -> np.ndarray:
        if self.codebooks is None:
            raise RuntimeError("RQKMeansTokenizer has no codebooks: call fit() or load a CodebooksCheckpoint first")
        return residual_assign(self._prepare(embeddings), self.codebooks)[0]

    def weights(self) -> dict[str, torch.Tensor]:
        if self.codebooks is None:
            raise RuntimeError("RQKMeansTokenizer has no codebooks: call fit() first")
        return {"codebooks": torch.from_numpy(self.codebooks.copy())}

    @classmethod
    def from_weights(cls, config: RQKMeansConfig, weights: dict[str, torch.Tensor]) -> RQKMeansTokenizer:
        tokenizer = cls(config)
        tokenizer.codebooks = np.asarray(weights["codebooks"].numpy(), dtype=np.float32)
        return tokenizer
