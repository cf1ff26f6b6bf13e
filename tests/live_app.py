"""Live metrics for service tests: a fake web app scraped every second by a real Prometheus.

Nothing is backfilled here (``prometheus_harness`` does that): :class:`FakeApp`
simulates the traffic of four versions of a web app in a background thread and
exposes it on ``/metrics`` with ``prometheus_client``; :class:`LivePrometheus`
runs a real ``prometheus`` that scrapes it once a second. An analysis started
against it judges data that is being written while it runs.

``v1-base``/``v1-canary`` are a healthy pair (the same distributions, different
draws); ``v2-canary`` is regressed against ``v2-base``: latency 1.8x, 5% of
requests answered 5xx instead of 0.1%, CPU 1.3x.

Typical use::

    with FakeApp() as app, LivePrometheus(app.target) as prom:
        prom.wait_for_samples(5)
        ...  # point the service at prom.url and use live_canary_config()
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from wsgiref.simple_server import WSGIServer

import numpy as np
import requests
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_harness import PrometheusError, PrometheusProcess, free_port, instant_query

__all__ = [
    "BUCKETS",
    "HEALTHY",
    "PROFILES",
    "QUERIES",
    "QUERY_CPU",
    "QUERY_ERRORS_PER_STEP",
    "QUERY_ERROR_RATIO",
    "QUERY_LATENCY_BUCKETS_PER_STEP",
    "QUERY_P50_LATENCY",
    "QUERY_P99_LATENCY",
    "QUERY_REQUESTS_PER_STEP",
    "REGRESSED",
    "SEQUENTIAL_QUERIES",
    "FakeApp",
    "Forwarder",
    "LivePrometheus",
    "TrafficProfile",
    "live_canary_config",
    "live_sequential_config",
]

# --------------------------------------------------------------------------------------------------
# The fake app
# --------------------------------------------------------------------------------------------------

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0)
"""Latency histogram buckets (seconds; ``+Inf`` is added by prometheus_client)."""


@dataclass(frozen=True)
class TrafficProfile:
    """How one version of the app behaves: log-normal latency, a 5xx share and a CPU level."""

    version: str
    latency_median_s: float = 0.05
    latency_sigma: float = 0.5
    error_share: float = 0.001
    cpu: float = 0.40


PROFILES: tuple[TrafficProfile, ...] = (
    TrafficProfile("v1-base"),
    TrafficProfile("v1-canary"),
    TrafficProfile("v2-base"),
    TrafficProfile("v2-canary", latency_median_s=0.05 * 1.8, error_share=0.05, cpu=0.40 * 1.3),
)
HEALTHY: tuple[str, str] = ("v1-base", "v1-canary")
REGRESSED: tuple[str, str] = ("v2-base", "v2-canary")


class FakeApp:
    """A fake web app: simulated traffic for each profile, exported on ``/metrics`` (a context manager).

    Every ``tick_s`` seconds a background thread serves a Poisson number of
    requests (mean ``requests_per_tick``) per version, draws their latencies
    and status codes from the version's profile with a seeded numpy generator,
    and records them in its own ``CollectorRegistry``:
    ``http_requests_total{version,code}``,
    ``http_request_duration_seconds{version}`` (buckets :data:`BUCKETS`) and
    ``process_cpu_utilization{version}``. ``/metrics`` is served on
    ``127.0.0.1`` on a port the kernel picks (:attr:`port`).

    The traffic is heavier than a small service's (2,000 requests per second
    per version by default) so that a 0.1% error share gives a steady error
    ratio over a 10 s rate window, not a handful of random events.
    """

    def __init__(
        self,
        profiles: Sequence[TrafficProfile] = PROFILES,
        *,
        tick_s: float = 0.1,
        requests_per_tick: int = 200,
        seed: int = 7,
    ) -> None:
        if tick_s <= 0 or requests_per_tick <= 0:
            raise ValueError("tick_s and requests_per_tick must be positive")
        self.profiles = tuple(profiles)
        self.tick_s = tick_s
        self.requests_per_tick = requests_per_tick
        self._rng = np.random.default_rng(seed)
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests",
            "HTTP requests by version and status code.",
            ["version", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency.",
            ["version"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.cpu = Gauge(
            "process_cpu_utilization", "CPU utilization (cores).", ["version"], registry=self.registry
        )
        for profile in self.profiles:  # every series exists from the first scrape on
            self.requests.labels(profile.version, "200")
            self.requests.labels(profile.version, "500")
            self.latency.labels(profile.version)
            self.cpu.labels(profile.version).set(profile.cpu)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: WSGIServer | None = None
        self._server_thread: threading.Thread | None = None
        self.ticks = 0
        self.port = 0

    @property
    def target(self) -> str:
        """``host:port`` for a Prometheus scrape config."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self) -> None:
        """Serve one tick's simulated requests for every version."""
        rng = self._rng
        for profile in self.profiles:
            n = int(rng.poisson(self.requests_per_tick))
            errors = int(rng.binomial(n, profile.error_share))
            child = self.latency.labels(profile.version)
            for value in rng.lognormal(math.log(profile.latency_median_s), profile.latency_sigma, n):
                child.observe(float(value))
            self.requests.labels(profile.version, "200").inc(n - errors)
            self.requests.labels(profile.version, "500").inc(errors)
            self.cpu.labels(profile.version).set(max(0.0, profile.cpu * (1.0 + rng.normal(0.0, 0.02))))
        self.ticks += 1

    def _loop(self) -> None:
        next_tick = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            next_tick += self.tick_s
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind (a slow machine): do not try to catch up in a burst
                next_tick = time.monotonic()
                delay = 0.0
            self._stop.wait(delay)

    def start(self) -> None:
        """Serve ``/metrics`` and start the traffic thread; no-op when running."""
        if self.running:
            return
        self._stop.clear()
        self._server, self._server_thread = start_http_server(0, addr="127.0.0.1", registry=self.registry)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._loop, name="fake-app-traffic", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the traffic and the HTTP server; idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._server_thread is not None:
            self._server_thread.join(timeout=10)
            self._server_thread = None

    def __enter__(self) -> FakeApp:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --------------------------------------------------------------------------------------------------
