"""A real-Prometheus test harness: synthetic canary data, backfilled with promtool, served by Prometheus.

No mocks. The data is written as OpenMetrics text, turned into TSDB blocks by
``promtool tsdb create-blocks-from openmetrics`` and served by a real
``prometheus`` process listening on a free loopback port.

Typical use (the session fixture in conftest does the equivalent)::

    ensure_prometheus()
    start = default_start()
    with PrometheusServer(canary_dataset(start)) as prom:
        rows = query_range(prom.url, for_scope(QUERY_P99_LATENCY, "v1-base"), start + 120, start + 3600, 30)

The data must lie well in the past (``default_start`` puts it 5-6 hours before
now): backfilled blocks that overlap the time range of Prometheus' head block
are a problem, and a retention of 100 years keeps Prometheus from deleting them.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, Self

import numpy as np
import pytest
import requests

__all__ = [
    "BUCKETS",
    "HEALTHY_PAIR",
    "QUERIES",
    "QUERY_CPU",
    "QUERY_ERROR_RATIO",
    "QUERY_P50_LATENCY",
    "QUERY_P99_LATENCY",
    "QUERY_REQUEST_RATE",
    "REGRESSED_PAIR",
    "VERSIONS",
    "MetricFamily",
    "PrometheusError",
    "PrometheusProcess",
    "PrometheusServer",
    "Sample",
    "VersionProfile",
    "canary_dataset",
    "dataset_window",
    "default_start",
    "ensure_prometheus",
    "for_scope",
    "free_port",
    "instant_query",
    "query_range",
    "render_openmetrics",
    "write_openmetrics",
]

# --------------------------------------------------------------------------------------------------
# Queries a test config uses. ``${scope}`` is substituted (and escaped) by the engine, not here.
# --------------------------------------------------------------------------------------------------

QUERY_ERROR_RATIO = (
    'sum(rate(http_requests_total{version="${scope}",code=~"5.."}[1m]))'
    ' / sum(rate(http_requests_total{version="${scope}"}[1m]))'
)
QUERY_P99_LATENCY = (
    "histogram_quantile(0.99, sum by (le) ("
    'rate(http_request_duration_seconds_bucket{version="${scope}"}[1m])))'
)
QUERY_P50_LATENCY = (
    "histogram_quantile(0.5, sum by (le) ("
    'rate(http_request_duration_seconds_bucket{version="${scope}"}[1m])))'
)
QUERY_CPU = 'avg(process_cpu_utilization{version="${scope}"})'
QUERY_REQUEST_RATE = 'sum(rate(http_requests_total{version="${scope}"}[1m]))'

QUERIES: dict[str, str] = {
    "error-ratio": QUERY_ERROR_RATIO,
    "p99-latency": QUERY_P99_LATENCY,
    "p50-latency": QUERY_P50_LATENCY,
    "cpu": QUERY_CPU,
    "request-rate": QUERY_REQUEST_RATE,
}


def for_scope(query: str, scope: str) -> str:
    """Substitute ``${scope}`` for tests that query Prometheus directly (plain version names only)."""
    if not re.fullmatch(r"[A-Za-z0-9_.:-]+", scope):
        raise ValueError(f"for_scope is for plain version names, got {scope!r}")
    return query.replace("${scope}", scope)


# --------------------------------------------------------------------------------------------------
# OpenMetrics writing
# --------------------------------------------------------------------------------------------------

MetricType = Literal["counter", "gauge", "histogram"]

_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
}


@dataclass(frozen=True)
class Sample:
    """One OpenMetrics sample line: ``name{labels} value timestamp`` (timestamp in seconds)."""

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp: float


@dataclass
class MetricFamily:
    """A metric family: ``# TYPE``/``# HELP`` lines and its samples, written contiguously.

    ``name`` is the family name: for a counter it is the sample name without
    ``_total`` (``http_requests`` for ``http_requests_total``); for a histogram
    the samples are ``<name>_bucket`` (with ``le``), ``<name>_count`` and ``<name>_sum``.
    """

    name: str
    type: MetricType
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


def _format_float(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _validate_family(family: MetricFamily) -> None:
    if not _NAME_RE.fullmatch(family.name):
        raise ValueError(f"invalid metric family name {family.name!r}")
    if family.type == "counter" and family.name.endswith("_total"):
        raise ValueError(f"counter family {family.name!r}: name the family without _total")
    allowed = {family.name + suffix for suffix in _SUFFIXES[family.type]}
    last_ts: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for sample in family.samples:
        if sample.name not in allowed:
            raise ValueError(
                f"sample {sample.name!r} does not belong to {family.type} family {family.name!r}"
                f" (allowed: {sorted(allowed)})"
            )
        for label in sample.labels:
            if not _LABEL_RE.fullmatch(label):
                raise ValueError(f"invalid label name {label!r} on {sample.name}")
        if family.type == "histogram" and (sample.name == family.name + "_bucket") != ("le" in sample.labels):
            raise ValueError(f"{sample.name}: only _bucket samples carry (and must carry) an le label")
        if not math.isfinite(sample.timestamp):
            raise ValueError(f"{sample.name}: timestamp must be finite")
        key = (sample.name, tuple(sorted(sample.labels.items())))
        previous = last_ts.get(key)
        if previous is not None and sample.timestamp <= previous:
            raise ValueError(
                f"{sample.name}{dict(sample.labels)}: timestamps must increase"
                f" ({sample.timestamp} after {previous})"
            )
        last_ts[key] = sample.timestamp


def render_openmetrics(families: Iterable[MetricFamily]) -> str:
    """Render families as OpenMetrics text (validated; ends with ``# EOF``)."""
    lines: list[str] = []
    seen: set[str] = set()
    for family in families:
        _validate_family(family)
        if family.name in seen:
            raise ValueError(f"metric family {family.name!r} appears twice; its samples must be contiguous")
        seen.add(family.name)
        lines.append(f"# TYPE {family.name} {family.type}")
        if family.help:
            lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        for sample in family.samples:
            if sample.labels:
                labels = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in sample.labels.items())
                head = f"{sample.name}{{{labels}}}"
            else:
                head = sample.name
            lines.append(f"{head} {_format_float(sample.value)} {_format_float(sample.timestamp)}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def write_openmetrics(path: Path, series: Iterable[MetricFamily] | str) -> None:
    """Write families (rendered and validated) or ready OpenMetrics text to ``path``."""
    text = series if isinstance(series, str) else render_openmetrics(series)
    if text.rstrip("\n").rsplit("\n", 1)[-1] != "# EOF":
        raise ValueError("OpenMetrics text must end with '# EOF'")
    if not text.endswith("\n"):
        text += "\n"
    Path(path).write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------------------
# Synthetic canary data
# --------------------------------------------------------------------------------------------------

BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, math.inf)


