"""Run the main job (what ``make demo`` runs) and record the evaluation table, wall time and SASRec training.

    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.main_job --profile default
    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.main_job --exclude-history

Writes ``benchmarks/results/main_job_<profile>[_masked].json``.
"""

from __future__ import annotations

import argparse
import time

from benchmarks.results_file import write_result
from sid_platform.automation.run import run_main_job
from sid_platform.evaluation.report import metrics_table
from sid_platform.settings import PROFILES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=PROFILES, default="default")
    parser.add_argument("--exclude-history", action="store_true", help="mask items already in the history")
    args = parser.parse_args()
    extra = {"resources": {"evaluation_protocol": {"config": {"exclude_history": args.exclude_history}}}}
    started = time.perf_counter()
    result = run_main_job(args.profile, extra)
    wall = time.perf_counter() - started
    document = result.output_for_node("evaluation")
    sasrec_meta = {}
    for event in result.get_asset_materialization_events():
        if event.asset_key.to_user_string() == "sasrec_model":
            meta = event.materialization.metadata
            sasrec_meta = {
                k: meta[k].value
                for k in ("best_epoch", "epochs_run", "best_valid_recall@10", "train_seconds", "parameters")
            }
    print(metrics_table(document["test"]["metrics"]))
    print(f"wall time {wall:.0f}s; sasrec {sasrec_meta}")
    name = f"main_job_{args.profile}" + ("_masked" if args.exclude_history else "")
    path = write_result(
        name,
        {
            "wall_seconds": round(wall, 1),
            "run_id": result.run_id,
            "exclude_history": args.exclude_history,
            "test": document["test"],
            "valid": document["valid"],
            "sasrec_training": sasrec_meta,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
