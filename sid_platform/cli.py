"""``sid-platform``: the command line.

``demo`` runs the whole graph with a profile and prints the evaluation table and the promotion decision;
``run --config FILE.yaml`` does the same with a run config file (the YAML the Dagster launchpad takes)
layered over the profile, checked before anything runs; ``config`` prints a profile's full run config as
a starting point for such a file; ``rollback`` moves the registry's ``champion`` back to a former champion
(the same function as ``rollback_job``); ``add-items FILE`` gives new catalog rows Semantic IDs from the champion's
codebooks and registers the extended champion without retraining (the same function as ``cold_start_job``);
``serve`` starts the HTTP service over the champion.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sid_platform.profiles import PROFILE_NAMES
from sid_platform.serving import RANKERS
from sid_platform.settings import data_home

if TYPE_CHECKING:
    from dagster import ExecuteInProcessResult

# The exit status of a command refused before it ran (a missing file, bad YAML, an invalid config).
USAGE_ERROR = 2


class CommandError(Exception):
    """A mistake the user can fix (a config key, a file): printed as one line per problem, no traceback."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def _print_evaluation(document: dict) -> None:
    from sid_platform.assets.evaluation import channels_table
    from sid_platform.evaluation.report import metrics_table

    for split in ("test", "valid"):
        part = document[split]
        setting = "history excluded" if part["protocol"]["exclude_history"] else "history not masked"
        print(f"\n== {split} users: {part['users']}, items: {part['n_items']}, full-catalog ranking, {setting} ==")
        print(metrics_table(part["metrics"]))
        if "channels" in part:
            print(channels_table(part))
            costs = ", ".join(f"{k} {v:.2f}" for k, v in part["retrieval_ms_per_user"].items())
            print(f"retrieval cost, ms per user: {costs}")


def _report(result: ExecuteInProcessResult, elapsed: float) -> int:
    """What the run produced (the evaluation table and the promotion when they ran), or why it failed."""
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    if "evaluation" in materialized:
        _print_evaluation(result.output_for_node("evaluation"))
    if "model_promotion" in materialized:
        promotion = result.output_for_node("model_promotion")
        outcome = "promoted to champion" if promotion["promoted"] else "kept as challenger"
        print(
            f"\n{promotion['registered_model']} v{promotion['version']} {outcome}: {promotion['summary']}"
            f" (MLflow: {promotion['tracking_uri']})"
        )
    if not {"evaluation", "model_promotion"} & materialized:
        print(f"\nmaterialized: {', '.join(sorted(materialized)) or 'nothing'}")
    for check in result.get_asset_check_evaluations():
        if not check.passed:
            print(f"check {check.check_name} on {check.asset_key.to_user_string()} failed: {check.description}")
    for event in result.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        while error is not None and error.cause is not None:  # Dagster wraps the error the step raised
            error = error.cause
        message = " ".join((error.message if error else "unknown error").split())
        if error is not None and error.cls_name:  # "package.module.SourceError: the message": the message
            message = re.sub(rf"^[\w.]*\b{re.escape(error.cls_name)}: ", "", message)
        print(f"step {event.step_key} failed: {message}")
    status = "finished" if result.success else "FAILED"
    print(f"\nrun {result.run_id} {status} in {elapsed:.0f}s; JSON under {data_home() / 'runs' / result.run_id}/")
    if "evaluation" in materialized:
        print(f"run report: {result.asset_materializations_for_node('evaluation')[-1].metadata['report'].value}")
    return 0 if result.success else 1


def _execute(profile: str, extra: dict | None = None, assets: list[str] | None = None) -> int:
    from sid_platform.automation.run import run_main_job
    from sid_platform.automation.run_config import RunConfigError

    started = time.perf_counter()
    try:
        result = run_main_job(profile, extra, raise_on_error=False, assets=assets)
    except RunConfigError as error:
        raise CommandError(error.problems) from error
    return _report(result, time.perf_counter() - started)


def _demo(args: argparse.Namespace) -> int:
    return _execute(args.profile)


