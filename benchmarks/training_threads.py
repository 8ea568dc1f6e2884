"""Threads for large training batches: one Beauty SASRec epoch (the default profile's full-catalog softmax,
batches of 256 users) with 1 and 2 torch threads, idle and beside one competing process (a busy loop).

    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.training_threads --epochs 2

The test profile's tiny batches are measured by ``benchmarks/serving_threads.py``; this is the figure for
batches large enough that a second thread could pay. Writes ``benchmarks/results/training_threads.json``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from typing import Any

from benchmarks.beauty import beauty_sequences
from benchmarks.results_file import write_result
from benchmarks.serving_threads import sasrec_epoch_seconds
from sid_platform.profiles import profile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per setting (the median is kept)")
    args = parser.parse_args()
    sequences, interactions = beauty_sequences()
    cfg = replace(profile("default").sasrec_model, epochs=args.epochs, patience=None)
    figures: dict[str, Any] = {"interactions": interactions, "epochs_timed": args.epochs}
    figures |= sasrec_epoch_seconds(sequences, cfg, "beauty sasrec epoch", digits=2)
    print(f"wrote {write_result('training_threads', {'sasrec_training_beauty': figures})}")


if __name__ == "__main__":
    main()
