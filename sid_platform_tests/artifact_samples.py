"""One small value of every type the graph's assets output, and a deep comparison, for the storage tests.

``samples()`` must cover every type ``sid_platform/artifacts.py`` registers (a test checks it), so a new
registered type comes with a sample here.
"""

from __future__ import annotations

import dataclasses
import io
import math
from typing import Any

import faiss
import numpy as np
import polars as pl
import torch

from sid_platform.baselines.popularity import PopularityModel
from sid_platform.baselines.sasrec import SASRec, SASRecCheckpoint, SASRecConfig
from sid_platform.data.split import EvalCases, ItemVocab, UserSequences
from sid_platform.embed.cache import EmbedStats
from sid_platform.embed.pipeline import ItemEmbeddings
from sid_platform.reranking.dpo import RerankerCheckpoint, RerankerConfig
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.blend import ScoreBlend
from sid_platform.retrieval.candidates import ChannelReport
from sid_platform.retrieval.router import RouterCheckpoint, RouterConfig
from sid_platform.retrieval.stored import Candidates, StoredRetrieval
from sid_platform.semantic_ids import CodebooksCheckpoint, RQVAEConfig
from sid_platform.training import TrainingLog

ITEMS = ["a", "b", "c", "d", "e"]


def _log() -> TrainingLog:
    return TrainingLog(
        selection="valid_recall@10",
        epochs=[{"epoch": 0, "loss": 1.5, "valid_recall@10": 0.25}, {"epoch": 1, "loss": 1.0, "valid_recall@10": 0.5}],
        best_epoch=1,
        best_score=0.5,
        seconds=2.5,
        stopped_by="patience",
    )


def user_sequences() -> UserSequences:
    histories = [np.array([0, 1], dtype=np.int64), np.array([], dtype=np.int64)]  # an empty history too
    return UserSequences(
        train=[np.array([0, 1, 2], dtype=np.int64), np.array([3], dtype=np.int64), np.array([], dtype=np.int64)],
        valid=EvalCases(["u1", "u2"], histories, np.array([2, 4], dtype=np.int64)),
        test=EvalCases(["u1", "u2"], [np.array([0, 1, 2]), np.array([4])], np.array([3, 0], dtype=np.int64)),
        vocab=ItemVocab(list(ITEMS)),
    )


def _stored_retrieval(seed: int) -> StoredRetrieval:
    rng = np.random.default_rng(seed)
    return StoredRetrieval(
        user_ids=["u1", "u2"],
        targets=np.array([1, 2], dtype=np.int64),
        generative=np.array([[1, 2], [2, 3]], dtype=np.int64),
        hybrid_cosine=np.array([[2, 1], [3, 4]], dtype=np.int64),
        fused=np.array([[1, 2], [4, 3]], dtype=np.int64),
        items=np.array([1, 2, 3, 4], dtype=np.int32),
        offsets=np.array([0, 2, 4], dtype=np.int64),
        channels=np.array([1, 3, 2, 1], dtype=np.uint8),
        base_scores=rng.normal(size=4).astype(np.float32),
        log_probs=-rng.random(4).astype(np.float32),
        fused_scores=rng.normal(size=4).astype(np.float32),
        queries=rng.normal(size=(2, 3)).astype(np.float32),
        report=ChannelReport(0.5, 0.5, 1.0, 1.5, 1.0, 2.0),
        seconds={"beam": 0.25, "ann": 0.125},
    )


def candidates() -> Candidates:
    return Candidates(
        valid=_stored_retrieval(0),
        test=_stored_retrieval(1),
        keys=np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32),
        item_ids=list(ITEMS),
        tokenizer_version="cb-v1",
        k=2,
        exclude_history=False,
        prefix_channel={"depth": 2, "prefixes": 4},
        ann_channel={"kind": "flat", "top_n": 10},
    )


def ann_index(kind: str = "hnsw") -> AnnIndex:
    vectors = np.random.default_rng(3).normal(size=(64, 8)).astype(np.float32)
    return AnnIndex.build(vectors / np.linalg.norm(vectors, axis=1, keepdims=True), AnnIndexConfig(kind=kind, top_n=7))


def sasrec_checkpoint() -> SASRecCheckpoint:
    model = SASRec(len(ITEMS), SASRecConfig(hidden_dim=8, max_len=5, num_layers=1))
    return SASRecCheckpoint.of(model, ITEMS, _log())


