"""Stored values as bytes that carry no code: the codecs the IO manager, the servable bundle and the benchmarks share.

Unpickling runs whatever callables a file names, so nothing that crosses a trust boundary (S3, the MLflow
registry, a download) is a pickle. Every type the graph's assets output has a format that holds data only:

- a polars frame: Parquet (``.parquet``);
- a model checkpoint (codebooks, SASRec, router, reranker): its own safetensors file (``.safetensors``), the
  class found by the ``kind`` the file was written with;
- a dict or list of plain JSON values: JSON (``.json``);
- a registered record (user sequences, item embeddings, candidates, the popularity model, the ANN index, and
  the records inside them) or a container of such values: ``.npz``, numpy arrays read with
  ``allow_pickle=False``, plus a JSON header that names the registered type of every record in it. A FAISS
  index inside a record is FAISS's own ``serialize_index`` bytes.

A file can only ever produce registered types: records and checkpoints are looked up by name in ``RECORDS`` and
``CHECKPOINTS``, never imported from a name the file gives. A value of any other type is refused with
``TypeError`` when it is written; a file naming an unregistered type is refused with ``ArtifactError``.
"""

from __future__ import annotations

import dataclasses
import io
import json
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import polars as pl
from safetensors import SafetensorError

from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRecCheckpoint
from sid_platform.checkpoint import SUFFIX as CHECKPOINT_SUFFIX
from sid_platform.checkpoint import checkpoint_kind
from sid_platform.data.split import EvalCases, ItemVocab, UserSequences
from sid_platform.embed.cache import EmbedStats
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.reranking.dpo import RerankerCheckpoint
from sid_platform.retrieval.ann import AnnIndex
from sid_platform.retrieval.blend import ScoreBlend
from sid_platform.retrieval.candidates import ChannelReport
from sid_platform.retrieval.router import RouterCheckpoint
from sid_platform.retrieval.stored import Candidates, StoredRetrieval
from sid_platform.semantic_ids.checkpoint import CodebooksCheckpoint
from sid_platform.storage import BlobStore

PARQUET, JSON, NPZ = ".parquet", ".json", ".npz"
SUFFIXES = (PARQUET, CHECKPOINT_SUFFIX, NPZ, JSON)  # every format a stored value can have
LEGACY_SUFFIXES = (".pkl",)  # written by earlier versions; never read, removed when the value is rewritten
FORMAT = "sid-platform/record"
FORMAT_VERSION = 1
HEADER = "__header__"  # the npz member holding the JSON header (as uint8)

Checkpoint = CodebooksCheckpoint | SASRecCheckpoint | RouterCheckpoint | RerankerCheckpoint

# Checkpoint kind → its class: stored with its own save() and read back with its load().
CHECKPOINTS: dict[str, type[Checkpoint]] = {
    cls.KIND: cls for cls in (CodebooksCheckpoint, SASRecCheckpoint, RouterCheckpoint, RerankerCheckpoint)
}


class ArtifactError(ValueError):
    """A stored value this code refuses to read: an unregistered type, a malformed header, a missing file."""


@dataclass(frozen=True)
class Record:
    """A registered type: the fields it is stored as, and how it is built again from them."""

    cls: type
    fields: tuple[str, ...]
    build: Callable[..., Any]

    @classmethod
    def of_dataclass(cls, record_type: type) -> Record:
        fields = dataclasses.fields(record_type)
        if not all(f.init for f in fields):  # a field the constructor does not take could not be restored
            raise TypeError(f"{record_type.__name__} has init=False fields; it cannot be a stored record")
        return cls(record_type, tuple(f.name for f in fields), record_type)


def _records(*records: Record) -> dict[str, Record]:
    by_name = {record.cls.__name__: record for record in records}
    if len(by_name) != len(records):
        raise ValueError("two registered record types share a name")
    return by_name


