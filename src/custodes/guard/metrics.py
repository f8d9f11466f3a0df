"""Prometheus metrics of the guard proxy, in the text exposition format ``/metrics`` serves.

Built on ``prometheus_client``: one label-set update costs 1–3 µs, far below the proxy's
millisecond budget. Each proxy owns its registry, so several can live in one process (tests).
When ``PROMETHEUS_MULTIPROC_DIR`` is set before the workers start (``custodes guard serve
--workers N`` does it), every worker writes its samples there and ``/metrics`` on any worker
sums them all.

Labels take a small fixed set of values (routes, HTTP statuses, verdict actions, error codes):
never a model name, caller or path a client chose.
"""

from __future__ import annotations

import os
from typing import Any, Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["CONTENT_TYPE", "MULTIPROC_ENV", "ROUTES", "Metrics"]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
ROUTES: Final = frozenset(
    {
        "/v1/chat/completions",
        "/v1/models",
        "/v1/custodes/check",
        "/healthz",
        "/metrics",
    }
)
# Added latency is judged in milliseconds (targets: p50 ≤ 2 ms, p99 ≤ 10 ms).
_FAST_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_SLOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def _route(path: str) -> str:
    return path if path in ROUTES else "other"


class Metrics:
    """The proxy's counters and histograms; every method is cheap and thread-safe."""

    def __init__(self) -> None:
        self._multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self._requests = Counter(
            "custodes_guard_requests",
            "HTTP responses of the guard proxy, by route and status.",
            ["route", "status"],
            registry=reg,
        )
        self._duration = Histogram(
            "custodes_guard_request_duration_seconds",
            "Time from a request's arrival to its last byte, by route.",
            ["route"],
            buckets=_SLOW_BUCKETS,
            registry=reg,
        )
        self._overhead = Histogram(
            "custodes_guard_added_latency_seconds",
            "Time a chat completion spent in the proxy itself: the request's time minus the "
            "upstream's.",
            buckets=_FAST_BUCKETS,
            registry=reg,
        )
        self._verdicts = Counter(
            "custodes_guard_verdicts",
            "Guard verdicts, by stage (admission, validation) and action.",
            ["stage", "action"],
            registry=reg,
        )
        self._upstream = Counter(
            "custodes_guard_upstream_requests",
            "Requests sent to the upstream model, by outcome (an HTTP status or an error code).",
            ["outcome"],
            registry=reg,
        )
        self._upstream_duration = Histogram(
            "custodes_guard_upstream_duration_seconds",
            "Time the upstream model took to answer (to the end of a stream).",
            buckets=_SLOW_BUCKETS,
            registry=reg,
        )
        self._errors = Counter(
            "custodes_guard_errors",
            "Requests answered with an error the proxy raised, by code.",
            ["code"],
            registry=reg,
        )
        self._in_flight = Gauge(
            "custodes_guard_in_flight_requests",
            "Requests being served now.",
            registry=reg,
            multiprocess_mode="livesum",
        )
        # ``labels()`` checks and looks up its label set under a lock on every call; the label
        # sets are few and fixed, so each child is looked up once.
        self._children: dict[tuple[object, ...], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children.setdefault(key, metric.labels(*labels))
        return child

    def started(self) -> None:
        self._in_flight.inc()

    def finished(self, path: str, status: int, seconds: float) -> None:
        route = _route(path)
        self._in_flight.dec()
        self._child(self._requests, route, str(status)).inc()
        self._child(self._duration, route).observe(seconds)

    def overhead(self, seconds: float) -> None:
        self._overhead.observe(max(seconds, 0.0))

    def verdict(self, stage: str, action: str) -> None:
        self._child(self._verdicts, stage, action).inc()

    def upstream(self, outcome: str | int, seconds: float | None = None) -> None:
        self._child(self._upstream, str(outcome)).inc()
        if seconds is not None:
            self._upstream_duration.observe(seconds)

    def error(self, code: str) -> None:
        self._child(self._errors, code).inc()

    def exposition(self) -> bytes:
        """The Prometheus text format of every metric (all workers' when multiprocess)."""
        if self._multiprocess:
            from prometheus_client import multiprocess

            merged = CollectorRegistry()
            multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            return generate_latest(merged)
        return generate_latest(self.registry)