def samples() -> dict[str, Any]:
    """Name → a value of each stored type (frames and JSON documents included)."""
    return {
        "frame": pl.DataFrame({"item_id": ITEMS, "categories": [["x", "y"], None, ["x"], [], ["z"]]}),
        "document": {"test": {"metrics": {"sasrec": {"recall@10": 0.25}}}, "users": [1, 2], "model": None},
        "popularity_model": PopularityModel(np.array([3.0, 1.0, 0.0, 2.0, 5.0])),
        "user_sequences": user_sequences(),
        "item_embeddings": ItemEmbeddings(
            item_ids=list(ITEMS),
            vectors=np.random.default_rng(4).normal(size=(5, 6)).astype(np.float32),
            parts=["minilm", "collaborative"],
            version="emb-v1",
            stats={"minilm": EmbedStats(5, 2, 3, 0.5, 6.0)},
        ),
        "candidates": candidates(),
        "faiss_index": ann_index(),
        "score_blend": ScoreBlend(0.4, (0.0, 0.4, 1.0), (0.08, 0.1, 0.09), (0.04, 0.05, 0.045), 7),
        "sasrec_model": sasrec_checkpoint(),
        "codebooks": CodebooksCheckpoint(
            "rqvae",
            RQVAEConfig(levels=2, codebook_size=4, latent_dim=3, hidden_dims=(8, 4)),
            {"codebooks": torch.randn(2, 4, 3)},
            "cb-v1",
            "emb-v1",
            _log(),
        ),
        "router_checkpoint": RouterCheckpoint(
            RouterConfig(), "cb-v1", list(ITEMS), [4, 4, 2], {"item_sids": torch.zeros(5, 3, dtype=torch.long)}, _log()
        ),
        "dpo_checkpoint": RerankerCheckpoint(
            RerankerConfig(),
            3,
            {"delta.weight": torch.randn(1, 6)},
            _log(),
            tokenizer_version="cb-v1",
            study=[{"variant": "bounded", "recall@10": 0.5}],
            curves={"bounded": [{"epoch": 0, "loss": 0.7}]},
            users={"train": 10, "held_out": 2},
            upstream={"utilization": [0.5, 0.75]},
        ),
        "mixed": {"shape": (2, 3), "counts": np.arange(4), 3: "int key", "score": np.float32(0.5)},
    }


def assert_same(stored: Any, original: Any, where: str = "value") -> None:
    """``stored`` equals ``original`` in type and content, all the way down (arrays: dtype and values)."""
    if isinstance(original, AnnIndex):
        assert isinstance(stored, AnnIndex), where
        assert (stored.kind, stored.top_n, stored.size) == (original.kind, original.top_n, original.size), where
        assert np.array_equal(faiss.serialize_index(stored.index), faiss.serialize_index(original.index)), where
        return
    assert type(stored) is type(original), f"{where}: {type(stored).__name__} != {type(original).__name__}"
    if dataclasses.is_dataclass(original):
        for field in dataclasses.fields(original):
            assert_same(getattr(stored, field.name), getattr(original, field.name), f"{where}.{field.name}")
    elif isinstance(original, np.ndarray):
        assert stored.dtype == original.dtype and stored.shape == original.shape, where
        assert np.array_equal(stored, original, equal_nan=original.dtype.kind == "f"), where
    elif isinstance(original, torch.Tensor):
        assert stored.dtype == original.dtype and torch.equal(stored, original), where
    elif isinstance(original, pl.DataFrame):
        assert stored.schema == original.schema and stored.equals(original), where
    elif isinstance(original, dict):
        assert set(stored) == set(original), where  # safetensors gives tensors back in name order
        for key in original:
            assert_same(stored[key], original[key], f"{where}[{key!r}]")
    elif isinstance(original, list | tuple):
        assert len(stored) == len(original), where
        for i, (a, b) in enumerate(zip(stored, original, strict=True)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(original, float) and math.isnan(original):
        assert math.isnan(stored), where
    else:
        assert stored == original, where


class FakeS3:
    """The four calls ``S3BlobStore`` makes, in memory."""

    class exceptions:
        class NoSuchKey(Exception):
            pass

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def get_object(self, Bucket: str, Key: str) -> dict:
        if (Bucket, Key) not in self.objects:
            raise self.exceptions.NoSuchKey(Key)
        return {"Body": io.BytesIO(self.objects[(Bucket, Key)])}

    def put_object(self, Bucket: str, Key: str, Body: bytes) -> None:
        self.objects[(Bucket, Key)] = bytes(Body)

    def delete_object(self, Bucket: str, Key: str) -> None:
        self.objects.pop((Bucket, Key), None)
