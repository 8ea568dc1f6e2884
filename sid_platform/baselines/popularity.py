"""Most-popular baseline: every user gets the items most often seen in training."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PopularityModel:
    counts: np.ndarray  # [n_items] training interaction counts

    @classmethod
    def fit(cls, train_sequences: Sequence[np.ndarray], n_items: int) -> PopularityModel:
        flat = np.concatenate(train_sequences) if len(train_sequences) else np.zeros(0, dtype=np.int64)
        return cls(np.bincount(flat, minlength=n_items).astype(np.float64))

    def score(self, histories: Sequence[np.ndarray]) -> np.ndarray:
        return np.broadcast_to(self.counts, (len(histories), len(self.counts)))
