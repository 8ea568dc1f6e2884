"""From a catalog (and training interactions) to one vector per item, as configured.

Several encoders can be combined: each part is L2-normalized, weighted and concatenated (``fuse``).
``auto`` picks the text encoder when the catalog has text and the collaborative encoder when it
has none (Amazon Sports), so every catalog gets Semantic IDs.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from sid_platform.embed.cache import EmbeddingCache, EmbedStats, embed_with_cache
from sid_platform.embed.collaborative import collaborative_item_vectors
from sid_platform.embed.encoders import build_encoder
from sid_platform.embed.fusion import fuse
from sid_platform.embed.text import DEFAULT_TEMPLATE, item_texts
from sid_platform.progress import LogLine, Progress

ENCODERS = ("auto", "minilm", "t5", "clip", "collaborative")


@dataclass(frozen=True)
class EmbeddingSpec:
    # auto | minilm | t5 | clip | collaborative; several are L2-normalized, weighted and concatenated
    encoders: tuple[str, ...] = ("auto",)
    weights: tuple[float, ...] = ()  # one per encoder; empty: every part weighs 1
    t5_path: str | None = None  # local folder of a T5 model (save_pretrained layout)
    clip_path: str | None = None  # local folder of a CLIP model
    image_root: str | None = None  # CLIP: local images named by the basename of each item's image_url
    template: str = DEFAULT_TEMPLATE  # item text; [..] segments drop when a field is missing
    batch_size: int = 64
    collaborative_dim: int = 64


@dataclass
class ItemEmbeddings:
    """Vectors in catalog order, with what made them (so downstream artifacts can name their input)."""

    item_ids: list[str]
    vectors: np.ndarray
    parts: list[str]
    version: str
    stats: dict[str, EmbedStats] = field(default_factory=dict)

    def aligned(self, item_ids: Sequence[str]) -> np.ndarray:
        """The vectors in the given item order (e.g. the catalog's), failing on an item with no vector."""
        position = {item: row for row, item in enumerate(self.item_ids)}
        missing = [item for item in item_ids if item not in position]
        if missing:
            raise KeyError(
                f"{len(missing)} item(s) have no embedding, e.g. {missing[:5]}; rematerialize item_embeddings"
            )
        return self.vectors[[position[item] for item in item_ids]]

    @property
    def base_version(self) -> str:
        """The version of the vectors the codebooks were fit on: an extension (``extended``) keeps it as its head."""
        return self.version.split("+", 1)[0]

    def extended(self, item_ids: Sequence[str], vectors: np.ndarray) -> ItemEmbeddings:
        """These vectors plus new items' (cold start), appended; the version says what was added to which base."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(item_ids), self.vectors.shape[1]):
            raise ValueError(f"new vectors must be [{len(item_ids)}, {self.vectors.shape[1]}], got {vectors.shape}")
        digest = hashlib.sha256("|".join([self.version, *item_ids]).encode()).hexdigest()[:8]
        return ItemEmbeddings(
            [*self.item_ids, *item_ids],
            np.concatenate([self.vectors, vectors]),
            list(self.parts),
            f"{self.base_version}+{digest}",
            dict(self.stats),
        )


def resolve_encoders(spec: EmbeddingSpec, items: pl.DataFrame) -> list[str]:
    unknown = [e for e in spec.encoders if e not in ENCODERS]
    if unknown:
        raise ValueError(f"unknown encoder(s) {unknown}; choose from {', '.join(ENCODERS)}")
    has_text = items.select(pl.col("title").is_not_null().any()).item()
    return [("minilm" if has_text else "collaborative") if e == "auto" else e for e in spec.encoders]


def embed_items(
    items: pl.DataFrame,
    train_sequences: Sequence[np.ndarray],
    spec: EmbeddingSpec,
    cache: EmbeddingCache | Path,
    on_progress: LogLine | None = None,
) -> ItemEmbeddings:
    """One vector per catalog row; ``on_progress`` receives each encoder's progress lines (items encoded,
    items per second, time left) and what came from the cache."""
    names = resolve_encoders(spec, items)
    texts = item_texts(items, spec.template)
    cache = cache if isinstance(cache, EmbeddingCache) else EmbeddingCache(cache)
    parts, stats, identities = [], {}, []
    for name in names:
        if name == "collaborative":
            parts.append(collaborative_item_vectors(train_sequences, items.height, dim=spec.collaborative_dim))
            identities.append(f"collaborative-{spec.collaborative_dim}-{_digest_sequences(train_sequences)}")
            continue
        path = spec.t5_path if name == "t5" else spec.clip_path if name == "clip" else None
        encoder = build_encoder(name, path)
        images = _image_paths(items, spec.image_root) if name == "clip" else None
        progress = Progress(f"embedding ({name})", len(texts), on_progress, unit="items")
        # The encoders count (done, total) of the items not in the cache.
        vectors, stat = embed_with_cache(encoder, texts, cache, spec.batch_size, progress.tick, image_paths=images)
        if on_progress is not None:
            on_progress(
                f"embedding ({name}): {stat.total} items, {stat.from_cache} from the cache, {stat.encoded} encoded "
                f"in {stat.seconds:.1f}s"
            )
        parts.append(vectors)
        stats[name] = stat
        identities.append(encoder.identity)
    weights = list(spec.weights) or None
    vectors = parts[0] if len(parts) == 1 and weights is None else fuse(parts, weights)
    version = hashlib.sha256(
        "|".join([*identities, str(weights), spec.template, *items["item_id"].to_list()]).encode()
    ).hexdigest()[:16]
    return ItemEmbeddings(items["item_id"].to_list(), vectors.astype(np.float32), names, version, stats)


def embed_like(
    items: pl.DataFrame,
    embeddings: ItemEmbeddings,
    spec: EmbeddingSpec,
    cache: EmbeddingCache | Path | None = None,
    on_progress: LogLine | None = None,
) -> np.ndarray:
    """New catalog rows embedded as ``embeddings`` were (its encoders, ``spec``'s weights, template and model
    folders): vectors in the same space, which the same codebooks can tokenize without retraining.

    Collaborative vectors come from interactions a new item does not have yet, so a catalog embedded with
    them cannot place a new item; that is refused, naming the encoder.
    """
    if "collaborative" in embeddings.parts:
        raise ValueError(
            "the catalog's vectors include collaborative ones, which need interactions a new item does not have; "
            "new items need a content encoder (minilm, t5, clip) to get a Semantic ID without retraining"
        )
    parts_spec = EmbeddingSpec(**{**asdict(spec), "encoders": tuple(embeddings.parts)})
    with tempfile.TemporaryDirectory() as scratch:
        found = embed_items(items, [], parts_spec, cache if cache is not None else Path(scratch), on_progress)
    if found.vectors.shape[1] != embeddings.vectors.shape[1]:
        raise ValueError(
            f"new items embed to {found.vectors.shape[1]} dims, the catalog's vectors have "
            f"{embeddings.vectors.shape[1]}: not the encoder configuration that made them"
        )
    return found.vectors


def _image_paths(items: pl.DataFrame, root: str | None) -> list[str | None] | None:
    if root is None:
        return None
    return [None if url is None else str(Path(root) / Path(url).name) for url in items["image_url"].to_list()]


def _digest_sequences(sequences: Sequence[np.ndarray]) -> str:
    digest = hashlib.sha256()
    for seq in sequences:
        digest.update(np.asarray(seq, dtype=np.int64).tobytes())
        digest.update(b"|")
    return digest.hexdigest()[:12]
