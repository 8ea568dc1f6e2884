"""``sid-platform``: the command line.

``demo`` runs the whole graph and prints the evaluation table and the promotion decision; ``rollback``
moves the registry's ``champion`` back to a former champion (the same function as ``rollback_job``).
"""

from __future__ import annotations

import argparse
import sys
import time

from sid_platform.profiles import PROFILE_NAMES


def _demo(args: argparse.Namespace) -> int:
    from sid_platform.assets.evaluation import channels_table
    from sid_platform.automation.run import run_main_job
    from sid_platform.evaluation.report import metrics_table

    started = time.perf_counter()
    result = run_main_job(args.profile)
    document = result.output_for_node("evaluation")
    elapsed = time.perf_counter() - started
    for split in ("test", "valid"):
        part = document[split]
        setting = "history excluded" if part["protocol"]["exclude_history"] else "history not masked"
        print(f"\n== {split} users: {part['users']}, items: {part['n_items']}, full-catalog ranking, {setting} ==")
        print(metrics_table(part["metrics"]))
        if "channels" in part:
            print(channels_table(part))
            costs = ", ".join(f"{k} {v:.2f}" for k, v in part["retrieval_ms_per_user"].items())
            print(f"retrieval cost, ms per user: {costs}")
    promotion = result.output_for_node("model_promotion")
    outcome = "promoted to champion" if promotion["promoted"] else "kept as challenger"
    print(
        f"\n{promotion['registered_model']} v{promotion['version']} {outcome}: {promotion['summary']}"
        f" (MLflow: {promotion['tracking_uri']})"
    )
    print(f"\nrun {result.run_id} finished in {elapsed:.0f}s; JSON under .sid_home/runs/{result.run_id}/")
    print(f"run report: {result.asset_materializations_for_node('evaluation')[-1].metadata['report'].value}")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from sid_platform.registry import Tracking, champion, pinned_config, rollback

    tracking = Tracking.resolve(args.tracking_uri)
    try:
        source, target = rollback(tracking.client, args.model, args.to)
    except ValueError as error:
        raise SystemExit(f"rollback refused: {error}") from error
    restored = champion(tracking.client, args.model)
    pinned = pinned_config(tracking, restored) if restored is not None else {}
    print(f"{args.model}: champion v{source} -> v{target} ({tracking.uri})")
    print(f"pinned: Dagster run {pinned.get('dagster_run_id')}, data {pinned.get('data', {}).get('fingerprint')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sid-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize every asset and print the evaluation table")
    demo.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    demo.set_defaults(func=_demo)
    back = sub.add_parser("rollback", help="move the registry's 'champion' alias back to a former champion")
    back.add_argument("--to", type=int, default=None, metavar="VERSION", help="default: the champion before")
    back.add_argument("--model", default="sid-recommender", help="registered model name")
    back.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else SQLite under SID_HOME")
    back.set_defaults(func=_rollback)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
