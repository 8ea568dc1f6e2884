"""Latency and throughput of the HTTP service: ``sid-platform serve`` in its own process over the registry's
champion, real users' histories sent over keep-alive connections by 1, 4 and 16 clients.

    SID_DATA_DIR=../shared/data SID_HOME=<the home of a Beauty main-job run> \\
        .venv/bin/python -m benchmarks.http_latency [--ranking router_fused_dpo] [--name beauty_dpo]

Needs a registered champion in that home's tracking store (``--tracking-uri`` for another) and its stored
``data_splits``. Writes ``benchmarks/results/http_latency[_<name>].json``.

How, and why so:

- The service is the real command (``python -m sid_platform.cli serve``: uvicorn, one process) on a free loopback
  port, started with ``--precompute-users 0`` by default so that it does not rank every known user before it is
  ready; ``--ranking`` serves another ranking of the champion's bundle than the one its evaluation chose, to
  compare rankings on one bundle.
- A request is what a client sends for one user (batch 1): ``POST /recommend`` with ``{"history": [...], "k": 10}``,
  the history being a real user's items before their test item (``data_splits``), the last 50, from a seeded
  sample of users. The API's default ``explain`` (channels and scores, read off the ranking's own retrieval)
  stays on unless ``--no-explain``.
- Per concurrency level: that many client threads, each with its own keep-alive ``http.client`` connection,
  send their share of ``--warmup-requests``, then traffic for ``--seconds``. Latency is the client's: request
  written to body read. Throughput counts the 2xx answers over the measured window.
- The cache-hit row (only with ``--precompute-users N`` > 0): requests by known ``user_id`` alone, drawn among
  the first N users by id (the ones the service precomputes), at 1 client; ``cache_hits`` counts the answers
  that say ``"cache": "hit"``.
- The service's resident memory (VmRSS, /proc) once ready and at the end, with its peak (VmHWM).

Caveat: the clients are Python threads of this process and share the machine's cores with the service; at 16
clients the client side's own work adds to the latency measured, more so on a 2-core machine.
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from benchmarks.serving_load import wait_for_http
from sid_platform.artifacts import read_artifact
from sid_platform.loopback import free_port, stop
from sid_platform.registry import Tracking
from sid_platform.serving import RANKERS
from sid_platform.settings import data_home, torch_threads
from sid_platform.storage import LocalBlobStore
from sid_platform.threads import available_cores, threads_for

ROOT = Path(__file__).resolve().parents[1]
HISTORY_LENGTH = 50  # items per request: the tail of the user's history (the models read at most their max_len)
HEADERS = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Options:
    """What one benchmark run does; stored in the results beside the figures."""

    clients: tuple[int, ...] = (1, 4, 16)
    seconds: float = 20.0
    warmup_requests: int = 50
    users: int = 1000
    k: int = 10
    explain: bool = True
    precompute_users: int = 0
    ranking: str | None = None
    model: str = "sid-recommender"
    tracking_uri: str | None = None
    ready_timeout: float = 600.0
    seed: int = 0


def request_histories(splits: pl.DataFrame, users: int, seed: int, length: int = HISTORY_LENGTH) -> list[list[str]]:
    """A seeded sample of users with a test item: each one's items before it, oldest first, the last ``length``."""
    tested = splits.filter(pl.col("split") == "test").select("user_id")
    before = (
        splits.join(tested, on="user_id")
        .filter(pl.col("split") != "test")
        .sort(["user_id", "seq_index"])
        .group_by("user_id", maintain_order=True)
        .agg(pl.col("item_id").cast(pl.String).tail(length))
    )
    rows = before["item_id"].to_list()
    return random.Random(seed).sample(rows, min(users, len(rows)))


def precomputed_users(splits: pl.DataFrame, precomputed: int, users: int, seed: int) -> list[str]:
    """A seeded sample of the users the service precomputes: the first ``precomputed`` by id, as
    ``ServiceModel.precompute`` orders the bundle's ``user_histories`` (every user of ``data_splits``)."""
    known = sorted(splits["user_id"].cast(pl.String).unique().to_list())[:precomputed]
    return random.Random(seed).sample(known, min(users, len(known)))


