"""Which tokenizer to fit, and its knobs: the one spec the ``codebooks`` asset's config is generated from."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from sid_platform.semantic_ids.base import SemanticTokenizer
from sid_platform.semantic_ids.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from sid_platform.semantic_ids.rqvae import RQVAEConfig, RQVAETokenizer

MAX_AUTO_CODEBOOK_SIZE = 256  # TIGER's size, reached from 5,120 items on
MIN_ITEMS_PER_CODE = 20  # what the automatic size leaves every code of a level, so the levels stay in use


def auto_codebook_size(n_items: int) -> int:
    """The codebook size for a catalog of ``n_items`` when none is set: the largest power of two that leaves
    at least 20 items per code, between 2 and 256.

    Every catalog of 5,120 items or more gets TIGER's 256 (Beauty's 12,101 and Sports' 18,357 items
    included), while a small one gets a size whose codes all stay in use (320 items: 16 codes), so the
    blocking ``codebook_utilization`` check (80 % of the codes of every level) can pass.
    """
    if n_items < 1:
        raise ValueError(f"a codebook needs items to size it, got {n_items}")
    fit = max(n_items // MIN_ITEMS_PER_CODE, 2)
    return min(1 << (fit.bit_length() - 1), MAX_AUTO_CODEBOOK_SIZE)


@dataclass(frozen=True)
class TokenizerSpec(RQVAEConfig):
    """Which tokenizer, and its knobs: RQ-VAE's (TIGER's sizes, 4 levels of 256 codes) plus RQ-KMeans's own.

    RQ-KMeans reads the knobs it shares with RQ-VAE (levels, codebook_size, kmeans_niter, seed), so one flat
    config serves both and switching ``tokenizer`` changes nothing else. ``codebook_size`` left unset follows
    the catalog (``auto_codebook_size``): 256 on Beauty and Sports, fewer codes on a small catalog.
    """

    # codes per level; unset (null) = auto: the largest power of two with >= 20 items per code, at most 256
    codebook_size: int | None = None
    tokenizer: Literal["rqvae", "rqkmeans"] = "rqvae"  # rqvae | rqkmeans
    normalize: bool = False  # rqkmeans: L2-normalize inputs first, so the codes follow cosine geometry

    def resolved(self, n_items: int) -> TokenizerSpec:
        """This spec with the codebook size fixed for a catalog of ``n_items`` (an explicit size is kept)."""
        if self.codebook_size is not None:
            return self
        return dataclasses.replace(self, codebook_size=auto_codebook_size(n_items))

    def build(self) -> SemanticTokenizer:
        """A fresh, untrained tokenizer of the chosen kind; an automatic size must be ``resolved`` first."""
        if self.codebook_size is None:
            raise ValueError("codebook_size is automatic: call resolved(n_items) before build()")
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
