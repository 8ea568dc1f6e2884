"""Stored values without pickle: every asset type round-trips, and a file that would run code is refused unread."""

from __future__ import annotations

import dataclasses
import io
import json
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sid_platform.artifacts import (
    CHECKPOINTS,
    HEADER,
    NPZ,
    RECORDS,
    ArtifactError,
    decode,
    encode,
    read_artifact,
    read_artifact_file,
    write_artifact,
)
from sid_platform.checkpoint import save_checkpoint
from sid_platform.storage import LocalBlobStore, S3BlobStore
from sid_platform_tests.artifact_samples import FakeS3, assert_same, samples

EXPECTED_SUFFIX = {
    "frame": ".parquet",
    "document": ".json",
    "sasrec_model": ".safetensors",
    "codebooks": ".safetensors",
    "router_checkpoint": ".safetensors",
    "dpo_checkpoint": ".safetensors",
}


def _touch(path: str) -> None:
    """What a malicious pickle would run: leaves a file, so a test sees whether it ran."""
    Path(path).touch()


class Payload:
    """Unpickling this calls ``_touch(marker)``: a stand-in for ``os.system``."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return _touch, (self.marker,)


def _npz(header: dict, **arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **{HEADER: np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}, **arrays)
    return buffer.getvalue()


def _types(value: object) -> Iterator[type]:
    """The types of ``value`` and of every value inside it."""
    yield type(value)
    if dataclasses.is_dataclass(value):
        for field in dataclasses.fields(value):
            yield from _types(getattr(value, field.name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _types(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _types(item)


def test_the_samples_cover_every_registered_type():
    types = {t for value in samples().values() for t in _types(value)}
    assert {record.cls for record in RECORDS.values()} <= types
    assert set(CHECKPOINTS.values()) <= types


@pytest.mark.parametrize("name", list(samples()))
def test_every_stored_type_round_trips(name: str):
    original = samples()[name]
    suffix, data = encode(original)
    assert suffix == EXPECTED_SUFFIX.get(name, NPZ)
    assert_same(decode(suffix, data), original, name)


def test_the_ann_index_still_finds_the_nearest_items_after_storage():
    original = samples()["faiss_index"]
    probes = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    restored = decode(*encode(original))
    for a, b in zip(restored.search(probes, 4), original.search(probes, 4), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("value", [object(), {"fine": 1, "not": object()}, [np.array([object()], dtype=object)]])
def test_a_value_without_a_format_is_refused_when_written(value):
    with pytest.raises(TypeError, match="never pickled"):
        encode(value)


def test_a_nested_unknown_type_is_named_with_where_it_sits():
    sequences = samples()["user_sequences"]
    sequences.vocab.item_ids.append(Payload(Path("unused")))
    with pytest.raises(TypeError, match=r"Payload \(at UserSequences\.vocab\.item_ids\[5\]\)"):
        encode(sequences)


def test_a_header_naming_an_unregistered_type_is_refused(tmp_path: Path):
    data = _npz({"format": "sid-platform/record", "version": 1, "root": {"$record": "os.system", "fields": {}}})
    with pytest.raises(ArtifactError, match="'os.system', which is not a registered record type"):
        decode(NPZ, data)


def test_a_checkpoint_of_an_unknown_kind_is_refused(tmp_path: Path):
    path = save_checkpoint(tmp_path / "x.safetensors", "os.system", {}, {})
    with pytest.raises(ArtifactError, match="kind 'os.system'"):
        read_artifact_file(path)


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".json", ".parquet"])
def test_a_pickle_under_any_suffix_is_refused_without_running(tmp_path: Path, suffix: str):
    marker = tmp_path / "ran"
    store = LocalBlobStore(tmp_path)
    store.write(f"asset{suffix}", pickle.dumps(Payload(marker)))
    with pytest.raises(Exception):  # noqa: B017 (each format's parser refuses it its own way)
        read_artifact(store, "asset")
    assert not marker.exists()


def test_an_object_array_holding_a_pickle_is_refused_without_running(tmp_path: Path):
    marker = tmp_path / "ran"
    header = {"format": "sid-platform/record", "version": 1, "root": {"$array": "a0"}}
    data = _npz(header, a0=np.array([Payload(marker)], dtype=object))
    with pytest.raises(ArtifactError, match="refusing"):
        decode(NPZ, data)
    assert not marker.exists()


def test_an_older_pickle_is_never_loaded_and_is_replaced(tmp_path: Path):
    marker = tmp_path / "ran"
    store = LocalBlobStore(tmp_path)
    store.write("user_sequences.pkl", pickle.dumps(Payload(marker)))
    with pytest.raises(ArtifactError, match="never loaded: rematerialize"):
        read_artifact(store, "user_sequences")
    assert not marker.exists()
    write_artifact(store, "user_sequences", samples()["user_sequences"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["user_sequences.npz"]


def test_a_rewrite_in_another_format_removes_the_old_file(tmp_path: Path):
    store = LocalBlobStore(tmp_path)
    write_artifact(store, "nested/value", {"a": 1})
    where = write_artifact(store, "nested/value", samples()["mixed"])
    assert Path(where) == tmp_path / "nested" / "value.npz"
    assert [p.name for p in (tmp_path / "nested").iterdir()] == ["value.npz"]
    assert_same(read_artifact(store, "nested/value"), samples()["mixed"])
    with pytest.raises(FileNotFoundError, match="nothing stored"):
        read_artifact(store, "missing")


def test_s3_and_local_files_share_the_codecs(tmp_path: Path):
    client = FakeS3()
    s3, local = S3BlobStore("bucket", "assets", client), LocalBlobStore(tmp_path)
    for name, value in samples().items():
        assert write_artifact(s3, name, value).startswith(f"s3://bucket/assets/{name}.")
        write_artifact(local, name, value)
        assert_same(read_artifact(s3, name), value, name)
    assert {key for _, key in client.objects} == {f"assets/{p.name}" for p in tmp_path.iterdir()}