# Name → record type: the only classes a stored ``.npz`` can build. A new asset output type is one more entry.
RECORDS: dict[str, Record] = _records(
    *(
        Record.of_dataclass(t)
        for t in (
            PopularityModel,
            ItemVocab,
            EvalCases,
            UserSequences,
            EmbedStats,
            ItemEmbeddings,
            ChannelReport,
            StoredRetrieval,
            Candidates,
            ScoreBlend,
        )
    ),
    Record(AnnIndex, ("index", "kind", "top_n"), AnnIndex),  # the FAISS index itself: serialize_index bytes
)
_RECORD_NAMES: dict[type, str] = {record.cls: name for name, record in RECORDS.items()}


# ---- writing -------------------------------------------------------------------------------------------------


def encode(value: Any) -> tuple[str, bytes]:
    """``(suffix, bytes)`` of a value in its format; ``TypeError`` for a type that has none (never pickled)."""
    if isinstance(value, pl.DataFrame):
        buffer = io.BytesIO()
        value.write_parquet(buffer)
        return PARQUET, buffer.getvalue()
    if isinstance(value, tuple(CHECKPOINTS.values())):
        return CHECKPOINT_SUFFIX, _checkpoint_bytes(value)
    if isinstance(value, dict | list) and is_json(value):
        return JSON, json.dumps(value).encode()
    if type(value) in _RECORD_NAMES or isinstance(value, dict | list | tuple):
        return NPZ, _npz_bytes(value)
    raise TypeError(_no_format(value, ""))


def is_json(value: Any) -> bool:
    """Whether ``value`` is made of plain JSON values only (dicts with str keys, lists, str, int, float, bool,
    None), so JSON gives back exactly the same value."""
    if value is None or type(value) in (str, int, float, bool):
        return True
    if type(value) is list:
        return all(is_json(v) for v in value)
    if type(value) is dict:
        return all(type(k) is str and is_json(v) for k, v in value.items())
    return False


def _no_format(value: Any, where: str) -> str:
    name = f"{type(value).__module__}.{type(value).__qualname__}"
    at = f" (at {where})" if where else ""
    return (
        f"{name}{at} has no stored format: store a polars frame, a checkpoint, JSON values, or a type registered "
        "in sid_platform/artifacts.py (RECORDS); values are never pickled"
    )


def _checkpoint_bytes(checkpoint: Checkpoint) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        return checkpoint.save(Path(tmp) / f"checkpoint{CHECKPOINT_SUFFIX}").read_bytes()


def _one_dimensional(rows: list) -> bool:
    """A non-empty list of 1-D arrays of one dtype: stored as one concatenated array and its offsets."""
    return (
        bool(rows)
        and all(isinstance(r, np.ndarray) and r.ndim == 1 for r in rows)
        and len({r.dtype for r in rows}) == 1
    )


