"""Threads for large training batches: one Beauty SASRec epoch (the default profile's full-catalog softmax,
batches of 256 users) with 1 and 2 torch threads, idle and beside one competing process (a busy loop).

    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.training_threads --epochs 2

The test profile's tiny batches are measured by ``benchmarks/serving_threads.py``; this is the figure for
batches large enough that a second thread could pay. Writes ``benchmarks/results/training_threads.json``.
"""

from __future__ import annotations

import argparse
import os
import statistics
from dataclasses import replace
from typing import Any

from benchmarks.beauty import beauty_sequences
from benchmarks.results_file import write_result
from benchmarks.serving_threads import THREADS, competing_process
from sid_platform.baselines.sasrec import train_sasrec
from sid_platform.profiles import profile
from sid_platform.settings import TORCH_THREADS_ENV


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per setting (the median is kept)")
    args = parser.parse_args()
    sequences, interactions = beauty_sequences()
    cfg = replace(profile("default").sasrec_model, epochs=args.epochs, patience=None)
    figures: dict[str, Any] = {"interactions": interactions, "epochs_timed": args.epochs}
    for contended in (False, True):
        setting = "one_competing_process" if contended else "idle"
        with competing_process(contended):
            for threads in THREADS:
                os.environ[TORCH_THREADS_ENV] = f"training={threads}"  # train_with_early_stopping sets them
                _, log = train_sasrec(sequences.train, sequences.valid, len(sequences.vocab), cfg)
                ends = [0.0, *log.curve("seconds")]
                per_epoch = statistics.median(b - a for a, b in zip(ends, ends[1:], strict=False))
                figures[f"{setting}_{threads}_threads_s_per_epoch"] = round(per_epoch, 2)
                print(f"beauty sasrec epoch, {setting}, {threads} thread(s): {per_epoch:.2f}s", flush=True)
    os.environ.pop(TORCH_THREADS_ENV, None)
    print(f"wrote {write_result('training_threads', {'sasrec_training_beauty': figures})}")


if __name__ == "__main__":
    main()
