"""Load test of the served model over HTTP: MLflow's scoring server (``mlflow models serve``) on loopback in front
of the registry's champion, several clients for a fixed time, good and bad requests mixed. Counts server
errors (5xx, dropped connections) and crashes (the server process gone), and reports latency per request kind.

    SID_HOME=.sid_home .venv/bin/python -m benchmarks.serving_load --seconds 60 --clients 8

Needs a registered champion in the tracking store (``make demo`` or ``sid-platform demo --profile test``).
Writes ``benchmarks/results/serving_load[_<name>].json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import polars as pl

from benchmarks.results_file import write_result
from sid_platform.loopback import free_port, stop
from sid_platform.registry import Tracking
from sid_platform.settings import data_home

MODEL = "sid-recommender"


def wait_for_http(port: int, path: str, process: subprocess.Popen, seconds: float) -> bytes:
    """Poll ``GET path`` on loopback until it answers 200 (the body); a server still loading answers 503 or
    refuses the connection. ``RuntimeError`` when ``process`` exits first, ``TimeoutError`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with status {process.returncode} before {path} answered 200")
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status == 200:
                return body
        except (OSError, http.client.HTTPException):
            pass
        finally:
            connection.close()
        time.sleep(0.2)
    raise TimeoutError(f"{path} did not answer 200 within {seconds:.0f}s")


def _records(history: list[str], k: int | None = 10) -> bytes:
    body: dict = {"dataframe_records": [{"history": history}]}
    if k is not None:
        body["params"] = {"k": k}
    return json.dumps(body).encode()


def request_kinds(items: list[str], rng: random.Random) -> dict[str, tuple[str, bytes, bool]]:
    """name → (content type, body, whether the request is well-formed), drawn afresh for every request."""
    known = rng.sample(items, k=min(len(items), rng.randint(1, 20)))
    return {
        "good": ("application/json", _records(known), True),
        "good_k50": ("application/json", _records(known, 50), True),
        "some_unknown": ("application/json", _records([*known[:3], "no-such-item-1", "no-such-item-2"]), True),
        "all_unknown": ("application/json", _records(["no-such-item-1", "no-such-item-2"]), True),
        "empty_history": ("application/json", _records([]), True),
        "k_negative": ("application/json", _records(known, -1), False),
        "k_huge": ("application/json", _records(known, 10**9), False),
        "oversized_history": ("application/json", _records(rng.choices(items, k=5000)), True),
        "malformed_json": ("application/json", b'{"dataframe_records": [{"history": [', False),
        "wrong_column": ("application/json", json.dumps({"dataframe_records": [{"items": known}]}).encode(), False),
        "csv": ("text/csv", ("history\n" + " ".join(known) + "\n").encode(), False),
    }


# The share of each kind in the traffic: mostly good requests, every bad kind present.
MIX = {"good": 50, "good_k50": 10, "some_unknown": 8, "all_unknown": 4, "empty_history": 4, "k_negative": 4,
       "k_huge": 4, "oversized_history": 4, "malformed_json": 4, "wrong_column": 4, "csv": 4}  # fmt: skip


def _client(port: int, items: list[str], until: float, seed: int, out: list, lock: threading.Lock) -> None:
    rng = random.Random(seed)
    names, weights = list(MIX), list(MIX.values())
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    while time.monotonic() < until:
        name = rng.choices(names, weights)[0]
        content_type, body, _ = request_kinds(items, rng)[name]
        started = time.perf_counter()
        try:
            connection.request("POST", "/invocations", body=body, headers={"Content-Type": content_type})
            response = connection.getresponse()
            text = response.read().decode(errors="replace")
            status = response.status
        except (OSError, http.client.HTTPException) as error:
            status, text = 0, f"{type(error).__name__}: {error}"  # a dropped connection counts as a server error
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        with lock:
            out.append((name, status, (time.perf_counter() - started) * 1000, "Traceback" in text, text[:300]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="scoring server worker processes")
    parser.add_argument("--name", default="", help="suffix of the results file")
    args = parser.parse_args()

    tracking = Tracking.resolve()
    items = pl.read_parquet(data_home() / "assets" / "item_catalog.parquet")["item_id"].to_list()
    port = free_port()
    bin_dir = str(Path(sys.executable).parent)  # mlflow starts `uvicorn` from PATH: the venv's
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking.uri, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}
    server = subprocess.Popen(
        [Path(sys.executable).with_name("mlflow"), "models", "serve", "-m", f"models:/{MODEL}@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port), "--workers", str(args.workers)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        try:
            wait_for_http(port, "/ping", server, 300)
        except (RuntimeError, TimeoutError) as error:
            log = server.stderr.read()[-2000:] if server.poll() is not None else "(still running)"
            raise SystemExit(f"the scoring server did not answer /ping: {error}: {log}") from None
        out: list = []
        lock = threading.Lock()
        until = time.monotonic() + args.seconds
        clients = [
            threading.Thread(target=_client, args=(port, items, until, seed, out, lock)) for seed in range(args.clients)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join()
        crashed = server.poll() is not None
    finally:
        stop(server)

    rows, by_kind = [], defaultdict(list)
    for record in out:
        by_kind[record[0]].append(record)
    well_formed = {name: spec[2] for name, spec in request_kinds(items, random.Random(0)).items()}
    for name in MIX:
        records = by_kind.get(name, [])
        if not records:
            continue
        latencies = np.array([r[2] for r in records])
        statuses: dict[int, int] = defaultdict(int)
        for r in records:
            statuses[r[1]] += 1
        rows.append({
            "kind": name, "well_formed": well_formed[name], "requests": len(records),
            "statuses": dict(sorted(statuses.items())), "tracebacks_in_body": sum(r[3] for r in records),
            "p50_ms": round(float(np.percentile(latencies, 50)), 2), "p99_ms": round(float(np.percentile(latencies, 99)), 2),
            "example": records[0][4],
        })  # fmt: skip
    all_latencies = np.array([r[2] for r in out])
    server_errors = sum(1 for r in out if r[1] == 0 or r[1] >= 500)
    print("| kind | well-formed | requests | statuses | tracebacks in body | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        statuses = ", ".join(f"{code}: {count}" for code, count in row["statuses"].items())
        print(f"| {row['kind']} | {row['well_formed']} | {row['requests']} | {statuses} | {row['tracebacks_in_body']} "
              f"| {row['p50_ms']} | {row['p99_ms']} |")  # fmt: skip
    summary = {
        "seconds": args.seconds, "clients": args.clients, "workers": args.workers, "requests": len(out),
        "requests_per_second": round(len(out) / args.seconds, 1), "server_errors": server_errors, "crashed": crashed,
        "p50_ms": round(float(np.percentile(all_latencies, 50)), 2), "p99_ms": round(float(np.percentile(all_latencies, 99)), 2),
        "catalog_items": len(items), "tracking_uri": tracking.uri,
    }  # fmt: skip
    print(json.dumps(summary))
    path = write_result("serving_load" + (f"_{args.name}" if args.name else ""), {"summary": summary, "kinds": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
