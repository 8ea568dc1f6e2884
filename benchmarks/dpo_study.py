"""The bounded-DPO study on stored upstream assets: materializes ``dpo_checkpoint`` and ``evaluation`` (and
``model_promotion``) in one Dagster run, reading the router, index and data from the asset storage of an
earlier main-job run, then prints the study table and writes ``benchmarks/results/dpo_<profile>.json``.

    SID_DATA_DIR=../shared/data SID_HOME=<home of a main-job run> .venv/bin/python -m benchmarks.dpo_study
"""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict

from benchmarks.results_file import write_result
from sid_platform.automation.run import run_main_job
from sid_platform.evaluation.report import metrics_table
from sid_platform.profiles import PROFILE_NAMES

ASSETS = ["dpo_checkpoint", "evaluation", "model_promotion"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    args = parser.parse_args()
    started = time.perf_counter()
    result = run_main_job(args.profile, assets=ASSETS)
    wall = time.perf_counter() - started
    checkpoint = result.output_for_node("dpo_checkpoint")
    document = result.output_for_node("evaluation")
    meta = next(
        e.materialization.metadata
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "dpo_checkpoint"
    )
    print(meta["study"].value)
    print(metrics_table(document["test"]["metrics"]))
    print(f"wall time {wall:.0f}s")
    path = write_result(
        f"dpo_{args.profile}",
        {
            "wall_seconds": round(wall, 1),
            "run_id": result.run_id,
            "reranker_config": asdict(checkpoint.config),
            "study": checkpoint.study,
            "upstream": checkpoint.upstream,
            "preference_curves": checkpoint.curves,
            "users": checkpoint.users,
            "test": document["test"],
            "valid": document["valid"],
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
