"""A content-addressed embedding cache: after a catalog change only new or changed items are encoded.

A vector is keyed by the SHA-256 of what was encoded (the item text, or the image file's bytes) together
with the encoder's ``identity``, so a new model, new weights or a new text template miss the cache by
construction and nothing needs invalidating. Each identity has one ``.npz`` file (keys and vectors) in a
``BlobStore`` (the side-file storage: local files, or S3 in the cluster), rewritten whole by an atomic
replace, so a crash never leaves a torn file.
Entries for items that left the catalog stay (they are cheap and make a rollback free). Two processes
writing one identity at once do not corrupt it; the later rename wins and the other's new vectors
are simply encoded again next time.
"""

from __future__ import annotations

import hashlib
import io
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sid_platform.embed.encoders import Encoder, ImageTextEncoder, Progress, has_image_file
from sid_platform.storage import BlobStore, LocalBlobStore


def content_hash(text: str, encoder_identity: str) -> str:
    """Key of a text under an encoder (sha256 hex)."""
    return _digest(encoder_identity, b"text", text.encode("utf-8"))


def image_hash(path: str | Path, encoder_identity: str) -> str:
    """Key of an image file's bytes under an encoder: a re-shot image is encoded again, a moved one is not."""
    return _digest(encoder_identity, b"image", Path(path).read_bytes())


def _digest(identity: str, kind: bytes, payload: bytes) -> str:
    return hashlib.sha256(identity.encode("utf-8") + b"\0" + kind + b"\0" + payload).hexdigest()


class EmbeddingCache:
    """Vectors by key, one file per encoder identity under ``prefix`` in ``store`` (a directory: local files)."""

    def __init__(self, store: BlobStore | Path, prefix: str = "") -> None:
        self.blobs = LocalBlobStore(Path(store)) if isinstance(store, str | Path) else store
        self.prefix = prefix

    def key_for(self, identity: str) -> str:
        readable = re.sub(r"[^A-Za-z0-9._-]", "_", identity)[:80]
        unique = hashlib.sha256(identity.encode("utf-8")).hexdigest()[:8]  # distinct even if sanitizing collides
        return f"{self.prefix}{readable}-{unique}.npz"

    def lookup(self, identity: str, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The cached vector of every key that has one; absent keys are simply not in the result."""
        stored_keys, vectors = self._read(identity)
        index = {k: i for i, k in enumerate(stored_keys)}
        return {k: vectors[index[k]] for k in set(keys) if k in index}

    def store(self, identity: str, keys: Sequence[str], vectors: np.ndarray) -> None:
        """Add (or replace) ``keys[i] → vectors[i]`` and rewrite the identity's file atomically."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(keys) != len(vectors):
            raise ValueError(f"store needs one vector row per key: {len(keys)} keys, vectors of shape {vectors.shape}")
        old_keys, old_vectors = self._read(identity)
        if len(old_keys) and old_vectors.shape[1] != vectors.shape[1]:
            raise ValueError(
                f"cache {self.blobs.uri(self.key_for(identity))} holds {old_vectors.shape[1]}-d vectors, got {vectors.shape[1]}-d "
                f"for the same encoder identity {identity!r}"
            )
        merged = dict(zip(old_keys.tolist(), old_vectors, strict=True))
        merged.update(zip(keys, vectors, strict=True))
        self._write(identity, np.array(list(merged), dtype="U64"), np.stack(list(merged.values())))

    def _read(self, identity: str) -> tuple[np.ndarray, np.ndarray]:
        data = self.blobs.read(self.key_for(identity))
        if data is None:
            return np.zeros(0, dtype="U64"), np.zeros((0, 0), dtype=np.float32)
        with np.load(io.BytesIO(data), allow_pickle=False) as stored:
            return stored["keys"], stored["vectors"]

    def _write(self, identity: str, keys: np.ndarray, vectors: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, keys=keys, vectors=vectors)
        self.blobs.write(self.key_for(identity), buffer.getvalue())


@dataclass(frozen=True)
class EmbedStats:
    """``encoded`` counts distinct contents sent to the encoder: duplicates in one call are encoded once."""

    total: int
    from_cache: int
    encoded: int
    seconds: float
    items_per_second: float


def embed_with_cache(
    encoder: Encoder,
    texts: list[str],
    cache: EmbeddingCache,
    batch_size: int = 64,
    progress: Progress | None = None,
    image_paths: Sequence[str | Path | None] | None = None,
) -> tuple[np.ndarray, EmbedStats]:
    """``[len(texts), encoder.dim]`` vectors, encoding only what the cache does not hold yet.

    With ``image_paths`` (an ``ImageTextEncoder`` such as CLIP), an item whose image file exists is keyed
    and encoded by the image, any other by its text; ``progress`` counts the items actually encoded.
    """
    start = time.perf_counter()
    identity = encoder.identity
    if image_paths is None:
        keys = [content_hash(t, identity) for t in texts]
    else:
        if not isinstance(encoder, ImageTextEncoder):
            raise TypeError(
                f"encoder {encoder.name!r} embeds text only; image_paths need an image encoder such as clip"
            )
        if len(image_paths) != len(texts):
            raise ValueError(f"embed_with_cache: {len(texts)} texts but {len(image_paths)} image paths")
        keys = [
            image_hash(p, identity) if has_image_file(p) else content_hash(t, identity)
            for t, p in zip(texts, image_paths, strict=True)
        ]
    found = cache.lookup(identity, keys)
    from_cache = sum(k in found for k in keys)
    first_row: dict[str, int] = {}  # distinct keys in order of first use, with that row
    for row, key in enumerate(keys):
        first_row.setdefault(key, row)
    missing = [k for k in first_row if k not in found]
    if missing:
        rows = [first_row[k] for k in missing]
        todo = [texts[i] for i in rows]
        if image_paths is None:
            vectors = encoder.encode(todo, batch_size, progress)
        else:
            vectors = encoder.encode_items(todo, [image_paths[i] for i in rows], batch_size, progress)
        cache.store(identity, missing, vectors)
        found.update(zip(missing, vectors, strict=True))
    out = np.stack([found[k] for k in keys], dtype=np.float32) if keys else np.zeros((0, encoder.dim), np.float32)
    seconds = time.perf_counter() - start
    stats = EmbedStats(len(keys), from_cache, len(missing), seconds, len(keys) / max(seconds, 1e-9))
    return out, stats
