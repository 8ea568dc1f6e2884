"""Where the graph's side files live: reports, audits, histories and resume files beside the assets.

Assets go through Dagster's IO manager; everything else a run writes goes through a ``BlobStore``, so in
the cluster (assets in S3) the side files land in the same bucket instead of on a pod's disk. Keys are
relative paths such as ``runs/<run id>/evaluation.json``. Local writes are atomic and use a temp name
unique to the writer, so two runs writing the same key never trip over each other's temp file.
"""

from __future__ import annotations

import io
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl


class BlobStore(Protocol):
    def read(self, key: str) -> bytes | None:
        """The stored bytes, or ``None`` when nothing is stored under ``key``."""
        ...

    def write(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key`` (replacing it atomically); returns where it lives (path or URI)."""
        ...

    def delete(self, key: str) -> None: ...

    def uri(self, key: str) -> str: ...


@dataclass(frozen=True)
class LocalBlobStore:
    """Files under ``root`` (the local data home by default)."""

    root: Path

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root.resolve()):
            raise ValueError(f"storage key {key!r} leaves the store's root {self.root}")
        return path

    def read(self, key: str) -> bytes | None:
        path = self.path(key)
        return path.read_bytes() if path.is_file() else None

    def write(self, key: str, data: bytes) -> str:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
        return str(path)

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def uri(self, key: str) -> str:
        return str(self.path(key))


@dataclass(frozen=True)
class S3BlobStore:
    """Objects under ``s3://bucket/prefix/``; ``client`` is a boto3 S3 client (endpoint from the environment)."""

    bucket: str
    prefix: str
    client: Any

    def _key(self, key: str) -> str:
        return f"{self.prefix.strip('/')}/{key}".lstrip("/")

    def read(self, key: str) -> bytes | None:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            return None

    def write(self, key: str, data: bytes) -> str:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)  # a PUT is atomic in S3
        return self.uri(key)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{self._key(key)}"


@dataclass(frozen=True)
class StoredFile:
    """One key of a store, read and written whole: what a trainer's resume file needs."""

    store: BlobStore
    key: str

    def read(self) -> bytes | None:
        return self.store.read(self.key)

    def write(self, data: bytes) -> None:
        self.store.write(self.key, data)

    def delete(self) -> None:
        self.store.delete(self.key)


def frame_bytes(frame: pl.DataFrame, fmt: str = "parquet") -> bytes:
    """A table as the bytes of a Parquet or CSV file, for ``BlobStore.write``."""
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.write_parquet(buffer)
    elif fmt == "csv":
        frame.write_csv(buffer)
    else:
        raise ValueError(f"unknown table format {fmt!r}; choose parquet or csv")
    return buffer.getvalue()


def read_parquet_blob(store: BlobStore, key: str) -> pl.DataFrame | None:
    """The Parquet table stored under ``key``, or ``None`` when there is none."""
    data = store.read(key)
    return pl.read_parquet(io.BytesIO(data)) if data is not None else None
