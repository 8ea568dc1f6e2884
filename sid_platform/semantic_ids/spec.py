"""Which tokenizer to fit, and its knobs: the one spec the ``codebooks`` asset's config is generated from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from sid_platform.semantic_ids.base import SemanticTokenizer
from sid_platform.semantic_ids.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from sid_platform.semantic_ids.rqvae import RQVAEConfig, RQVAETokenizer


@dataclass(frozen=True)
class TokenizerSpec(RQVAEConfig):
    """Which tokenizer, and its knobs: RQ-VAE's (TIGER's sizes, 4 levels of 256 codes) plus RQ-KMeans's own.

    RQ-KMeans reads the knobs it shares with RQ-VAE (levels, codebook_size, kmeans_niter, seed), so one flat
    config serves both and switching ``tokenizer`` changes nothing else.
    """

    tokenizer: Literal["rqvae", "rqkmeans"] = "rqvae"  # rqvae | rqkmeans
    normalize: bool = False  # rqkmeans: L2-normalize inputs first, so the codes follow cosine geometry

    def build(self) -> SemanticTokenizer:
        """A fresh, untrained tokenizer of the chosen kind."""
        if self.tokenizer == "rqkmeans":
            return RQKMeansTokenizer(
                RQKMeansConfig(
                    levels=self.levels,
                    codebook_size=self.codebook_size,
                    niter=self.kmeans_niter,
                    normalize=self.normalize,
                    seed=self.seed,
                )
            )
        if self.tokenizer != "rqvae":
            raise ValueError(f"unknown tokenizer {self.tokenizer!r}; choose rqvae or rqkmeans")
        return RQVAETokenizer(RQVAEConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(RQVAEConfig)}))
