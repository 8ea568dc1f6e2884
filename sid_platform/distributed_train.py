"""Train the router from stored upstream assets, in one process or as ``torchrun`` replicas (the same command).

    torchrun --nproc_per_node=2 -m sid_platform.distributed_train router --out /tmp/router
    python -m sid_platform.distributed_train router --out /tmp/router --config '{"epochs": 2}'

Why an entry point of its own: a Dagster op runs in one process, so a multi-process training is a command the
cluster launches (a Kubernetes Job running torchrun, started by Dagster Pipes; see deploy/README.md). It reads
``user_sequences``, ``item_embeddings``, ``codebooks`` and ``usid_table`` as the IO manager stored them (local
files under ``--assets``, default ``$SID_HOME/assets``, or ``--s3-bucket``/``--s3-prefix``), trains through
``train_router`` (sid_platform/distributed.py makes each process one replica), and rank 0 alone writes
``router_checkpoint.safetensors`` and ``router_log.json`` under ``--out``, and the resume file a killed Job
continues from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import polars as pl

from sid_platform.artifacts import read_artifact
from sid_platform.data.split import UserSequences
from sid_platform.distributed import process_group
from sid_platform.retrieval.router import RouterCheckpoint, RouterConfig
from sid_platform.retrieval.training import train_router
from sid_platform.retrieval.trie import SidTrie, aligned_sids
from sid_platform.settings import data_home, s3_endpoint_url
from sid_platform.storage import BlobStore, LocalBlobStore, S3BlobStore, StoredFile


def asset_store(args: argparse.Namespace) -> BlobStore:
    """Where the IO manager keeps the assets: S3 when a bucket is given, else local files."""
    if args.s3_bucket:
        import boto3  # only the S3 path needs it

        return S3BlobStore(args.s3_bucket, args.s3_prefix, boto3.client("s3", endpoint_url=s3_endpoint_url()))
    return LocalBlobStore(Path(args.assets) if args.assets else data_home() / "assets")


def train_stored_router(
    store: BlobStore, cfg: RouterConfig, out: Path, exclude_history: bool = False, log_lines: bool = True
) -> dict:
    """Train on the stored assets; rank 0 writes the checkpoint and the log. Returns the log (every rank)."""
    sequences: UserSequences = read_artifact(store, "user_sequences")
    usid: pl.DataFrame = read_artifact(store, "usid_table")
    codebooks = read_artifact(store, "codebooks")
    embeddings = read_artifact(store, "item_embeddings")
    item_ids = sequences.vocab.item_ids
    trie = SidTrie.for_catalog(usid, item_ids, int(codebooks.codebook_size))
    content = np.asarray(embeddings.aligned(item_ids), dtype=np.float32) if cfg.use_content else None
    with process_group() as group:
        model, log = train_router(
            sequences.train,
            sequences.valid,
            trie,
            aligned_sids(usid, item_ids),
            cfg,
            content=content,
            exclude_history=exclude_history,
            resume=StoredFile(LocalBlobStore(out), f"router_{codebooks.version}.resume.pt"),
            on_progress=print if log_lines else None,
        )
        record = {"world_size": group.world_size, "config": cfg.__dict__, **log.as_dict()}
        if group.is_main:
            RouterCheckpoint.of(model, item_ids, codebooks.version, log).save(out / "router_checkpoint.safetensors")
            (out / "router_log.json").write_text(json.dumps(record, indent=1))
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sid_platform.distributed_train", description=__doc__.split("\n")[0])
    parser.add_argument("model", choices=["router"], help="what to train")
    parser.add_argument("--out", required=True, help="directory for the checkpoint, the log and the resume file")
    parser.add_argument("--config", default="{}", help="RouterConfig overrides as JSON, e.g. '{\"epochs\": 2}'")
    parser.add_argument("--assets", help="the local asset store (default: $SID_HOME/assets)")
    parser.add_argument("--s3-bucket", help="read the assets from this bucket instead")
    parser.add_argument("--s3-prefix", default="assets", help="the assets' key prefix in the bucket")
    parser.add_argument("--exclude-history", action="store_true", help="the evaluation protocol's exclusion")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = RouterConfig(**json.loads(args.config))
    train_stored_router(asset_store(args), cfg, out, args.exclude_history)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