def _run(args: argparse.Namespace) -> int:
    from sid_platform.automation.run_config import RunConfigError, load_run_config_file, with_overrides

    try:
        extra = with_overrides(load_run_config_file(Path(args.config)), args.set or [])
    except RunConfigError as error:
        raise CommandError(error.problems) from error
    assets = [name.strip() for value in args.select or [] for name in value.split(",") if name.strip()]
    return _execute(args.profile, extra, assets or None)


def _config(args: argparse.Namespace) -> int:
    import yaml

    from sid_platform.automation.graph import graph_definitions
    from sid_platform.automation.run_config import full_run_config

    definitions = graph_definitions()
    config = full_run_config(definitions.resolve_job_def("main_job"), definitions, args.profile)
    print(
        f"# The run config of profile {args.profile!r} with every knob at its value (null = unset/automatic).\n"
        "# Keep what you change, delete the rest, and run: sid-platform run --config THIS_FILE.yaml"
    )
    print(yaml.safe_dump(config, sort_keys=False, width=1000), end="")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from sid_platform.registry import Tracking, champion, pinned_config, rollback

    try:
        tracking = Tracking.resolve(args.tracking_uri)
        source, target = rollback(tracking.client, args.model, args.to)
    except ValueError as error:  # a version that does not exist or was never champion: names the ones that do
        raise CommandError([f"rollback refused: {error}"]) from error
    except MlflowException as error:  # the registry itself (unreachable, refused): its first line, no traceback
        raise CommandError([f"rollback failed: {(error.message.strip().splitlines() or ['?'])[0]}"]) from error
    restored = champion(tracking.client, args.model)
    pinned = pinned_config(tracking, restored) if restored is not None else {}
    print(f"{args.model}: champion v{source} -> v{target} ({tracking.uri})")
    print(f"pinned: Dagster run {pinned.get('dagster_run_id')}, data {pinned.get('data', {}).get('fingerprint')}")
    return 0


def _add_items(args: argparse.Namespace) -> int:
    from mlflow.exceptions import MlflowException

    from sid_platform.data.files import DataNotFoundError
    from sid_platform.data.generic import load_items
    from sid_platform.registry import Tracking
    from sid_platform.registry.cold_start import register_new_items

    try:
        items, quarantine = load_items(Path(args.items), category_separator=args.category_separator)
    except (DataNotFoundError, ValueError) as error:
        raise CommandError([" ".join(str(error).split())]) from error
    if quarantine.height:
        print(f"{quarantine.height} rows of {args.items} could not be used, e.g. {quarantine.head(3).rows()}")
    try:
        released = register_new_items(
            Tracking.resolve(args.tracking_uri),
            args.model,
            items,
            from_version=args.from_version,
            promote=not args.no_promote,
            on_progress=print,
        )
    except ValueError as error:
        raise CommandError([f"add-items refused: {' '.join(str(error).split())}"]) from error
    except MlflowException as error:
        raise CommandError([f"add-items failed: {(error.message.strip().splitlines() or ['?'])[0]}"]) from error
    report = released.report
    where = (
        f"v{released.version} ({'champion' if released.promoted else 'not promoted'})"
        if released.version
        else "nothing"
    )
    print(
        f"{args.model}: {len(report.added)} new items added to v{released.source_version} -> {where}; "
        f"{len(report.skipped)} already known"
    )
    if released.version and not released.recommendable:
        print(f"note: the champion serves {released.serving}, which cannot rank new items; they are searchable")
    return 0


def _serve(args: argparse.Namespace) -> int:
    from sid_platform.service.server import ServiceSettings, serve

    if args.poll_seconds <= 0 or args.cache_k < 1 or (args.precompute_users is not None and args.precompute_users < 0):
        raise CommandError(["--poll-seconds must be positive, --cache-k at least 1, --precompute-users at least 0"])
    settings = ServiceSettings(
        registered_model=args.model,
        tracking_uri=args.tracking_uri,
        poll_seconds=args.poll_seconds,
        cache_k=args.cache_k,
        precompute_users=args.precompute_users,
        ranking=args.ranking,
        lookup=args.lookup,
        dynamodb_table=args.dynamodb_table,
        dynamodb_endpoint=args.dynamodb_endpoint,
        dynamodb_region=args.dynamodb_region,
        host=args.host,
        port=args.port,
    )
    serve(settings)
    return 0