# Queries and the canary config a live analysis uses
# --------------------------------------------------------------------------------------------------

# With no 5xx in the window the numerator has no series and the plain division answers nothing;
# "or vector(0)" makes the ratio 0 instead of missing.
QUERY_ERROR_RATIO = (
    '(sum(rate(http_requests_total{version="${scope}",code=~"5.."}[10s])) or vector(0))'
    ' / sum(rate(http_requests_total{version="${scope}"}[10s]))'
)
QUERY_P99_LATENCY = (
    "histogram_quantile(0.99, sum by (le) ("
    'rate(http_request_duration_seconds_bucket{version="${scope}"}[10s])))'
)
QUERY_P50_LATENCY = (
    "histogram_quantile(0.5, sum by (le) ("
    'rate(http_request_duration_seconds_bucket{version="${scope}"}[10s])))'
)
QUERY_CPU = 'avg(process_cpu_utilization{version="${scope}"})'

# Per-step counts for the sequential judges, at a 1 s step over 1 s scrapes: idelta over a 2 s
# range is the increase between the last two scrapes, so consecutive steps count each request
# once (increase()[1s] would hold a single sample and answer nothing; a longer range would count
# every request at several steps).
QUERY_ERRORS_PER_STEP = 'sum(idelta(http_requests_total{version="${scope}",code=~"5.."}[2s]))'
QUERY_REQUESTS_PER_STEP = 'sum(idelta(http_requests_total{version="${scope}"}[2s]))'
QUERY_LATENCY_BUCKETS_PER_STEP = (
    'sum by (le) (idelta(http_request_duration_seconds_bucket{version="${scope}"}[2s]))'
)

SEQUENTIAL_QUERIES: dict[str, str] = {
    "errors": QUERY_ERRORS_PER_STEP,
    "requests": QUERY_REQUESTS_PER_STEP,
    "latency-buckets": QUERY_LATENCY_BUCKETS_PER_STEP,
    "cpu": QUERY_CPU,
}
"""The per-step queries of :func:`live_sequential_config` (a 1 s step)."""

QUERIES: dict[str, str] = {
    "error-ratio": QUERY_ERROR_RATIO,
    "p99-latency": QUERY_P99_LATENCY,
    "p50-latency": QUERY_P50_LATENCY,
    "cpu": QUERY_CPU,
}
"""The config's metric names and their queries (``${scope}`` is substituted by the engine)."""


def _mann_whitney(
    allowed_increase: float, critical_increase: float | None = None, min_effective: float | None = 0
) -> dict[str, Any]:
    effect: dict[str, Any] = {"measure": "meanRatio", "allowed_increase": allowed_increase}
    if critical_increase is not None:
        effect["critical_increase"] = critical_increase
    judge: dict[str, Any] = {"type": "mann-whitney", "effect_size": effect}
    if min_effective is not None:
        judge["min_effective"] = min_effective
    return judge


