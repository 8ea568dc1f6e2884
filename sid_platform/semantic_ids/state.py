"""Rebuild any tokenizer from its ``state()``: the one place that knows every kind."""

from __future__ import annotations

from sid_platform.semantic_ids.base import SemanticTokenizer
from sid_platform.semantic_ids.rqkmeans import RQKMeansTokenizer
from sid_platform.semantic_ids.rqvae import RQVAETokenizer

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
