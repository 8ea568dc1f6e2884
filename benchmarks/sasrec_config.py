"""Train SASRec on Beauty outside Dagster with config overrides, and report test metrics both ways.

    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.sasrec_config '{"num_negatives": 0}'

Used to compare SASRec configurations on the validation users before changing the defaults. Writes
``benchmarks/results/sasrec_<overrides>.json``.
"""

from __future__ import annotations

import json
import re
import sys

from benchmarks.beauty import beauty_sequences
from benchmarks.results_file import write_result
from sid_platform.baselines.sasrec import SASRecConfig, train_sasrec
from sid_platform.evaluation.metrics import rank_with_scorer, ranking_metrics


def main() -> None:
    overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    seqs, _ = beauty_sequences()
    model, log = train_sasrec(seqs.train, seqs.valid, len(seqs.vocab), SASRecConfig(**overrides), on_epoch=print)
    results = {}
    for masked in (False, True):
        ranked = rank_with_scorer(model.score, seqs.test.histories, 20, exclude_history=masked)
        results["test_masked" if masked else "test"] = ranked_metrics = ranking_metrics(ranked, seqs.test.targets)
        print("masked" if masked else "not masked", ranked_metrics)
    name = "sasrec_" + (
        re.sub(r"[^a-z0-9]+", "_", json.dumps(overrides, sort_keys=True).lower()).strip("_") or "defaults"
    )
    payload = {
        "overrides": overrides,
        "best_epoch": log.best_epoch,
        "train_seconds": log.seconds,
        "epochs": log.epochs,
        **results,
    }
    print(f"wrote {write_result(name, payload)}")


if __name__ == "__main__":
    main()
