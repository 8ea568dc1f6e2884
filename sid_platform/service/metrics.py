"""Prometheus-style metrics of the service: requests, latency, the served champion, reloads, the cache.

Why a small wrapper: ``prometheus_client`` (a dependency) is used when it imports, with a registry of the app's
own (so two apps in one process, as in tests, never share counters); without it the same series are kept here
and written in the text exposition format, so ``/metrics`` never depends on an optional install.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence

LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    """The service's series; ``render()`` is the body of ``/metrics``."""

    def __init__(self, use_prometheus_client: bool = True) -> None:
        try:
            if not use_prometheus_client:
                raise ImportError("plain exposition asked for")
            import prometheus_client as prom
        except ImportError:
            self._prom = None
            self._plain = _PlainSeries()
            return
        self._prom = prom
        self.registry = prom.CollectorRegistry()
        self._requests = prom.Counter(
            "sid_requests", "HTTP requests answered", ["endpoint", "method", "status"], registry=self.registry
        )
        self._latency = prom.Histogram(
            "sid_request_seconds", "Request latency", ["endpoint"], buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self._version = prom.Gauge("sid_champion_version", "The champion version being served", registry=self.registry)
        self._reloads = prom.Counter("sid_reloads", "Champion reloads by outcome", ["outcome"], registry=self.registry)
        self._cache = prom.Counter(
            "sid_topk_cache", "Known-user top-K cache lookups", ["result"], registry=self.registry
        )

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        if self._prom is None:
            self._plain.request(endpoint, method, status, seconds)
            return
        self._requests.labels(endpoint, method, str(status)).inc()
        self._latency.labels(endpoint).observe(seconds)

    def champion(self, version: str) -> None:
        if self._prom is None:
            self._plain.version = float(version)
        else:
            self._version.set(float(version))

    def reload(self, outcome: str) -> None:
        if self._prom is None:
            self._plain.counters[("sid_reloads_total", (("outcome", outcome),))] += 1
        else:
            self._reloads.labels(outcome).inc()

    def cache(self, result: str) -> None:
        if self._prom is None:
            self._plain.counters[("sid_topk_cache_total", (("result", result),))] += 1
        else:
            self._cache.labels(result).inc()

    def render(self) -> bytes:
        if self._prom is None:
            return self._plain.render().encode()
        return self._prom.generate_latest(self.registry)


class _PlainSeries:
    """The same series without prometheus_client, in the text exposition format (version 0.0.4)."""

    def __init__(self) -> None:
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = defaultdict(float)
        self.buckets: dict[str, list[float]] = defaultdict(lambda: [0.0] * (len(LATENCY_BUCKETS) + 1))
        self.sums: dict[str, float] = defaultdict(float)
        self.version = float("nan")
        self._lock = threading.Lock()

    def request(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            labels = (("endpoint", endpoint), ("method", method), ("status", str(status)))
            self.counters[("sid_requests_total", labels)] += 1
            slot = next((i for i, bound in enumerate(LATENCY_BUCKETS) if seconds <= bound), len(LATENCY_BUCKETS))
            self.buckets[endpoint][slot] += 1
            self.sums[endpoint] += seconds

    def render(self) -> str:
        lines = ["# TYPE sid_champion_version gauge", f"sid_champion_version {self.version}"]
        with self._lock:
            names = sorted({name for name, _ in self.counters})
            for name in names:
                lines.append(f"# TYPE {name} counter")
                lines += [
                    f"{n}{_labels(labels)} {value}" for (n, labels), value in sorted(self.counters.items()) if n == name
                ]
            lines.append("# TYPE sid_request_seconds histogram")
            for endpoint, counts in sorted(self.buckets.items()):
                total = 0.0
                for bound, count in zip((*map(str, LATENCY_BUCKETS), "+Inf"), counts, strict=True):
                    total += count
                    lines.append(
                        f"sid_request_seconds_bucket{_labels((('endpoint', endpoint), ('le', bound)))} {total}"
                    )
                lines.append(f"sid_request_seconds_count{_labels((('endpoint', endpoint),))} {total}")
                lines.append(f"sid_request_seconds_sum{_labels((('endpoint', endpoint),))} {self.sums[endpoint]}")
        return "\n".join(lines) + "\n"


def _labels(pairs: Sequence[tuple[str, str]]) -> str:
    escaped = (
        f'{key}="{value.replace(chr(92), chr(92) * 2).replace(chr(34), chr(92) + chr(34))}"' for key, value in pairs
    )
    return "{" + ",".join(escaped) + "}"
