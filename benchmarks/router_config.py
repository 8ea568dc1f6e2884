"""Train the router on stored upstream assets with config overrides; report validation and test figures.

    SID_DATA_DIR=../shared/data SID_HOME=<home of a main-job run> \
        .venv/bin/python -m benchmarks.router_config '{"dropout": 0.5}'

Reads ``data_splits``, ``item_catalog``, ``item_embeddings``, ``codebooks`` and ``usid_table`` as a main-job
run stored them (so every configuration sees the same Semantic IDs), trains with ``RouterConfig`` defaults
plus the overrides, and measures both rankings on the test users with the same code as the evaluation
asset. Used to compare configurations before changing the defaults. Writes
``benchmarks/results/router_<overrides>.json``.
"""

from __future__ import annotations

import json
import re
import sys

import polars as pl
import torch

from benchmarks.results_file import write_result
from sid_platform.artifacts import read_artifact
from sid_platform.data.split import ItemVocab, UserSequences
from sid_platform.evaluation.metrics import ranking_metrics
from sid_platform.retrieval.ann import AnnIndex, AnnIndexConfig
from sid_platform.retrieval.candidates import ChannelReport
from sid_platform.retrieval.pipeline import retrieve
from sid_platform.retrieval.router import RouterConfig
from sid_platform.retrieval.training import train_router
from sid_platform.retrieval.trie import SidTrie, aligned_sids
from sid_platform.settings import data_home
from sid_platform.storage import LocalBlobStore


def main() -> None:
    overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    assets = LocalBlobStore(data_home() / "assets")  # read as the IO manager stored them; nothing is unpickled
    splits: pl.DataFrame = read_artifact(assets, "data_splits")
    catalog: pl.DataFrame = read_artifact(assets, "item_catalog")
    usid: pl.DataFrame = read_artifact(assets, "usid_table")
    embeddings = read_artifact(assets, "item_embeddings")
    codebooks = read_artifact(assets, "codebooks")
    vocab = ItemVocab.from_catalog(catalog)
    seqs = UserSequences.from_splits(splits, vocab)
    sids = aligned_sids(usid, vocab.item_ids)
    trie = SidTrie.for_catalog(usid, vocab.item_ids, codebooks.codebook_size)
    content = embeddings.aligned(vocab.item_ids)
    cfg = RouterConfig(**overrides)
    model, log = train_router(seqs.train, seqs.valid, trie, sids, cfg, content=content, on_epoch=print)
    with torch.no_grad():
        index = AnnIndex.build(model.item_keys().numpy(), AnnIndexConfig())
    found = retrieve(model, trie, index, seqs.test.histories, 20, index.top_n)
    test = {
        "router_generative": ranking_metrics(found.generative, seqs.test.targets),
        "router_hybrid_cosine": ranking_metrics(found.hybrid_cosine, seqs.test.targets),
    }
    channels = ChannelReport.measure(found.prefix, found.ann, found.candidates, seqs.test.targets).as_dict()
    for name, metrics in test.items():
        print(name, {k: round(v, 4) for k, v in metrics.items()})
    print(channels)
    name = "router_" + (
        re.sub(r"[^a-z0-9]+", "_", json.dumps(overrides, sort_keys=True).lower()).strip("_") or "defaults"
    )
    best = log.best
    payload = {
        "overrides": overrides,
        "config": cfg.__dict__,
        "tokenizer_version": codebooks.version,
        "best_epoch": log.best_epoch,
        "best_valid": {k: v for k, v in best.items() if k.startswith("valid")},
        "train_seconds": log.seconds,
        "stopped_by": log.stopped_by,
        "epochs": log.epochs,
        "test": test,
        "channels": channels,
    }
    print(f"wrote {write_result(name, payload)}")


if __name__ == "__main__":
    main()