def live_canary_config(name: str = "live-web-app", *, min_effective: float | None = 0) -> dict[str, Any]:
    """A native canary config over the fake app's metrics: errors (critical), two latencies, CPU.

    Each metric names the smallest effect that counts (a mean ratio), as a
    production config does: points 2 s apart over 10 s rate windows overlap,
    so the Mann-Whitney interval alone is too eager on a healthy pair. The
    regressed pair's effects (errors 50x, latency 1.8x, CPU 1.3x) are far
    beyond them. Its judges are fixed ones, so its analyses run in fixed mode.

    Such overlapping points carry far fewer effectively independent ones than
    their count, and a native ``mann-whitney`` then calls its judgement
    inconclusive (``min_effective``, default 8 a side). The service tests that
    use this config check scheduling, restarts and verdicts, so by default it
    turns that rule off (``min_effective: 0``, Kayenta's judge); pass
    ``min_effective=None`` to keep the native default.
    """
    return {
        "name": name,
        "description": "Live fake web app scraped by Prometheus.",
        "thresholds": {"pass": 95, "marginal": 75},
        "groups": {"errors": 50, "latency": 30, "saturation": 20},
        "metrics": [
            {
                "name": "error-ratio",
                "kind": "errors",
                "critical": True,
                "query": QUERIES["error-ratio"],
                "judge": _mann_whitney(2.5, 2.5, min_effective),
            },
            {
                "name": "p99-latency",
                "kind": "latency",
                "query": QUERIES["p99-latency"],
                "judge": _mann_whitney(1.25, min_effective=min_effective),
            },
            {
                "name": "p50-latency",
                "kind": "latency",
                "query": QUERIES["p50-latency"],
                "judge": _mann_whitney(1.25, min_effective=min_effective),
            },
            {
                "name": "cpu",
                "kind": "saturation",
                "query": QUERIES["cpu"],
                "judge": _mann_whitney(1.15, min_effective=min_effective),
            },
        ],
    }


def live_sequential_config(name: str = "live-web-app-default-mode") -> dict[str, Any]:
    """A native config over the fake app's metrics that names no judge and no mode (1 s step).

    Every metric gets its kind's default: errors with a ``traffic_query`` are counts
    (``sequential-count``), latency from ``_bucket`` series without a percentile is a
    histogram (``sequential-histogram``, buckets from the ``le`` labels), CPU a series
    (``sequential-rank``). A live analysis of it runs in sequential mode by default.
    Errors and CPU name their relevant effects (an error-rate ratio of 1.5, theta 0.65),
    as a production config does: with the defaults (1.2, 0.56) a healthy one-minute
    canary's estimate lands past them by chance in about one run in five, and such a
    canary ends ``marginal`` ("data that point to a regression are no evidence for a pass").
    """
    return {
        "name": name,
        "description": "Live fake web app, judged with the default mode and judges.",
        "thresholds": {"pass": 95, "marginal": 75},
        "groups": {"errors": 50, "latency": 30, "saturation": 20},
        "metrics": [
            {
                "name": "errors",
                "kind": "errors",
                "query": SEQUENTIAL_QUERIES["errors"],
                "traffic_query": SEQUENTIAL_QUERIES["requests"],
                "judge": {"type": "sequential-count", "min_effect": 1.5},
            },
            {"name": "latency", "kind": "latency", "query": SEQUENTIAL_QUERIES["latency-buckets"]},
            {
                "name": "cpu",
                "kind": "saturation",
                "query": SEQUENTIAL_QUERIES["cpu"],
                "judge": {"type": "sequential-rank", "min_effect": 0.65},
            },
        ],
    }


# --------------------------------------------------------------------------------------------------
# A real Prometheus scraping the app
# --------------------------------------------------------------------------------------------------


