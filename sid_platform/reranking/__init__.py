"""Bounded DPO reranking: a small correction δ on top of the frozen base score, score = base + α·tanh(δ)."""

from sid_platform.reranking.dpo import (
    PreferencePairs,
    Reranker,
    RerankerCheckpoint,
    RerankerConfig,
    bounded_score,
    dpo_loss,
    preference_pairs,
    rerank,
    train_reranker,
)

__all__ = [
    "PreferencePairs",
    "Reranker",
    "RerankerCheckpoint",
    "RerankerConfig",
    "bounded_score",
    "dpo_loss",
    "preference_pairs",
    "rerank",
    "train_reranker",
]
