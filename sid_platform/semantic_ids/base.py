"""What every Semantic-ID tokenizer offers, so RQ-VAE, RQ-KMeans and later ones are interchangeable.

A tokenizer maps an item embedding to ``levels`` codes in ``[0, codebook_size)``, coarse to fine
(GRID's split between tokenization and generation). Its ``weights()`` are plain tensors, so its kind,
config and weights are the whole checkpoint (``CodebooksCheckpoint``), whose ``version`` hashes config
and weights, so an ID table can say which tokenizer produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from sid_platform.training import TrainingLog

Categories = Sequence[Sequence[str] | None]


@runtime_checkable
class SemanticTokenizer(Protocol):
    kind: str
    config: Any  # the tokenizer's frozen config dataclass
    levels: int
    codebook_size: int

    def fit(self, embeddings: np.ndarray, categories: Categories | None = None) -> TrainingLog:
        """Train from scratch; the log holds one record per epoch (RQ-VAE) or per level (RQ-KMeans)."""
        ...

    def encode(self, embeddings: np.ndarray) -> np.ndarray:
        """[n, d] float32 → [n, levels] int64 codes."""
        ...

    def weights(self) -> dict[str, torch.Tensor]:
        """Everything learned, as tensors: with the config, what a checkpoint stores and the version hashes."""
        ...


def state_version(kind: str, config: Mapping, weights: Mapping[str, np.ndarray | torch.Tensor]) -> str:
    """16 hex digits of SHA-256 over kind, config and every weight's dtype, shape and bytes, in name order."""
    digest = hashlib.sha256(json.dumps({"kind": kind, "config": config}, sort_keys=True).encode())
    for name in sorted(weights):
        value = weights[name]
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        array = np.ascontiguousarray(array)
        digest.update(f"{name}:{array.dtype.str}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def as_float32(embeddings: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(embeddings, dtype=np.float32)
    if array.ndim != 2:
        raise ValueError(f"embeddings must be [n_items, d], got shape {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("embeddings contain NaN or infinite values")
    return array
