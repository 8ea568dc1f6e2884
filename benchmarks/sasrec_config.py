"""Train SASRec on Beauty outside Dagster with config overrides, and report test metrics both ways.

    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.sasrec_config '{"num_negatives": 0}'

Used to compare SASRec configurations on the validation users before changing the defaults. Writes
``benchmarks/results/sasrec_<overrides>.json``.
"""

from __future__ import annotations

import json
import re
import sys

from benchmarks.results_file import write_result
from sid_platform.baselines.sasrec import SASRecConfig, train_sasrec
from sid_platform.data.p5 import load_p5
from sid_platform.data.split import ItemVocab, UserSequences, leave_one_out
from sid_platform.evaluation.metrics import rank_with_scorer, ranking_metrics
from sid_platform.settings import resolve_data_dir


def main() -> None:
    overrides = json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}
    data_dir = resolve_data_dir()
    if data_dir is None:
        raise SystemExit("set SID_DATA_DIR to the shared data folder")
    loaded = load_p5(data_dir, "beauty")
    vocab = ItemVocab.from_catalog(loaded.items)
    seqs = UserSequences.from_splits(leave_one_out(loaded.interactions), vocab)
    model, log = train_sasrec(seqs.train, seqs.valid, len(vocab), SASRecConfig(**overrides), on_epoch=print)
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
