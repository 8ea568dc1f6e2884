"""Run the main job (what ``make demo`` runs) and record the evaluation table, the retrieval channels and costs,
wall time, the training of SASRec and the router, the serving model chosen on validation, and the candidate
curve (per channel setting: candidates per user, coverage, and the fused Recall@10 over the candidates against
the same score over the full catalog) on a sample of validation users.

    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.main_job --profile default
    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.main_job --exclude-history
    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.main_job --config examples/sports.yaml
    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.main_job --select candidates,evaluation
    SID_DATA_DIR=../shared/data .venv/bin/python -m benchmarks.main_job --select score_blend,evaluation --name blend

``--select`` rebuilds only those assets from the stored run's inputs (no training): the evaluation and its costs
measured again at the current commit on the same models; it skips the candidate curve and adds ``_reevaluated``
to the file name.

Writes ``benchmarks/results/main_job_<profile>[_<config file's stem>][_masked][_reevaluated][_<name>].json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from benchmarks.results_file import write_result
from sid_platform.automation.run import run_main_job
from sid_platform.automation.run_config import load_run_config_file, merge
from sid_platform.data.split import EvalCases
from sid_platform.evaluation.report import markdown_table, metrics_table
from sid_platform.profiles import PROFILE_NAMES
from sid_platform.retrieval.curve import candidate_curve
from sid_platform.serving import load_codebooks, load_router
from sid_platform.serving.evaluation import channels_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    parser.add_argument("--exclude-history", action="store_true", help="mask items already in the history")
    parser.add_argument("--curve-users", type=int, default=2000, help="validation users the candidate curve scores")
    parser.add_argument("--config", type=Path, help="a run config file over the profile (e.g. examples/sports.yaml)")
    parser.add_argument("--select", help="comma-separated assets to rebuild from the stored run (no training)")
    parser.add_argument("--name", help="a suffix for the result file (e.g. what changed since the stored run)")
    args = parser.parse_args()
    selected = [name.strip() for name in args.select.split(",")] if args.select else None
    extra = load_run_config_file(args.config) if args.config else {}
    extra = merge(extra, {"resources": {"evaluation_protocol": {"config": {"exclude_history": args.exclude_history}}}})
    started = time.perf_counter()
    result = run_main_job(args.profile, extra, assets=selected)
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
    print("serving:", document["serving"])
    curve_started = time.perf_counter()
    curve = validation_curve(result, args.curve_users) if selected is None else []
    if curve:
        print(markdown_table(list(curve[0]), [tuple(point.values()) for point in curve]))
    name = f"main_job_{args.profile}" + (f"_{args.config.stem}" if args.config else "")
    name += ("_masked" if args.exclude_history else "") + ("_reevaluated" if selected else "")
    name += f"_{args.name}" if args.name else ""
    blend = result.output_for_node("score_blend") if selected is None or "score_blend" in selected else None
    path = write_result(
        name,
        {
            "wall_seconds": round(wall, 1),
            "run_id": result.run_id,
            "exclude_history": args.exclude_history,
            "config": str(args.config) if args.config else None,
            "selected_assets": selected,
            "test": document["test"],
            "valid": document["valid"],
            "training": training,
            "serving": document["serving"],
            "score_blend": dataclasses.asdict(blend) if blend is not None else None,
            "candidate_curve": {
                "users": "first validation users, in user order",
                "n_users": args.curve_users,
                "seconds": round(time.perf_counter() - curve_started, 1),
                "points": curve,
            },
        },
    )
    print(f"wrote {path}")


def validation_curve(result, users: int) -> list[dict]:
    """The candidate curve of the run's router on its first ``users`` validation users."""
    router = load_router(result.output_for_node("router_checkpoint"))
    codebooks = load_codebooks(result.output_for_node("codebooks"))
    trie = codebooks.trie(result.output_for_node("usid_table"), router.item_ids)
    valid = result.output_for_node("user_sequences").valid
    sample = EvalCases(valid.user_ids[:users], valid.histories[:users], valid.targets[:users])
    return [point.as_dict() for point in candidate_curve(router.model, trie, sample)]


if __name__ == "__main__":
    main()
