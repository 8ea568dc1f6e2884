"""Free text → items in the same code space as recommendation: encode the text with the encoder that embedded
the items, quantize it with the champion's codebooks, look up the items under its Semantic-ID prefix, and rank
them by cosine to the item vectors (optionally blended with the profile of a history).

Why through the codes: the query lands in the prefix tree the catalog was tokenized into, so search touches
the items under one prefix rather than the whole catalog, and it is explained the way recommendations are
(the query's codes and how deep each result shares them). Available when the champion's item vectors are all
text (or image-text) encoders; collaborative vectors have no text side, so such a champion answers why not.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from sid_platform.embed.encoders import Encoder, build_encoder
from sid_platform.embed.fusion import fuse, normalize_rows
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.semantic_ids.base import SemanticTokenizer
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint

TEXT_ENCODERS = ("minilm", "t5", "clip")
_ENCODERS: dict[tuple[str, str | None], Encoder] = {}  # one instance per model folder, kept across reloads
_ENCODERS_LOCK = threading.Lock()
# One query encoded at a time: the encoders are shared by the old and new champion during a swap, and a fast
# tokenizer refuses concurrent use ("Already borrowed"); a query is one short text, so nothing waits long.
_ENCODE_LOCK = threading.Lock()


class SearchUnavailable(Exception):
    """This champion cannot search by text; the message says why."""


def _encoder(name: str, path: str | None) -> Encoder:
    with _ENCODERS_LOCK:
        if (name, path) not in _ENCODERS:
            _ENCODERS[(name, path)] = build_encoder(name, path)
        return _ENCODERS[(name, path)]


@dataclass
class TextSearch:
    """The item vectors (unit rows, catalog order), the query encoders and the tokenizer of one champion."""

    item_ids: list[str]
    vectors: np.ndarray
    encoders: list[Encoder]
    weights: list[float] | None
    tokenizer: SemanticTokenizer
    row_of: dict[str, int]

    @classmethod
    def of(cls, components: Mapping[str, Any], embedding_config: Mapping[str, Any]) -> TextSearch:
        """From the bundle's ``item_embeddings`` and ``codebooks`` and the embedding config it was made with."""
        embeddings, codebooks = components.get("item_embeddings"), components.get("codebooks")
        if not isinstance(embeddings, ItemEmbeddings) or not isinstance(codebooks, CodebooksCheckpoint):
            raise SearchUnavailable("this champion's bundle has no item vectors (registered before search existed)")
        if embeddings.base_version != codebooks.embeddings_version:  # new items extend, same space
            raise SearchUnavailable("the bundle's item vectors are not the ones its codebooks were fit on")
        other = [part for part in embeddings.parts if part not in TEXT_ENCODERS]
        if other:
            raise SearchUnavailable(f"this champion's item vectors include {', '.join(other)}, which text cannot reach")
        paths = {"t5": embedding_config.get("t5_path"), "clip": embedding_config.get("clip_path")}
        encoders = [_encoder(part, paths.get(part)) for part in embeddings.parts]
        weights = [float(w) for w in embedding_config.get("weights") or []] or None
        rows = {item: row for row, item in enumerate(embeddings.item_ids)}
        vectors = normalize_rows(embeddings.vectors)
        return cls(list(embeddings.item_ids), vectors, encoders, weights, codebooks.tokenizer(), rows)

    def embed(self, text: str) -> np.ndarray:
        """The query's vector in the items' space: [1, d], as ``embed_items`` builds an item's."""
        with _ENCODE_LOCK:
            parts = [encoder.encode([text], batch_size=1) for encoder in self.encoders]
        return parts[0] if len(parts) == 1 and self.weights is None else fuse(parts, self.weights)

    def codes(self, vector: np.ndarray) -> list[int]:
        """The query's Semantic-ID codes (c1 … cL) under the champion's codebooks."""
        return [int(code) for code in self.tokenizer.encode(np.asarray(vector, dtype=np.float32))[0]]

    def scores(self, vector: np.ndarray, items: list[str]) -> np.ndarray:
        """Cosine of the (unit) query to each item's vector."""
        query = normalize_rows(np.asarray(vector, dtype=np.float32))[0]
        return self.vectors[[self.row_of[item] for item in items]] @ query

    def profile(self, history: list[str]) -> np.ndarray | None:
        """The mean direction of the history's item vectors (unit), or ``None`` without a known item."""
        rows = [self.row_of[item] for item in history if item in self.row_of]
        if not rows:
            return None
        return normalize_rows(self.vectors[rows].mean(axis=0, keepdims=True))
