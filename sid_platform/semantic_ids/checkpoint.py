"""The ``codebooks`` checkpoint: a trained tokenizer of any kind, its version, and the embeddings it was fit on.

The one place that knows every tokenizer kind. ``version`` hashes kind, config and weights (the ID table's
``tokenizer_version``), so a checkpoint whose weights no longer match its version is refused on rebuild.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import torch

from sid_platform.checkpoint import load_checkpoint, save_checkpoint
from sid_platform.semantic_ids.base import SemanticTokenizer, state_version
from sid_platform.semantic_ids.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from sid_platform.semantic_ids.rqvae import RQVAEConfig, RQVAETokenizer
from sid_platform.training import TrainingLog

_TOKENIZERS: dict[
    str, tuple[type[RQVAETokenizer] | type[RQKMeansTokenizer], type[RQVAEConfig] | type[RQKMeansConfig]]
] = {
    "rqvae": (RQVAETokenizer, RQVAEConfig),
    "rqkmeans": (RQKMeansTokenizer, RQKMeansConfig),
}


@dataclass
class CodebooksCheckpoint:
    """What the ``codebooks`` asset stores; ``tokenizer()`` rebuilds the tokenizer that encodes items."""

    KIND: ClassVar[str] = "codebooks"

    tokenizer_kind: str  # rqvae | rqkmeans
    config: RQVAEConfig | RQKMeansConfig
    weights: dict[str, torch.Tensor]
    version: str  # hash of kind, config and weights: the USID table's tokenizer_version
    embeddings_version: str  # the item embeddings the tokenizer was fit on
    log: TrainingLog | None = None

    @classmethod
    def of(
        cls, tokenizer: SemanticTokenizer, embeddings_version: str, log: TrainingLog | None = None
    ) -> CodebooksCheckpoint:
        weights = tokenizer.weights()
        config = tokenizer.config
        version = state_version(tokenizer.kind, asdict(config), weights)
        return cls(tokenizer.kind, config, weights, version, embeddings_version, log)

    @property
    def levels(self) -> int:
        return self.config.levels

    @property
    def codebook_size(self) -> int:
        return self.config.codebook_size

    def tokenizer(self) -> SemanticTokenizer:
        """The tokenizer these weights came from; refuses weights that no longer hash to ``version``."""
        if self.tokenizer_kind not in _TOKENIZERS:
            raise ValueError(f"unknown tokenizer kind {self.tokenizer_kind!r}; known: {sorted(_TOKENIZERS)}")
        rebuilt = state_version(self.tokenizer_kind, asdict(self.config), self.weights)
        if rebuilt != self.version:
            raise ValueError(
                f"{self.tokenizer_kind} checkpoint says version {self.version!r} but its config and weights "
                f"hash to {rebuilt!r}"
            )
        tokenizer_class, _ = _TOKENIZERS[self.tokenizer_kind]
        return tokenizer_class.from_weights(self.config, self.weights)

    def save(self, path: str | Path) -> Path:
        meta = {
            "tokenizer_kind": self.tokenizer_kind,
            "config": asdict(self.config),
            "version": self.version,
            "embeddings_version": self.embeddings_version,
            "log": self.log.as_dict() if self.log is not None else None,
        }
        return save_checkpoint(path, self.KIND, self.weights, meta)

    @classmethod
    def load(cls, path: str | Path) -> CodebooksCheckpoint:
        weights, meta = load_checkpoint(path, cls.KIND)
        kind = meta["tokenizer_kind"]
        if kind not in _TOKENIZERS:
            raise ValueError(f"unknown tokenizer kind {kind!r}; known: {sorted(_TOKENIZERS)}")
        # JSON has no tuples: list-valued config fields (RQ-VAE's hidden_dims) are tuples in the frozen config.
        fields = {key: tuple(value) if isinstance(value, list) else value for key, value in meta["config"].items()}
        config = _TOKENIZERS[kind][1](**fields)
        log = TrainingLog.from_dict(meta["log"]) if meta["log"] is not None else None
        return cls(kind, config, weights, meta["version"], meta["embeddings_version"], log)