def _serve_parser(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="the HTTP service (FastAPI + uvicorn) over the registry's champion")
    serve.add_argument("--host", default="127.0.0.1", help="interface to listen on (0.0.0.0 inside a container)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--model", default="sid-recommender", help="registered model name")
    serve.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else SQLite under SID_HOME")
    serve.add_argument("--poll-seconds", type=float, default=10.0, help="how often to check the champion alias")
    serve.add_argument("--cache-k", type=int, default=10, help="items precomputed per known user")
    serve.add_argument(
        "--precompute-users", type=int, default=None, help="precompute the first N known users (default: all)"
    )
    serve.add_argument(
        "--ranking",
        choices=list(RANKERS),
        default=None,
        help="serve this ranking of the champion's bundle, e.g. a canary (default: the one its evaluation chose)",
    )
    serve.add_argument("--lookup", choices=("memory", "dynamodb"), default="memory", help="item/prefix lookup store")
    serve.add_argument("--dynamodb-table", default="sid-usids")
    serve.add_argument("--dynamodb-endpoint", default=None, help="a local DynamoDB URL; default: AWS")
    serve.add_argument("--dynamodb-region", default=None)
    serve.set_defaults(func=_serve)


def build_parser() -> argparse.ArgumentParser:
    """Every subcommand and its flags (also read by the deploy tests, which check the manifests' arguments)."""
    parser = argparse.ArgumentParser(prog="sid-platform", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize every asset and print the evaluation table")
    demo.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    demo.set_defaults(func=_demo)
    run = sub.add_parser("run", help="materialize the graph with a run config file layered over a profile")
    run.add_argument("--config", required=True, metavar="FILE.yaml", help="a Dagster run config (ops:, resources:)")
    run.add_argument("--profile", choices=PROFILE_NAMES, default="default", help="the config the file is layered on")
    run.add_argument(
        "--select", action="append", metavar="ASSETS", help="only these assets (comma-separated) and their checks"
    )
    run.add_argument(
        "--set",
        action="append",
        metavar="KEY.PATH=VALUE",
        help="override one key of the file, e.g. resources.dataset.config.data_dir=/data (repeatable)",
    )
    run.set_defaults(func=_run)
    config = sub.add_parser("config", help="print a profile's full run config (YAML), a starting point for --config")
    config.add_argument("--profile", choices=PROFILE_NAMES, default="default")
    config.set_defaults(func=_config)
    back = sub.add_parser("rollback", help="move the registry's 'champion' alias back to a former champion")
    back.add_argument("--to", type=int, default=None, metavar="VERSION", help="default: the champion before")
    back.add_argument("--model", default="sid-recommender", help="registered model name")
    back.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else SQLite under SID_HOME")
    back.set_defaults(func=_rollback)
    add = sub.add_parser("add-items", help="new catalog rows into the champion without retraining (cold start)")
    add.add_argument("items", metavar="FILE", help="CSV, Parquet or JSON lines: item_id and the catalog's text fields")
    add.add_argument("--from-version", type=int, default=None, metavar="VERSION", help="default: the champion")
    add.add_argument("--no-promote", action="store_true", help="register the extension without making it champion")
    add.add_argument("--category-separator", default=">", help="splits a text categories column into a path")
    add.add_argument("--model", default="sid-recommender", help="registered model name")
    add.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else SQLite under SID_HOME")
    add.set_defaults(func=_add_items)
    _serve_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except CommandError as error:
        for problem in error.problems:
            print(f"sid-platform {args.command}: {problem}", file=sys.stderr)
        return USAGE_ERROR


if __name__ == "__main__":
    sys.exit(main())