class LivePrometheus(PrometheusProcess):
    """A real Prometheus scraping ``targets`` every second, as a context manager.

    On ``__enter__`` it writes a ``prometheus.yml`` (one job, ``job_name``,
    ``scrape_interval`` and ``evaluation_interval`` 1 s), starts ``prometheus``
    on a free loopback port with a temporary TSDB, waits for ``/-/ready``, then
    until every target has been scraped (``up == 1``). ``__exit__`` stops it
    (SIGTERM, then SIGKILL) and removes the temporary directory.
    """

    tmp_prefix = "kayenta-live-prometheus-"

    def __init__(
        self,
        targets: str | Sequence[str],
        *,
        job_name: str = "fake-app",
        ready_timeout: float = 30.0,
        prometheus: str = "prometheus",
    ) -> None:
        super().__init__(ready_timeout=ready_timeout, prometheus=prometheus)
        self.targets = [targets] if isinstance(targets, str) else list(targets)
        self.job_name = job_name
        self.started_at: float | None = None

    def log(self, lines: int = 40) -> str:
        """The last ``lines`` lines of Prometheus' log."""
        return super().log(lines)

    def _write_config(self) -> Path:
        targets = ", ".join(f'"{t}"' for t in self.targets)
        config = self.tmp_dir / "prometheus.yml"
        config.write_text(
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            f"  - job_name: {self.job_name}\n"
            "    scrape_interval: 1s\n"
            "    scrape_timeout: 1s\n"
            "    static_configs:\n"
            f"      - targets: [{targets}]\n",
            encoding="utf-8",
        )
        return config

    def start(self) -> None:
        """Start Prometheus and wait until it is ready and has scraped every target."""
        if self.running:
            return
        super().start()
        self.started_at = time.time()
        self.wait_for(f'min(up{{job="{self.job_name}"}})', lambda v: v == 1.0, what="every target up")

    def value(self, query: str) -> float | None:
        """The single value of an instant query now, or None when it answers no series."""
        result = instant_query(self.url, query, time.time(), timeout=5.0)
        if not result:
            return None
        if len(result) != 1:
            raise PrometheusError(f"{query}: expected one series, got {len(result)}")
        return float(result[0]["value"][1])

    def wait_for(
        self,
        query: str,
        condition: Callable[[float], bool] | None = None,
        *,
        what: str = "",
        timeout: float = 30.0,
    ) -> float:
        """Wait until ``query`` answers a value (meeting ``condition(value)`` if given); return it."""
        deadline = time.monotonic() + timeout
        last: object = "no series"
        while time.monotonic() < deadline:
            if not self.running:
                raise PrometheusError(f"prometheus exited; log tail:\n{self.log()}")
            try:
                value = self.value(query)
            except (PrometheusError, requests.RequestException) as exc:
                last = exc
            else:
                if value is not None and (condition is None or condition(value)):
                    return value
                last = value
            time.sleep(0.2)
        raise PrometheusError(
            f"waited {timeout:.0f} s for {what or query} (last: {last}); log tail:\n{self.log()}"
        )

    def wait_for_samples(self, count: int, *, timeout: float = 60.0) -> None:
        """Wait until each target has been scraped at least ``count`` times."""
        self.wait_for(
            f'min(count_over_time(up{{job="{self.job_name}"}}[10m]))',
            lambda v: v >= count,
            what=f"{count} scrapes of every target",
            timeout=timeout,
        )


# --------------------------------------------------------------------------------------------------
# A switchable way to Prometheus (to cut the service off it for a while)
# --------------------------------------------------------------------------------------------------


class Forwarder:
    """An HTTP forwarder on ``127.0.0.1:port`` to ``target`` that can be switched on and off.

    While off, nothing listens on the port (connections are refused, as when
    Prometheus is down or unreachable); while on, every GET and POST is passed
    to ``target`` and its answer passed back. The port is chosen once, so a
    client can be pointed at :attr:`url` before the forwarder is first on.
    """

    def __init__(self, target: str, port: int | None = None) -> None:
        self.target = target.rstrip("/")
        self.port = port if port is not None else free_port()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.forwarded = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def on(self) -> bool:
        return self._server is not None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forwarder = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "accept")}
                try:
                    answer = requests.request(
                        self.command, forwarder.target + self.path, data=body, headers=headers, timeout=30
                    )
                except requests.RequestException as exc:
                    self.send_error(502, f"forwarding failed: {type(exc).__name__}")
                    return
                forwarder.forwarded += 1
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("Content-Type", "application/json"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            do_GET = _forward  # noqa: N815 (http.server's naming)
            do_POST = _forward  # noqa: N815

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def switch_on(self) -> None:
        """Start forwarding; no-op when on."""
        if self._server is not None:
            return
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="forwarder", daemon=True)
        self._thread.start()

    def switch_off(self) -> None:
        """Stop forwarding and close the port; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
