"""Router training for a fixed number of steps on Beauty with 1 and 2 gloo processes: wall time and validation Recall@10.

    SID_DATA_DIR=../shared/data SID_HOME=<home of a default-profile main-job run> \\
        .venv/bin/python -m benchmarks.distributed_router --epochs 2

Each setting runs ``torchrun --standalone --nproc_per_node=N -m sid_platform.distributed_train router`` on the
assets that run stored (``user_sequences``, ``usid_table``, ``codebooks``, ``item_embeddings``), with the
``RouterConfig`` defaults, ``--epochs`` epochs and no patience, so every setting takes the same optimizer steps
over the same global batches (``batch_size`` sequences each; a replica takes its shard of each). Settings:
1 process with 1 and with 2 intra-op threads, 2 processes with 1 thread each (``SID_TORCH_THREADS``). Records the
wall time of the command, the trainer's own seconds, seconds per epoch, and the last epoch's validation Recall@10
(generative and cosine) beside the fused Recall@10 at the chosen fusion weight. Writes
``benchmarks/results/distributed_router.json``. It shows the path works on Beauty; it is not a scaling study.

Expected scaling, on paper (not measured: this machine has 2 cores). An epoch costs
``T = T_train / N + T_dup + T_comm + T_val``:

- ``T_train``: the forward and backward over the batch's positions (encoder, the per-level heads, the
  [positions x catalog] logits of the full-catalog softmax). It is split over the N replicas, since each holds
  1/N of every global batch, padded to the global batch's width.
- ``T_dup``: work every replica repeats each step: the item tokens of the whole catalog (about 12k Beauty items:
  embedding sums plus the content projection) that the full-catalog softmax needs, and the AdamW step over every
  parameter. It does not shrink with N.
- ``T_comm``: one gradient all-reduce per step over about a million parameters (the item-id embedding dominates),
  some 4 MB; over loopback gloo a few milliseconds per step, over a pod network tens of milliseconds (NCCL on GPUs
  is far faster). Larger ``batch_size`` amortizes it.
- ``T_val``: validation (beam search and cosine ranking of every validation user) runs on rank 0 alone while the
  others wait; it does not shrink with N (an Amdahl term; on Beauty it is a sizeable share of an epoch).

On this 2-core machine 2 single-threaded processes should about match 1 process with 2 threads (the same cores,
plus the duplicated catalog tokens and the all-reduce) and beat 1 process with 1 thread on the training part by
well under 2x. On N dedicated nodes of k cores the training part should approach N-fold until ``T_dup + T_comm``
per step reaches ``T_train / N``; with the default batch of 256 that happens at a few replicas, so a larger
global batch (and a rescaled learning rate) is the lever beyond that. Validation Recall@10 should agree between
settings within run-to-run noise: the same global batches and averaged gradients give the single process's steps,
and only dropout masks (drawn per replica) and float rounding differ.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.results_file import write_result
from sid_platform.artifacts import read_artifact
from sid_platform.retrieval.router import RouterConfig
from sid_platform.sequences import length_bucketed_batches
from sid_platform.settings import data_home
from sid_platform.storage import LocalBlobStore

SETTINGS = ({"processes": 1, "threads": 1}, {"processes": 1, "threads": 2}, {"processes": 2, "threads": 1})


def run_setting(processes: int, threads: int, epochs: int, assets: Path) -> dict:
    """One torchrun of the entry point; its log, wall time and figures."""
    with tempfile.TemporaryDirectory(prefix="distributed_router_") as out:
        torchrun = Path(sys.executable).with_name("torchrun")
        command = [str(torchrun), "--standalone", f"--nproc_per_node={processes}", "-m"]
        command += ["sid_platform.distributed_train", "router", "--out", out, "--assets", str(assets)]
        command += ["--config", json.dumps({"epochs": epochs, "patience": None})]
        env = {**os.environ, "SID_TORCH_THREADS": f"training={threads}", "OMP_NUM_THREADS": str(threads)}
        start = time.perf_counter()
        subprocess.run(command, env=env, check=True)
        wall = time.perf_counter() - start
        log = json.loads((Path(out) / "router_log.json").read_text())
    last = log["epochs"][-1]
    fused = log["chosen"]["valid_recall@10_by_fusion_weight"]
    weight = log["chosen"]["fusion_weight"]
    return {
        "processes": processes,
        "threads_per_process": threads,
        "wall_seconds": round(wall, 1),
        "train_seconds": round(log["seconds"], 1),
        "seconds_per_epoch": round(log["seconds"] / max(len(log["epochs"]), 1), 1),
        "epochs": len(log["epochs"]),
        "final_valid_recall@10_generative": last["valid_recall@10_generative"],
        "final_valid_recall@10_cosine": last["valid_recall@10_cosine"],
        "final_loss": last["loss"],
        "fusion_weight": weight,
        "final_valid_recall@10_fused": fused[f"{weight:g}"],
    }


def steps_per_epoch(assets: Path) -> int:
    """Optimizer steps per epoch: the global batches of the training sequences (the same in every setting)."""
    train = read_artifact(LocalBlobStore(assets), "user_sequences").train
    cfg = RouterConfig()
    lengths = np.asarray([min(len(s) - 1, cfg.max_len) for s in train if len(s) >= 2])
    return len(length_bucketed_batches(lengths, cfg.batch_size, np.random.default_rng(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs per setting (the fixed number of steps)")
    args = parser.parse_args()
    assets = data_home() / "assets"
    steps = steps_per_epoch(assets)
    rows = [run_setting(s["processes"], s["threads"], args.epochs, assets) for s in SETTINGS]
    for row in rows:
        print(row)
    path = write_result(
        "distributed_router",
        {
            "epochs": args.epochs,
            "steps": steps * args.epochs,
            "backend": "gloo",
            "settings": rows,
            "expected_scaling": __doc__.split("\n\n")[3:],
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
