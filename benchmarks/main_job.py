"""Run the main job (what ``make demo`` runs) and record the evaluation table, the retrieval channels and costs,
wall time, and the training of SASRec and the router.

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
from sid_platform.profiles import PROFILE_NAMES
from sid_platform.serving.evaluation import channels_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    parser.add_argument("--exclude-history", action="store_true", help="mask items already in the history")
    args = parser.parse_args()
    extra = {"resources": {"evaluation_protocol": {"config": {"exclude_history": args.exclude_history}}}}
    started = time.perf_counter()
    result = run_main_job(args.profile, extra)
    wall = time.perf_counter() - started
    document = result.output_for_node("evaluation")
    training: dict[str, dict] = {}
    for event in result.get_asset_materialization_events():
        name = event.asset_key.to_user_string()
        if name in ("sasrec_model", "router_checkpoint"):
            meta = event.materialization.metadata
            training[name] = {
                k: v.value for k, v in meta.items() if isinstance(v.value, int | float) or len(str(v.value)) < 200
            }
    test = document["test"]
    print(metrics_table(test["metrics"]))
    print(channels_table(test))
    print("retrieval ms per user:", {k: round(v, 3) for k, v in test["retrieval_ms_per_user"].items()})
    for name, meta in training.items():
        print(f"{name}: trained {meta.get('train_seconds')}s, best epoch {meta.get('best_epoch')}")
    print(f"wall time {wall:.0f}s")
    name = f"main_job_{args.profile}" + ("_masked" if args.exclude_history else "")
    path = write_result(
        name,
        {
            "wall_seconds": round(wall, 1),
            "run_id": result.run_id,
            "exclude_history": args.exclude_history,
            "test": document["test"],
            "valid": document["valid"],
            "training": training,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
