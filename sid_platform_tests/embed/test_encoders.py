"""Encoders load from local folders only: the packaged MiniLM for real, T5 and CLIP from tiny random models.

The tiny models are written with ``save_pretrained`` next to a tokenizer built from a word list, then
loaded through ``build_encoder`` exactly as a configured run would load a downloaded checkpoint.
"""

import shutil
from pathlib import Path

import numpy as np
import pytest

from sid_platform.embed.encoders import (
    CLIPEncoder,
    Encoder,
    ImageTextEncoder,
    ModelNotFoundError,
    T5Encoder,
    build_encoder,
)

WORDS = ["red", "lipstick", "lip", "color", "tent", "pole", "a", "matte", "camping"]
TEXTS = ["red lipstick", "lip color", "tent pole", "a matte red lipstick for camping " * 20, ""]


def _unit_rows(vectors: np.ndarray, n: int, dim: int) -> None:
    assert vectors.shape == (n, dim) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


def _save_tokenizer(folder: Path) -> int:
    """A WordPiece tokenizer over a handful of words, made offline; returns the vocabulary size."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    return len(vocab)


@pytest.fixture(scope="module")
def tiny_t5(tmp_path_factory) -> Path:
    from transformers import T5Config, T5EncoderModel

    folder = tmp_path_factory.mktemp("models") / "tiny-t5"
    vocab_size = _save_tokenizer(folder)
    config = T5Config(vocab_size=vocab_size, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2)
    T5EncoderModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    folder = tmp_path_factory.mktemp("models") / "tiny-clip"
    vocab_size = _save_tokenizer(folder)
    small = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2}
    text = {**small, "vocab_size": vocab_size, "max_position_embeddings": 24, "pad_token_id": 0, "eos_token_id": 3}
    config = CLIPConfig(text_config=text, vision_config={**small, "image_size": 32, "patch_size": 8}, projection_dim=8)
    CLIPModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


def test_minilm_loads_offline_and_ranks_related_texts_closer():
    encoder = build_encoder("minilm")
    assert isinstance(encoder, Encoder) and encoder.dim == 384
    batches = []
    vectors = encoder.encode(
        ["red lipstick", "lip color", "tent pole"], batch_size=2, progress=lambda d, n: batches.append((d, n))
    )
    _unit_rows(vectors, 3, 384)
    assert batches == [(2, 3), (3, 3)]
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.3


def test_t5_loads_from_a_local_folder(tiny_t5):
    encoder = build_encoder("t5", tiny_t5)
    assert isinstance(encoder, T5Encoder) and encoder.dim == 16
    vectors = encoder.encode(TEXTS, batch_size=2)
    _unit_rows(vectors, len(TEXTS), 16)
    # Batched longest first, yet each row is the text's own vector, whatever its batch.
    np.testing.assert_allclose(vectors, np.vstack([encoder.encode([t]) for t in TEXTS]), atol=1e-5)
    assert encoder.encode([]).shape == (0, 16)


def test_identity_follows_the_files_not_the_path(tiny_t5, tmp_path):
    moved = tmp_path / "elsewhere" / tiny_t5.name
    shutil.copytree(tiny_t5, moved)
    identity = build_encoder("t5", tiny_t5).identity
    assert identity.startswith("t5-tiny-t5-")
    assert build_encoder("t5", moved).identity == identity
    assert build_encoder("t5", moved, max_length=8).identity != identity
    (moved / "tokenizer_config.json").write_text((moved / "tokenizer_config.json").read_text() + "\n")
    assert build_encoder("t5", moved).identity != identity


def test_clip_uses_the_image_when_the_file_exists(tiny_clip, tmp_path):
    encoder = build_encoder("clip", tiny_clip)
    assert isinstance(encoder, CLIPEncoder) and isinstance(encoder, ImageTextEncoder) and encoder.dim == 8
    _unit_rows(encoder.encode(TEXTS), len(TEXTS), 8)  # the long text is cut to the 24 text positions
    texts = TEXTS[:3]
    by_text = encoder.encode(texts)

    image_module = pytest.importorskip("PIL.Image")
    image = tmp_path / "item.png"
    pixels = np.random.default_rng(0).integers(0, 256, size=(40, 48, 3), dtype=np.uint8)
    image_module.fromarray(pixels).save(image)
    mixed = encoder.encode_items(texts, [image, None, tmp_path / "missing.jpg"], batch_size=2)
    _unit_rows(mixed, 3, 8)
    np.testing.assert_allclose(mixed[1:], by_text[1:], atol=1e-5)
    assert not np.allclose(mixed[0], by_text[0], atol=1e-3)
    np.testing.assert_allclose(mixed[0], encoder.encode_items(["other text"], [str(image)])[0], atol=1e-5)


def test_clip_reports_an_unreadable_image(tiny_clip, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="broken.jpg"):
        build_encoder("clip", tiny_clip).encode_items(["a"], [broken])


@pytest.mark.parametrize("name", ["t5", "clip"])
def test_a_missing_model_folder_says_which_and_how_to_fix_it(name, tmp_path):
    with pytest.raises(ModelNotFoundError, match="no path was given.*huggingface-cli download"):
        build_encoder(name)
    with pytest.raises(ModelNotFoundError, match=f"{tmp_path / 'nowhere'} does not exist"):
        build_encoder(name, tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        build_encoder(name, tmp_path)


def test_unknown_encoder_name():
    with pytest.raises(ValueError, match="minilm, t5, clip"):
        build_encoder("bert")