@dataclass(frozen=True)
class VersionProfile:
    """How one version behaves in :func:`canary_dataset`."""

    version: str
    latency_median_s: float = 0.040
    latency_sigma: float = 0.7
    error_ratio: float = 0.001
    cpu_scale: float = 1.0
    requests_per_s: float = 50.0


PROFILES: tuple[VersionProfile, ...] = (
    VersionProfile("v1-base"),
    VersionProfile("v1-canary"),
    VersionProfile("v2-base"),
    VersionProfile("v2-canary", latency_median_s=0.040 * 1.6, error_ratio=0.05, cpu_scale=1.3),
)
VERSIONS: tuple[str, ...] = tuple(p.version for p in PROFILES)
HEALTHY_PAIR: tuple[str, str] = ("v1-base", "v1-canary")
REGRESSED_PAIR: tuple[str, str] = ("v2-base", "v2-canary")


def default_start(now: float | None = None) -> float:
    """Start of a dataset that ends hours before now: the hour boundary 6 hours back."""
    now = time.time() if now is None else now
    return float(math.floor(now / 3600) * 3600 - 6 * 3600)


def dataset_window(start: float, minutes: int = 60, step_s: int = 10) -> tuple[float, float]:
    """First and last sample timestamps of ``canary_dataset(start, minutes, step_s)``."""
    return start, start + minutes * 60 - step_s