def memory_mib(pid: int) -> dict[str, float | None]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MiB; None without /proc."""
    found: dict[str, float | None] = {"rss_mib": None, "peak_rss_mib": None}
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return found
    for line in lines:
        key, _, value = line.partition(":")
        name = {"VmRSS": "rss_mib", "VmHWM": "peak_rss_mib"}.get(key)
        if name is not None:
            found[name] = round(int(value.split()[0]) / 1024, 1)  # kB
    return found


@dataclass(frozen=True)
class Service:
    process: subprocess.Popen
    port: int
    command: list[str]
    ready: dict[str, Any]  # /readyz once ready: model_version, serving_model
    ready_seconds: float  # process start to ready


def service_command(options: Options, port: int) -> list[str]:
    """``sid-platform serve`` as this interpreter's module; the tracking store is SID_HOME's unless given."""
    command = [sys.executable, "-m", "sid_platform.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--model", options.model, "--precompute-users", str(options.precompute_users)]
    if options.tracking_uri is not None:
        command += ["--tracking-uri", options.tracking_uri]
    if options.ranking is not None:
        command += ["--ranking", options.ranking]
    return command


@contextmanager
def running_service(options: Options) -> Iterator[Service]:
    """The service started and ready (``/readyz`` 200), stopped on exit; its log is kept only to explain a failure."""
    port = free_port()
    command = service_command(options, port)
    with tempfile.TemporaryDirectory(prefix="http-latency-") as folder:
        log = Path(folder, "serve.log")
        started = time.perf_counter()
        with open(log, "w") as sink:
            process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
        try:
            try:
                body = wait_for_http(port, "/readyz", process, options.ready_timeout)
            except (RuntimeError, TimeoutError) as error:
                raise RuntimeError(f"the service was not ready: {error}\n{log.read_text()[-3000:]}") from None
            yield Service(process, port, command, json.loads(body), time.perf_counter() - started)
        finally:
            stop(process)


class _Client:
    """One keep-alive connection; a failed one is replaced, and counted as a connection error (status 0)."""

    def __init__(self, port: int, count_hits: bool) -> None:
        self.port, self.count_hits = port, count_hits
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.samples: list[tuple[int, float, bool]] = []  # status, milliseconds, a cache hit

    def send(self, body: bytes) -> tuple[int, float, bool]:
        started = time.perf_counter()
        try:
            self.connection.request("POST", "/recommend", body=body, headers=HEADERS)
            response = self.connection.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            return 0, (time.perf_counter() - started) * 1000, False
        ms = (time.perf_counter() - started) * 1000
        hit = self.count_hits and response.status == 200 and json.loads(data).get("cache") == "hit"
        return response.status, ms, hit


def measure(
    port: int, bodies: list[bytes], clients: int, seconds: float, warmup_requests: int, count_hits: bool = False
) -> dict[str, Any]:
    """``clients`` threads: their share of the warm-up, then (all together) traffic for ``seconds``; the figures."""
    window: dict[str, float] = {}
    barrier = threading.Barrier(clients, action=lambda: window.setdefault("start", time.perf_counter()))
    workers = [_Client(port, count_hits) for _ in range(clients)]
    warmup = -(-warmup_requests // clients)  # ceil: every client warms its own connection

    def traffic(number: int) -> None:
        client = workers[number]
        position = number * len(bodies) // clients  # each client walks the histories from its own place
        for _ in range(warmup):
            client.send(bodies[position % len(bodies)])
            position += 1
        barrier.wait(timeout=600)
        until = window["start"] + seconds
        while time.perf_counter() < until:
            client.samples.append(client.send(bodies[position % len(bodies)]))
            position += 1
        client.connection.close()

    threads = [threading.Thread(target=traffic, args=(number,)) for number in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - window["start"]
    figures = summarize([sample for client in workers for sample in client.samples], elapsed)
    if count_hits:
        figures["cache_hits"] = sum(hit for client in workers for _, _, hit in client.samples)
    return figures


def summarize(samples: list[tuple[int, float, bool]], seconds: float) -> dict[str, Any]:
    """Counts, throughput (2xx per second) and the latency of the 2xx answers in ms."""
    statuses = Counter(status for status, _, _ in samples)
    ok = np.array([ms for status, ms, _ in samples if 200 <= status < 300])
    latency: dict[str, float | None] = dict.fromkeys(("p50_ms", "p95_ms", "p99_ms", "max_ms", "mean_ms"))
    if len(ok):
        p50, p95, p99 = np.percentile(ok, [50, 95, 99])
        values = (p50, p95, p99, ok.max(), ok.mean())
        latency = {name: round(float(value), 2) for name, value in zip(latency, values, strict=True)}
    return {
        "requests": len(samples),
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(ok) / seconds, 1) if seconds > 0 else None,
        **latency,
        "non_2xx": sum(count for status, count in statuses.items() if status and not 200 <= status < 300),
        "connection_errors": statuses.get(0, 0),
        "statuses": {str(status): count for status, count in sorted(statuses.items())},
    }


def _line(level: dict[str, Any]) -> str:
    return (
        f"{level['load']}, {level['clients']} clients: {level['requests']} requests, {level['throughput_rps']} req/s, "
        f"p50 {level['p50_ms']} ms, p99 {level['p99_ms']} ms, non-2xx {level['non_2xx']}"
    )


def run(options: Options, on_line: Callable[[str], None] = print) -> dict[str, Any]:
    """Start the service, measure every level (and the cache-hit row), stop it; the results file's payload."""
    splits: pl.DataFrame = read_artifact(LocalBlobStore(data_home() / "assets"), "data_splits")
    histories = request_histories(splits, options.users, options.seed)
    extra = {} if options.explain else {"explain": False}
    bodies = [json.dumps({"history": history, "k": options.k, **extra}).encode() for history in histories]
    lengths = np.array([len(history) for history in histories])
    levels: list[dict[str, Any]] = []
    with running_service(options) as service:
        on_line(f"ready in {service.ready_seconds:.1f}s: {service.ready}")
        memory_ready = memory_mib(service.process.pid)
        for clients in options.clients:
            levels.append(
                {
                    "load": "history",
                    "clients": clients,
                    **measure(service.port, bodies, clients, options.seconds, options.warmup_requests),
                }
            )
            on_line(_line(levels[-1]))
        if options.precompute_users > 0:
            users = precomputed_users(splits, options.precompute_users, options.users, options.seed)
            by_user = [json.dumps({"user_id": user, "k": options.k}).encode() for user in users]
            figures = measure(service.port, by_user, 1, options.seconds, options.warmup_requests, count_hits=True)
            levels.append({"load": "cache_hit", "clients": 1, **figures})
            on_line(_line(levels[-1]))
        memory_end = memory_mib(service.process.pid)
        exited = service.process.poll()
    return {
        "served": {"model_version": service.ready.get("model_version"), "ranking": service.ready.get("serving_model")},
        "levels": levels,
        "memory": {"after_ready": memory_ready, "at_end": memory_end},
        "service_exited_during_run": exited is not None,
        "ready_seconds": round(service.ready_seconds, 1),
        "service_command": [Path(service.command[0]).name, *service.command[1:]],
        "tracking_uri": Tracking.resolve(options.tracking_uri).uri,
        "requests": {
            "users": len(histories),
            "history_items_mean": round(float(lengths.mean()), 1) if len(lengths) else None,
            "history_items_max": int(lengths.max()) if len(lengths) else None,
        },
        "threads": {
            "torch_intra_op": threads_for("serving"),  # use_threads("serving") in build_app, as this env sets it
            "override": torch_threads(),
            "available_cores": available_cores(),
            "http": "one uvicorn process and event loop; /recommend is a sync route, run in AnyIO's worker thread "
            "pool (40 threads by default)",
        },
        "options": asdict(options),
    }


