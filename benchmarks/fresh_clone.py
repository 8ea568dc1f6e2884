"""What a new user waits for: clone the repository's HEAD into a temporary folder and time one command there, the
venv creation and install included, optionally with busy processes competing for the cores.

    .venv/bin/python -m benchmarks.fresh_clone --target demo                # make demo (Beauty, default profile)
    .venv/bin/python -m benchmarks.fresh_clone --target demo-test           # sid-platform demo --profile test
    .venv/bin/python -m benchmarks.fresh_clone --target demo-test --busy 1  # the same with one busy process

``demo-test`` installs first (timed apart) and then times the run alone. Writes
``benchmarks/results/fresh_clone_<target>[_busy<N>].json``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.results_file import write_result

ROOT = Path(__file__).resolve().parents[1]


def _spin() -> None:
    while True:
        pass


def _timed(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(
            f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    return wall, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", choices=("demo", "demo-test"), default="demo-test")
    parser.add_argument("--busy", type=int, default=0, help="busy processes competing for the cores during the run")
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in {"SID_HOME", "DAGSTER_HOME", "MLFLOW_TRACKING_URI"}}
    with tempfile.TemporaryDirectory() as tmp:
        clone = Path(tmp) / "clone"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        (clone.parent / "shared").symlink_to(ROOT.parent / "shared")  # the Makefile's ../shared/data
        spinners = [multiprocessing.Process(target=_spin, daemon=True) for _ in range(args.busy)]
        install = None
        if args.target == "demo-test":
            install, _ = _timed(["make", "install"], clone, env)
        for spinner in spinners:
            spinner.start()
        try:
            command = (
                ["make", "demo"] if args.target == "demo" else [".venv/bin/sid-platform", "demo", "--profile", "test"]
            )
            wall, output = _timed(command, clone, env)
        finally:
            for spinner in spinners:
                spinner.terminate()
    run = re.search(r"run (\S+) finished in (\d+)s", output)
    tables = output[output.find("== test users") :].split("\n\nsid-recommender")[0]
    print(tables)
    print(f"{' '.join(command)}: {wall:.0f}s wall" + (f" after {install:.0f}s of make install" if install else ""))
    name = f"fresh_clone_{args.target.replace('-', '_')}" + (f"_busy{args.busy}" if args.busy else "")
    path = write_result(
        name,
        {
            "target": " ".join(command),
            "busy_processes": args.busy,
            "install_seconds": round(install, 1) if install else None,
            "wall_seconds": round(wall, 1),
            "run_seconds": int(run.group(2)) if run else None,
            "run_id": run.group(1) if run else None,
            "output_tables": tables,
        },
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