def _version_families(
    profile: VersionProfile, index: int, timestamps: np.ndarray[Any, Any], seed: int, step_s: int
) -> tuple[list[Sample], list[Sample], list[Sample]]:
    rng = np.random.default_rng([seed, index])
    n = len(timestamps)
    elapsed = timestamps - timestamps[0]
    # Shared daily-ish traffic shape (same phase for every version: one load balancer), own noise.
    shape = 1.0 + 0.15 * np.sin(2 * np.pi * elapsed / 1800.0)
    rate = profile.requests_per_s * shape * np.exp(rng.normal(0.0, 0.05, n))
    requests_per_step = rng.poisson(rate * step_s)
    requests_per_step[0] = 0  # counters start at 0 at the first sample
    errors_per_step = rng.binomial(requests_per_step, profile.error_ratio)

    total = int(requests_per_step.sum())
    latencies = rng.lognormal(math.log(profile.latency_median_s), profile.latency_sigma, total)
    step_of = np.repeat(np.arange(n), requests_per_step)
    bounds = np.array(BUCKETS[:-1])
    bucket_of = np.searchsorted(bounds, latencies, side="left")  # le semantics: value <= bound
    nb = len(BUCKETS)
    per_step = np.bincount(step_of * nb + bucket_of, minlength=n * nb).reshape(n, nb)
    cumulative_buckets = np.cumsum(np.cumsum(per_step, axis=1), axis=0)
    cumulative_sum = np.cumsum(np.bincount(step_of, weights=latencies, minlength=n))
    cumulative_count = np.cumsum(requests_per_step)
    cumulative_errors = np.cumsum(errors_per_step)
    cumulative_ok = cumulative_count - cumulative_errors

    cpu_base = 0.4 + 0.04 * np.sin(2 * np.pi * elapsed / 2400.0) + rng.normal(0.0, 0.015, n)
    cpu = np.clip(cpu_base, 0.3, 0.5) * profile.cpu_scale

    version = profile.version
    req: list[Sample] = []
    for code, values in (("200", cumulative_ok), ("500", cumulative_errors)):
        labels = {"version": version, "code": code}
        req.extend(
            Sample("http_requests_total", labels, float(v), float(t))
            for t, v in zip(timestamps, values, strict=True)
        )
    hist: list[Sample] = []
    bucket_labels = [{"version": version, "le": _format_float(b)} for b in BUCKETS]
    plain = {"version": version}
    for i, t in enumerate(timestamps):
        ts = float(t)
        hist.extend(
            Sample(
                "http_request_duration_seconds_bucket", bucket_labels[j], float(cumulative_buckets[i, j]), ts
            )
            for j in range(nb)
        )
        hist.append(Sample("http_request_duration_seconds_count", plain, float(cumulative_count[i]), ts))
        hist.append(Sample("http_request_duration_seconds_sum", plain, float(cumulative_sum[i]), ts))
    gauge = [
        Sample("process_cpu_utilization", plain, round(float(c), 6), float(t))
        for t, c in zip(timestamps, cpu, strict=True)
    ]
    return req, hist, gauge