def table(payload: dict[str, Any]) -> str:
    """The levels as a markdown table, and what was served."""
    lines = [
        "| load | clients | requests | req/s | p50 ms | p95 ms | p99 ms | max ms | non-2xx | connection errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for level in payload["levels"]:
        figures = [level[key] for key in ("requests", "throughput_rps", "p50_ms", "p95_ms", "p99_ms", "max_ms")]
        lines.append(
            f"| {level['load']} | {level['clients']} | {' | '.join(str(f) for f in figures)} "
            f"| {level['non_2xx']} | {level['connection_errors']} |"
        )
    served, memory = payload["served"], payload["memory"]
    lines.append(
        f"\nv{served['model_version']} serving {served['ranking']}; resident memory {memory['after_ready']['rss_mib']} "
        f"MiB when ready, {memory['at_end']['rss_mib']} MiB at the end (peak {memory['at_end']['peak_rss_mib']} MiB)"
    )
    return "\n".join(lines)


def _levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        levels = ()
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"expected client counts like 1,4,16, got {text!r}")
    return levels


def main() -> None:
    from benchmarks.results_file import write_result

    defaults = Options()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=_levels, default=defaults.clients, help="concurrency levels, e.g. 1,4,16")
    parser.add_argument("--seconds", type=float, default=defaults.seconds, help="measured traffic per level")
    parser.add_argument("--warmup-requests", type=int, default=defaults.warmup_requests, help="per level")
    parser.add_argument("--users", type=int, default=defaults.users, help="users whose histories are sent")
    parser.add_argument("--k", type=int, default=defaults.k)
    parser.add_argument("--no-explain", action="store_true", help='send "explain": false (no channels and scores)')
    parser.add_argument(
        "--precompute-users", type=int, default=defaults.precompute_users, help="> 0 adds the cache-hit row"
    )
    parser.add_argument("--ranking", choices=list(RANKERS), default=None, help="default: the evaluation's choice")
    parser.add_argument("--model", default=defaults.model, help="registered model name")
    parser.add_argument("--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else SID_HOME's")
    parser.add_argument("--ready-timeout", type=float, default=defaults.ready_timeout, help="seconds to /readyz")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--name", default="", help="suffix of the results file")
    args = parser.parse_args()
    options = Options(
        clients=args.clients,
        seconds=args.seconds,
        warmup_requests=args.warmup_requests,
        users=args.users,
        k=args.k,
        explain=not args.no_explain,
        precompute_users=args.precompute_users,
        ranking=args.ranking,
        model=args.model,
        tracking_uri=args.tracking_uri,
        ready_timeout=args.ready_timeout,
        seed=args.seed,
    )
    payload = run(options)
    print(table(payload))
    print(f"wrote {write_result('http_latency' + (f'_{args.name}' if args.name else ''), payload)}")


if __name__ == "__main__":
    main()
