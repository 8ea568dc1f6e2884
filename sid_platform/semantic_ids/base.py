"""What every Semantic-ID tokenizer offers, so RQ-VAE, RQ-KMeans and later ones are interchangeable.

A tokenizer maps an item embedding to ``levels`` codes in ``[0, codebook_size)``, coarse to fine
(GRID's split between tokenization and generation). Its ``state()`` is plain arrays and tensors plus
the config, so a pickle or ``torch.save`` of it is the whole checkpoint, and its ``version`` hashes
config and weights, so an ID table can say which tokenizer produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np
import torch

Categories = Sequence[Sequence[str] | None]


@dataclass
class TrainLog:
    """What a fit did: one entry per epoch (RQ-VAE) or per level (RQ-KMeans), and the wall time."""

    kind: str
    entries: list[dict] = field(default_factory=list)
    seconds: float = 0.0


@runtime_checkable
class SemanticTokenizer(Protocol):
    levels: int
    codebook_size: int

    def fit(self, embeddings: np.ndarray, categories: Categories | None = None) -> TrainLog: ...

    def encode(self, embeddings: np.ndarray) -> np.ndarray:
        """[n, d] float32 → [n, levels] int64 codes."""
        ...

    def state(self) -> dict: ...


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
