"""The embedding cache: only new or changed content reaches the encoder, and the file survives restarts."""

import zlib
from pathlib import Path

import numpy as np
import pytest

from sid_platform.embed.cache import EmbeddingCache, content_hash, embed_with_cache, image_hash
from sid_platform.embed.encoders import Encoder, ImageTextEncoder


def _vector(content: bytes, dim: int) -> np.ndarray:
    v = np.random.default_rng(zlib.crc32(content)).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


class CountingEncoder:
    """Deterministic vectors from the text; remembers every text it was asked to encode."""

    name = "counting"
    dim = 8

    def __init__(self, identity: str = "counting-v1") -> None:
        self.identity = identity
        self.seen: list[str] = []

    def encode(self, texts, batch_size=64, progress=None):
        self.seen.extend(texts)
        if progress is not None:
            progress(len(texts), len(texts))
        return np.stack([_vector(t.encode(), self.dim) for t in texts]) if texts else np.zeros((0, self.dim))


class CountingImageEncoder(CountingEncoder):
    """As above, but an existing image file is encoded from its bytes instead of the text."""

    def __init__(self) -> None:
        super().__init__("counting-image-v1")
        self.images: list[str] = []

    def encode_items(self, texts, image_paths, batch_size=64, progress=None):
        rows = []
        for text, path in zip(texts, image_paths, strict=True):
            if path and Path(path).is_file():
                self.images.append(str(path))
                rows.append(_vector(Path(path).read_bytes(), self.dim))
            else:
                self.seen.append(text)
                rows.append(_vector(text.encode(), self.dim))
        return np.stack(rows)


def test_the_fakes_satisfy_the_interfaces():
    assert isinstance(CountingEncoder(), Encoder) and not isinstance(CountingEncoder(), ImageTextEncoder)
    assert isinstance(CountingImageEncoder(), ImageTextEncoder)


def test_content_hash_depends_on_text_and_encoder():
    key = content_hash("red lipstick", "minilm-a")
    assert len(key) == 64 and int(key, 16) >= 0
    assert key == content_hash("red lipstick", "minilm-a")
    assert key != content_hash("red lipstick", "minilm-b") != content_hash("red lipstick ", "minilm-a")


def test_second_call_encodes_nothing_and_a_changed_text_encodes_one(tmp_path):
    encoder, cache = CountingEncoder(), EmbeddingCache(tmp_path / "cache")
    texts = ["red lipstick", "tent pole", "lip color"]
    first, stats = embed_with_cache(encoder, texts, cache)
    assert (stats.total, stats.from_cache, stats.encoded) == (3, 0, 3)
    assert first.shape == (3, 8) and first.dtype == np.float32

    encoder.seen.clear()
    again, stats = embed_with_cache(encoder, texts, EmbeddingCache(tmp_path / "cache"))  # a fresh process
    assert (stats.from_cache, stats.encoded, encoder.seen) == (3, 0, [])
    np.testing.assert_array_equal(again, first)

    changed = ["red lipstick", "tent pole, aluminium", "lip color"]
    updated, stats = embed_with_cache(encoder, changed, cache)
    assert (stats.from_cache, stats.encoded, encoder.seen) == (2, 1, ["tent pole, aluminium"])
    np.testing.assert_array_equal(updated[[0, 2]], first[[0, 2]])
    np.testing.assert_allclose(updated[1], _vector(b"tent pole, aluminium", 8))
    assert stats.items_per_second > 0 and stats.seconds >= 0
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".npz"]  # no temporary file left behind


def test_duplicates_are_encoded_once_and_identities_do_not_share(tmp_path):
    cache = EmbeddingCache(tmp_path)
    vectors, stats = embed_with_cache(CountingEncoder(), ["a", "b", "a"], cache)
    assert (stats.total, stats.encoded) == (3, 2)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    other = CountingEncoder("counting-v2")
    _, stats = embed_with_cache(other, ["a"], cache)
    assert (stats.encoded, other.seen) == (1, ["a"])
    assert len(list(tmp_path.iterdir())) == 2


def test_progress_counts_encoded_items(tmp_path):
    calls = []
    embed_with_cache(
        CountingEncoder(), ["a", "b"], EmbeddingCache(tmp_path), progress=lambda d, n: calls.append((d, n))
    )
    assert calls[-1] == (2, 2)


def test_images_are_keyed_by_their_bytes(tmp_path):
    encoder, cache = CountingImageEncoder(), EmbeddingCache(tmp_path / "cache")
    image = tmp_path / "item0.png"
    image.write_bytes(b"first image")
    paths = [image, None, tmp_path / "missing.png"]
    _, stats = embed_with_cache(encoder, ["t0", "t1", "t2"], cache, image_paths=paths)
    assert (stats.encoded, encoder.images, encoder.seen) == (3, [str(image)], ["t1", "t2"])

    _, stats = embed_with_cache(encoder, ["t0 edited", "t1", "t2"], cache, image_paths=paths)
    assert stats.encoded == 0  # item 0 is embedded by its image, so its text does not matter

    image.write_bytes(b"second image")
    vectors, stats = embed_with_cache(encoder, ["t0", "t1", "t2"], cache, image_paths=paths)
    assert stats.encoded == 1
    np.testing.assert_allclose(vectors[0], _vector(b"second image", 8))
    assert image_hash(image, encoder.identity) != content_hash("second image", encoder.identity)


def test_image_paths_need_an_image_encoder(tmp_path):
    with pytest.raises(TypeError, match="text only"):
        embed_with_cache(CountingEncoder(), ["a"], EmbeddingCache(tmp_path), image_paths=[None])
    with pytest.raises(ValueError, match="1 texts but 2 image paths"):
        embed_with_cache(CountingImageEncoder(), ["a"], EmbeddingCache(tmp_path), image_paths=[None, None])


def test_store_rejects_vectors_of_another_size(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.store("enc", ["k1"], np.ones((1, 4)))
    with pytest.raises(ValueError, match="4-d"):
        cache.store("enc", ["k2"], np.ones((1, 5)))
    assert set(cache.lookup("enc", ["k1", "k2"])) == {"k1"}