def canary_dataset(start: float, minutes: int = 60, step_s: int = 10, seed: int = 1) -> str:
    """OpenMetrics text (ending with ``# EOF``) for the four versions in :data:`VERSIONS`.

    ``v1-base``/``v1-canary`` are a healthy pair (same distributions, different
    draws); ``v2-canary`` is regressed against ``v2-base``: latency 1.6x slower,
    5% 5xx instead of 0.1%, CPU 1.3x. ``minutes * 60 / step_s`` samples per
    series, every ``step_s`` seconds from ``start`` (see :func:`dataset_window`;
    timestamps in seconds). Counters start at 0 at ``start``.
    The same arguments always give the same text.
    """
    if minutes <= 0 or step_s <= 0 or (minutes * 60) % step_s:
        raise ValueError("minutes and step_s must be positive and step_s must divide the window")
    timestamps = start + np.arange(minutes * 60 // step_s, dtype=float) * step_s
    requests_family = MetricFamily("http_requests", "counter", "HTTP requests by status code.")
    latency_family = MetricFamily("http_request_duration_seconds", "histogram", "HTTP request latency.")
    cpu_family = MetricFamily("process_cpu_utilization", "gauge", "CPU utilization (cores).")
    for index, profile in enumerate(PROFILES):
        req, hist, gauge = _version_families(profile, index, timestamps, seed, step_s)
        requests_family.samples.extend(req)
        latency_family.samples.extend(hist)
        cpu_family.samples.extend(gauge)
    return render_openmetrics([requests_family, latency_family, cpu_family])


# --------------------------------------------------------------------------------------------------
# Prometheus process
# --------------------------------------------------------------------------------------------------


class PrometheusError(RuntimeError):
    """promtool or Prometheus failed; the message carries their output."""


def ensure_prometheus() -> None:
    """Skip (locally) or fail (under CI) when ``prometheus``/``promtool`` are not installed."""
    missing = [tool for tool in ("prometheus", "promtool") if shutil.which(tool) is None]
    if not missing:
        return
    if os.environ.get("CI"):
        pytest.fail(
            f"{' and '.join(missing)} not found on PATH: "
            "the test command must install prometheus (apt-get install -y prometheus)"
        )
    pytest.skip(
        f"{' and '.join(missing)} not found on PATH (apt-get install -y prometheus); set CI=1 to fail"
    )


def free_port() -> int:
    """A loopback port that was free a moment ago (bind to port 0 and let the kernel choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class PrometheusProcess:
    """A ``prometheus`` process on a loopback port with a temporary directory: the shared lifecycle.

    The temporary directory (created on first use, :attr:`tmp_dir`) holds the
    TSDB (:attr:`data_dir`), the ``prometheus.yml`` a subclass writes in
    :meth:`_write_config`, and the log (:attr:`log_path`). :meth:`start` spawns
    Prometheus on ``127.0.0.1:port`` and waits until ``/-/ready`` answers 200
    (on a kernel-chosen port it tries another one up to twice when it loses the
    race for the port; a fixed or already used port is kept). :meth:`stop` ends
    the process (idempotent); :meth:`start` starts it again on the same data
    dir and port. :meth:`close` (called by ``__exit__``) stops it and removes
    the temporary directory.
    """

    tmp_prefix = "kayenta-prometheus-"

    def __init__(
        self, *, port: int | None = None, ready_timeout: float = 30.0, prometheus: str = "prometheus"
    ) -> None:
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port()
        self.ready_timeout = ready_timeout
        self._prometheus = prometheus
        self._tmp: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_file: IO[bytes] | None = None
        self.startup_seconds: float | None = None

    # -- paths and state ---------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def tmp_dir(self) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix=self.tmp_prefix))
        return self._tmp

    @property
    def data_dir(self) -> Path:
        return self.tmp_dir / "data"

    @property
    def log_path(self) -> Path:
        return self.tmp_dir / "prometheus.log"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def log(self, lines: int = 10_000) -> str:
        """The last ``lines`` lines of Prometheus' log (by default all of it)."""
        return _tail(self.log_path, lines)

    # -- what subclasses add -----------------------------------------------------------------------

    def _write_config(self) -> Path:
        """Write ``prometheus.yml`` into :attr:`tmp_dir` and return its path."""
        raise NotImplementedError

    def _extra_flags(self) -> Sequence[str]:
        """Command-line flags after the config, TSDB path and listen address."""
        return ()

    # -- lifecycle ---------------------------------------------------------------------------------

    def _spawn(self, config: Path) -> subprocess.Popen[bytes]:
        args = [
            self._prometheus,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.data_dir}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            *self._extra_flags(),
        ]
        if self._log_file is not None:
            self._log_file.close()
        self._log_file = self.log_path.open("ab")
        try:
            return subprocess.Popen(
                args, stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT
            )
        except OSError as exc:
            raise PrometheusError(f"cannot run {self._prometheus}: {exc}") from exc

    def start(self) -> None:
        """Start Prometheus and wait until it is ready. No-op when running."""
        if self.running:
            return
        config = self._write_config()
        began = time.monotonic()
        attempts = 1 if self._fixed_port or self.startup_seconds is not None else 3
        for attempt in range(attempts):
            self._process = self._spawn(config)
            try:
                self._wait_ready()
            except PrometheusError:
                address_taken = "address already in use" in _tail(self.log_path, 20)
                self.stop()
                if address_taken and attempt + 1 < attempts:
                    self.port = free_port()  # lost the race for the port: try another one
                    continue
                raise
            break
        self.startup_seconds = time.monotonic() - began

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise PrometheusError(
                    f"prometheus exited with code {code} before becoming ready;"
                    f" log tail ({self.log_path}):\n{_tail(self.log_path)}"
                )
            try:
                answer = requests.get(f"{self.url}/-/ready", timeout=1.0)
                if answer.status_code == 200:
                    return
                last = f"HTTP {answer.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.05)
        raise PrometheusError(
            f"prometheus at {self.url} not ready after {self.ready_timeout:.0f} s (last: {last});"
            f" log tail ({self.log_path}):\n{_tail(self.log_path)}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate Prometheus (SIGTERM, then SIGKILL after ``timeout``); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        """Stop Prometheus and delete the temp dir (data, config, log); idempotent."""
        try:
            self.stop()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Last resort when a test forgets the context manager: never leave a process behind.
        process = getattr(self, "_process", None)
        if process is not None and process.poll() is None:
            process.kill()


class PrometheusServer(PrometheusProcess):
    """A real Prometheus serving backfilled OpenMetrics data, as a context manager.

    ``openmetrics`` is OpenMetrics text (``str``) or a file (``Path``). On
    ``__enter__`` (or :meth:`start`) the data is backfilled once with promtool
    into a temporary data dir, then Prometheus is started on ``127.0.0.1`` and
    awaited until ``/-/ready`` answers 200. :meth:`stop` ends the process
    (idempotent); :meth:`start` starts it again on the same data dir and port.
    :meth:`close` (called by ``__exit__``) stops it and removes the temp dir.
    """

    def __init__(
        self,
        openmetrics: str | Path,
        *,
        port: int | None = None,
        ready_timeout: float = 30.0,
        prometheus: str = "prometheus",
        promtool: str = "promtool",
        extra_args: Sequence[str] = (),
    ) -> None:
        super().__init__(port=port, ready_timeout=ready_timeout, prometheus=prometheus)
        self._openmetrics = openmetrics
        self._promtool = promtool
        self._extra_args = tuple(extra_args)
        self._backfilled = False
        self.backfill_seconds: float | None = None

    def backfill(self) -> None:
        """Create TSDB blocks from the OpenMetrics data (once)."""
        if self._backfilled:
            return
        if isinstance(self._openmetrics, Path):
            source = self._openmetrics
        else:
            source = self.tmp_dir / "data.om.txt"
            write_openmetrics(source, self._openmetrics)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        try:
            result = subprocess.run(
                [
                    self._promtool,
                    "tsdb",
                    "create-blocks-from",
                    "openmetrics",
                    str(source),
                    str(self.data_dir),
                ],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PrometheusError(f"promtool tsdb create-blocks-from openmetrics {source}: {exc}") from exc
        if result.returncode != 0:
            raise PrometheusError(
                f"promtool tsdb create-blocks-from openmetrics {source} failed"
                f" (exit {result.returncode}):\n{result.stderr.strip() or result.stdout.strip()}"
            )
        self.backfill_seconds = time.monotonic() - began
        self._backfilled = True

    def _write_config(self) -> Path:
        config = self.tmp_dir / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1h\nscrape_configs: []\n", encoding="utf-8")
        return config

    def _extra_flags(self) -> Sequence[str]:
        # Backfilled blocks lie in the past: a long retention keeps Prometheus from deleting them.
        return ("--storage.tsdb.retention.time=100y", "--web.enable-lifecycle", *self._extra_args)

    def start(self) -> None:
        """Backfill (first time), start Prometheus and wait until it is ready. No-op when running."""
        if self.running:
            return
        self.backfill()
        super().start()

    def close(self) -> None:
        """Stop Prometheus and delete the temp dir (data, config, log); idempotent."""
        try:
            super().close()
        finally:
            self._backfilled = False  # the blocks went with the temp dir


# --------------------------------------------------------------------------------------------------
# HTTP API helpers
# --------------------------------------------------------------------------------------------------


def _api(url: str, path: str, params: Mapping[str, str], timeout: float) -> Any:
    answer = requests.get(f"{url.rstrip('/')}{path}", params=params, timeout=timeout)
    try:
        body = answer.json()
    except ValueError as exc:
        raise PrometheusError(
            f"GET {path}: HTTP {answer.status_code}, not JSON: {answer.text[:300]}"
        ) from exc
    if answer.status_code != 200 or body.get("status") != "success":
        raise PrometheusError(
            f"GET {path} {dict(params)}: HTTP {answer.status_code}:"
            f" {body.get('errorType', '')} {body.get('error', '')}".rstrip()
        )
    return body["data"]


def query_range(
    url: str, query: str, start: float, end: float, step: float, *, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """``/api/v1/query_range``: the ``result`` list (``{"metric": {...}, "values": [[t, "v"], ...]}``).

    Connection problems raise ``requests.ConnectionError``; a query Prometheus
    rejects raises :class:`PrometheusError` with its message.
    """
    data = _api(
        url,
        "/api/v1/query_range",
        {"query": query, "start": repr(float(start)), "end": repr(float(end)), "step": repr(float(step))},
        timeout,
    )
    result: list[dict[str, Any]] = data["result"]
    return result


def instant_query(url: str, query: str, at: float, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """``/api/v1/query`` at time ``at``: the ``result`` list (``{"metric": {...}, "value": [t, "v"]}``)."""
    data = _api(url, "/api/v1/query", {"query": query, "time": repr(float(at))}, timeout)
    result: list[dict[str, Any]] = data["result"]
    return result
