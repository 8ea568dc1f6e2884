"""How a stored model is written: its tensors in safetensors, its config and metadata as JSON in the same file.

Neither part can carry code, so loading a checkpoint never executes anything from the file (a pickle
would), and the file says what it holds (``kind``) so a reader can refuse the wrong one. Each model's
checkpoint dataclass (codebooks, SASRec, router, reranker) builds on these two functions.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

SUFFIX = ".safetensors"


def _plain(value: Any) -> Any:
    """numpy scalars and arrays (in logs and reports) as the JSON values they stand for."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def save_checkpoint(path: str | Path, kind: str, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write ``tensors`` and the JSON of ``meta`` to ``path``, tagged with ``kind``."""
    path = Path(path)
    # Cloned: safetensors refuses tensors that share memory, and a state_dict may hold views.
    plain = {name: tensor.detach().cpu().clone().contiguous() for name, tensor in tensors.items()}
    save_file(plain, str(path), metadata={"kind": kind, "meta": json.dumps(meta, default=_plain)})
    return path


def checkpoint_kind(path: str | Path) -> str | None:
    """The ``kind`` a checkpoint file was written with (``None`` for a safetensors file without one)."""
    with safe_open(str(path), framework="pt") as handle:
        return (handle.metadata() or {}).get("kind")


def load_checkpoint(path: str | Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The tensors and the metadata of a checkpoint written as ``kind``; refuses any other kind."""
    with safe_open(str(path), framework="pt") as handle:
        header = handle.metadata() or {}
        if header.get("kind") != kind:
            raise ValueError(f"{path} holds a {header.get('kind')!r} checkpoint, not {kind!r}")
        tensors = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (not a dict)
    return tensors, json.loads(header["meta"])