class _Packer:
    """Takes a value apart into a JSON tree and the numpy arrays it refers to by key."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def _array(self, array: np.ndarray, where: str) -> str:
        if array.dtype.hasobject:
            raise TypeError(f"an object array (at {where}) has no stored format; values are never pickled")
        key = f"a{len(self.arrays)}"
        self.arrays[key] = array
        return key

    def node(self, value: Any, where: str) -> Any:
        if isinstance(value, np.ndarray):
            return {"$array": self._array(value, where)}
        if isinstance(value, np.generic):  # before float/int: np.float64 is a float, and keeps its dtype here
            return {"$scalar": self._array(np.asarray(value), where)}
        if value is None or type(value) in (str, int, float, bool):
            return value
        if type(value) in _RECORD_NAMES:
            name = _RECORD_NAMES[type(value)]
            fields = {f: self.node(getattr(value, f), f"{where}.{f}") for f in RECORDS[name].fields}
            return {"$record": name, "fields": fields}
        if isinstance(value, faiss.Index):
            return {"$faiss": self._array(faiss.serialize_index(value), where)}
        if type(value) is list:
            if _one_dimensional(value):  # many 1-D arrays (sequences): one array and offsets
                return self._ragged(value, where)
            return [self.node(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if type(value) is tuple:
            return {"$tuple": [self.node(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if type(value) is dict:
            if all(type(k) is str for k in value):
                return {"$dict": {k: self.node(v, f"{where}[{k!r}]") for k, v in value.items()}}
            return {"$pairs": [[self.node(k, where), self.node(v, f"{where}[{k!r}]")] for k, v in value.items()]}
        raise TypeError(_no_format(value, where))

    def _ragged(self, rows: list[np.ndarray], where: str) -> dict:
        lengths = np.asarray([len(r) for r in rows], dtype=np.int64)
        offsets = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(lengths)])
        return {"$ragged": self._array(np.concatenate(rows), where), "offsets": self._array(offsets, where)}


def _npz_bytes(value: Any) -> bytes:
    packer = _Packer()
    root = packer.node(value, type(value).__name__)
    header = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, "root": root}).encode()
    buffer = io.BytesIO()
    np.savez(buffer, **{HEADER: np.frombuffer(header, dtype=np.uint8)}, **packer.arrays)
    return buffer.getvalue()


# ---- reading -------------------------------------------------------------------------------------------------


def decode(suffix: str, data: bytes, what: str = "stored value") -> Any:
    """The value ``encode`` gave ``(suffix, data)`` for; ``ArtifactError`` for a format or type it does not know.

    Nothing in ``data`` is executed: Parquet, JSON, safetensors and npz (``allow_pickle=False``) hold data only.
    """
    if suffix == PARQUET:
        return pl.read_parquet(io.BytesIO(data))
    if suffix == JSON:
        return json.loads(data)
    if suffix == CHECKPOINT_SUFFIX:
        return _read_checkpoint(data, what)
    if suffix == NPZ:
        return _read_npz(data, what)
    raise ArtifactError(f"{what}: {suffix!r} is not a stored format ({', '.join(SUFFIXES)}); refusing to read it")


def _read_checkpoint(data: bytes, what: str) -> Checkpoint:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"checkpoint{CHECKPOINT_SUFFIX}"
        path.write_bytes(data)
        try:
            kind = checkpoint_kind(path)
        except SafetensorError as error:
            raise ArtifactError(f"{what}: not a safetensors checkpoint ({error}); refusing to read it") from error
        if kind not in CHECKPOINTS:
            raise ArtifactError(f"{what}: a checkpoint of kind {kind!r}; known kinds: {', '.join(CHECKPOINTS)}")
        return CHECKPOINTS[kind].load(path)


# What reading untrusted npz bytes can raise: numpy's refusal of pickled data, a broken archive, bad JSON, a
# malformed tree (wrong node shapes, deep nesting), FAISS refusing its bytes.
_UNREADABLE = (
    ValueError,
    TypeError,
    KeyError,
    AttributeError,
    IndexError,
    RuntimeError,
    OSError,
    EOFError,
    zipfile.BadZipFile,
)


def _read_npz(data: bytes, what: str) -> Any:
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            if HEADER not in archive.files:
                raise ArtifactError(f"{what}: an npz file without the {HEADER!r} header; refusing to read it")
            header = json.loads(archive[HEADER].tobytes())
            if not isinstance(header, dict) or header.get("format") != FORMAT:
                raise ArtifactError(f"{what}: the header does not say format {FORMAT!r}; refusing to read it")
            if header.get("version") != FORMAT_VERSION:
                raise ArtifactError(f"{what}: format version {header.get('version')!r}, this code reads 1")
            return _Unpacker(archive, what).value(header.get("root"))
    except ArtifactError:
        raise
    except _UNREADABLE as error:
        raise ArtifactError(f"{what}: not a readable npz record ({error!r}); refusing to read it") from error


class _Unpacker:
    """Builds the value back from the JSON tree, creating only registered records."""

    def __init__(self, archive: Mapping[str, np.ndarray], what: str) -> None:
        self.archive, self.what = archive, what

    def _array(self, key: Any) -> np.ndarray:
        if not isinstance(key, str) or key == HEADER or key not in self.archive:
            raise ArtifactError(f"{self.what}: the header refers to an array {key!r} the file does not hold")
        return self.archive[key]

    def value(self, node: Any) -> Any:
        if node is None or type(node) in (str, int, float, bool):
            return node
        if type(node) is list:
            return [self.value(v) for v in node]
        if type(node) is not dict or not node:
            raise ArtifactError(f"{self.what}: malformed header node {str(node)[:80]!r}")
        tag = next(iter(node))
        if tag == "$array":
            return self._array(node[tag])
        if tag == "$scalar":
            return self._array(node[tag])[()]
        if tag == "$ragged":
            flat, offsets = self._array(node[tag]), self._array(node.get("offsets"))
            return [flat[start:end] for start, end in zip(offsets[:-1].tolist(), offsets[1:].tolist(), strict=True)]
        if tag == "$tuple":
            return tuple(self.value(v) for v in node[tag])
        if tag == "$dict":
            return {k: self.value(v) for k, v in node[tag].items()}
        if tag == "$pairs":
            return {self.value(k): self.value(v) for k, v in node[tag]}
        if tag == "$faiss":
            return faiss.deserialize_index(np.ascontiguousarray(self._array(node[tag]), dtype=np.uint8))
        if tag == "$record":
            return self._record(node[tag], node.get("fields"))
        raise ArtifactError(f"{self.what}: unknown header node {tag!r}")

    def _record(self, name: Any, fields: Any) -> Any:
        record = RECORDS.get(name) if isinstance(name, str) else None
        if record is None:
            raise ArtifactError(
                f"{self.what}: the file names type {name!r}, which is not a registered record type "
                f"({', '.join(RECORDS)}); refusing to load it"
            )
        if not isinstance(fields, dict) or not set(fields) <= set(record.fields):
            extra = sorted(set(fields) - set(record.fields)) if isinstance(fields, dict) else fields
            raise ArtifactError(f"{self.what}: {name} stored with unknown fields {extra}; rematerialize it")
        try:
            return record.build(**{field: self.value(node) for field, node in fields.items()})
        except TypeError as error:  # a required field missing
            raise ArtifactError(f"{self.what}: {name} cannot be built from its stored fields ({error})") from error


# ---- in a store ----------------------------------------------------------------------------------------------


def write_artifact(store: BlobStore, stem: str, value: Any) -> str:
    """Store ``value`` under ``<stem><suffix of its format>`` (atomically, as the store writes); returns where.

    Files of ``stem`` in another format (an earlier run's, or a pickle of an older version) are removed, so a
    reader never finds a stale value beside the new one.
    """
    suffix, data = encode(value)
    where = store.write(stem + suffix, data)
    for other in (*SUFFIXES, *LEGACY_SUFFIXES):
        if other != suffix:
            store.delete(stem + other)
    return where


def read_artifact(store: BlobStore, stem: str) -> Any:
    """The value stored under ``stem`` by ``write_artifact``; ``FileNotFoundError`` when there is none."""
    for suffix in SUFFIXES:
        data = store.read(stem + suffix)
        if data is not None:
            return decode(suffix, data, store.uri(stem + suffix))
    if any(store.read(stem + legacy) is not None for legacy in LEGACY_SUFFIXES):
        raise ArtifactError(
            f"{store.uri(stem + LEGACY_SUFFIXES[0])} is a pickle an older version wrote; pickles are never loaded: "
            "rematerialize it"
        )
    raise FileNotFoundError(f"nothing stored under {store.uri(stem)} ({', '.join(SUFFIXES)})")


def read_artifact_file(path: str | Path) -> Any:
    """A file ``write_artifact`` (or the bundle) wrote, read by its suffix."""
    path = Path(path)
    return decode(path.suffix, path.read_bytes(), str(path))
