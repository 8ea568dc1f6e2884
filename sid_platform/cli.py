"""``sid-platform``: the command line. ``demo`` runs the whole graph and prints the evaluation table."""

from __future__ import annotations

import argparse
import sys
import time

from sid_platform.settings import PROFILES


def _demo(args: argparse.Namespace) -> int:
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
    print(f"\nrun {result.run_id} finished in {elapsed:.0f}s; JSON under .sid_home/runs/{result.run_id}/")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sid-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize every asset and print the evaluation table")
    demo.add_argument("--profile", choices=PROFILES, default="default")
    demo.set_defaults(func=_demo)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
