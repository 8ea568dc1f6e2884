"""Build a tokenizer from a spec, or rebuild one from its ``state()``: the one place that knows every kind."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal

from sid_platform.semantic_ids.base import SemanticTokenizer
from sid_platform.semantic_ids.rqkmeans import RQKMeansConfig, RQKMeansTokenizer
from sid_platform.semantic_ids.rqvae import RQVAEConfig, RQVAETokenizer

_KINDS: dict[str, type[RQVAETokenizer] | type[RQKMeansTokenizer]] = {
    "rqvae": RQVAETokenizer,
    "rqkmeans": RQKMeansTokenizer,
}


def tokenizer_from_state(state: dict) -> SemanticTokenizer:
    """The tokenizer a ``state()`` came from; refuses a state whose weights no longer match its version."""
    kind = state.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown tokenizer kind {kind!r}; known: {sorted(_KINDS)}")
    tokenizer = _KINDS[kind].from_state(state)
    rebuilt = tokenizer.state()["version"]
    if rebuilt != state.get("version"):
        raise ValueError(
            f"{kind} state says version {state.get('version')!r} but its config and weights hash to {rebuilt!r}"
        )
    return tokenizer


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
