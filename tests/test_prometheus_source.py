"""The Prometheus source and ``kayenta-py analyze`` against a real Prometheus.

Prometheus runs from Debian's package on a free loopback port with data backfilled by
promtool (see prometheus_harness.py). Retry, 429 and bearer-token behaviour is checked
against a small real HTTP server that answers like Prometheus.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
import yaml
from prometheus_harness import (
    HEALTHY_PAIR,
    QUERIES,
    REGRESSED_PAIR,
    PrometheusServer,
    canary_dataset,
    default_start,
    ensure_prometheus,
    free_port,
)

import kayenta_py
from kayenta_py import Classification, Scope, SourceError, Verdict
from metrics_sources import PrometheusSource

START = default_start()
WINDOW = (START + 120, START + 3590)  # skip the first rate() windows

CONFIG: dict[str, Any] = {
    "name": "web",
    "groups": {"errors": 50, "latency": 40, "saturation": 10},
    "metrics": [
        {"name": "error-ratio", "kind": "errors", "query": QUERIES["error-ratio"]},
        {"name": "p99-latency", "kind": "latency", "query": QUERIES["p99-latency"]},
        {"name": "p50-latency", "kind": "latency", "query": QUERIES["p50-latency"]},
        {"name": "cpu", "kind": "saturation", "query": QUERIES["cpu"]},
    ],
}


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    ensure_prometheus()
    # Seed 5: its healthy pair has 184 and 181 errors in the hour. (With seed 1 the healthy canary
    # draws 214 errors against 154, a 3-sigma fluke that an exact rate test flags too.)
    with PrometheusServer(canary_dataset(START, seed=5)) as server:
        yield server


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "web.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def kayenta(*args: str | Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "kayenta-py"
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def analyze_args(config: Path, url: str, pair: tuple[str, str]) -> list[str | Path]:
    return [
        "analyze",
        "--config",
        config,
        "--prometheus",
        url,
        "--baseline-scope",
        pair[0],
        "--canary-scope",
        pair[1],
        "--start",
        str(WINDOW[0]),
        "--end",
        str(WINDOW[1]),
        "--step",
        "30",
    ]


def test_analyze_fails_the_regressed_canary_naming_its_metrics(
    prometheus: PrometheusServer, config_file: Path
) -> None:
    run = kayenta(*analyze_args(config_file, prometheus.url, REGRESSED_PAIR), "--format", "json")
    assert run.returncode == 1, run.stderr
    result = json.loads(run.stdout)
    classes = {m["name"]: m["classification"] for m in result["metrics"]}
    assert classes["error-ratio"] == "High" and classes["p99-latency"] == "High"
    assert classes["p50-latency"] == "High" and classes["cpu"] == "High"
    assert "error-ratio High" in result["reason"] and "p99-latency High" in result["reason"]
    p99 = next(m for m in result["metrics"] if m["name"] == "p99-latency")
    assert p99["baseline"]["count"] == p99["canary"]["count"] == 116  # 120 s .. 3590 s every 30 s


def test_analyze_passes_the_healthy_canary(prometheus: PrometheusServer, config_file: Path) -> None:
    run = kayenta(*analyze_args(config_file, prometheus.url, HEALTHY_PAIR))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "verdict: PASS" in run.stdout


def test_injected_scope_cannot_change_the_query(prometheus: PrometheusServer) -> None:
    config = kayenta_py.load_config(CONFIG)
    source = PrometheusSource(prometheus.url)
    hostile = Scope('v2-canary"} or vector(1) #')
    cpu = config.metric("cpu")
    rendered = source.render(cpu, hostile)
    assert rendered == 'avg(process_cpu_utilization{version="v2-canary\\"} or vector(1) #"})'
    # Prometheus accepts it as one selector whose label value matches nothing.
    assert source.fetch(cpu, hostile, *WINDOW, 30) == []
    result = kayenta_py.analyze(
        config, source, Scope("v2-base"), hostile, start=WINDOW[0], end=WINDOW[1], step=30
    )
    # No data (critical metrics Nodata, the others NodataFailMetric): the canary fails.
    missing = {Classification.NODATA, Classification.NODATA_FAIL_METRIC}
    assert {m.classification for m in result.metrics} <= missing
    assert result.verdict is Verdict.FAIL
    assert result.verdict is Verdict.FAIL


def test_scope_outside_quotes_is_refused_before_any_request(prometheus: PrometheusServer) -> None:
    config = kayenta_py.load_config(
        {"name": "x", "metrics": [{"name": "m", "query": "sum by (${scope}) (process_cpu_utilization)"}]}
    )
    source = PrometheusSource(prometheus.url)
    with pytest.raises(kayenta_py.KayentaError, match=r"\$\{scope\} stands outside quotes"):
        source.fetch(config.metrics[0], Scope("version) or vector(1"), *WINDOW, 30)


def test_series_keep_labels_and_sit_on_the_step_grid(prometheus: PrometheusServer) -> None:
    config = kayenta_py.load_config(
        {
            "name": "x",
            "metrics": [{"name": "rate", "query": 'rate(http_requests_total{version="${scope}"}[1m])'}],
        }
    )
    source = PrometheusSource(prometheus.url)
    end = START + 3600 + 600  # ten minutes past the data: those points stay missing
    sets = source.fetch(config.metrics[0], Scope("v1-base"), START, end, 60)
    assert sorted(s.tags["code"] for s in sets) == ["200", "500"]
    for metric_set in sets:
        assert metric_set.tags["version"] == "v1-base" and "__name__" not in metric_set.tags
        assert metric_set.timestamps is not None
        np.testing.assert_array_equal(metric_set.timestamps, START + 60 * np.arange(71))
        assert np.isnan(metric_set.values[0])  # rate() needs two samples
        assert np.isfinite(metric_set.values[1:60]).all()
        assert np.isnan(metric_set.values[-5:]).all()


def test_gaps_stay_missing_at_their_place(prometheus: PrometheusServer) -> None:
    query = 'process_cpu_utilization{version="${scope}"} and on() (vector(time()) % 600 < 300)'
    config = kayenta_py.load_config({"name": "x", "metrics": [{"name": "cpu", "query": query}]})
    (cpu,) = PrometheusSource(prometheus.url).fetch(
        config.metrics[0], Scope("v1-base"), START, START + 3540, 60
    )
    assert cpu.timestamps is not None
    expected_missing = (cpu.timestamps % 600) >= 300
    np.testing.assert_array_equal(np.isnan(cpu.values), expected_missing)


def test_long_ranges_are_chunked_and_stitched(prometheus: PrometheusServer) -> None:
    config = kayenta_py.load_config(CONFIG)
    p99 = config.metric("p99-latency")
    whole = PrometheusSource(prometheus.url).fetch(p99, Scope("v2-canary"), *WINDOW, 10)
    chunked = PrometheusSource(prometheus.url, max_points=37).fetch(p99, Scope("v2-canary"), *WINDOW, 10)
    assert len(whole) == len(chunked) == 1
    assert (
        whole[0].values.size == 348 and whole[0].timestamps is not None and chunked[0].timestamps is not None
    )
    np.testing.assert_array_equal(whole[0].timestamps, chunked[0].timestamps)
    np.testing.assert_array_equal(whole[0].values, chunked[0].values)


def test_bad_query_surfaces_prometheus_message(prometheus: PrometheusServer, tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "x", "metrics": [{"name": "broken", "query": "rate(foo[1m]"}]}))
    run = kayenta(*analyze_args(path, prometheus.url, HEALTHY_PAIR))
    assert run.returncode == 5
    assert prometheus.url in run.stderr and "'broken'" in run.stderr
    assert "HTTP 400: bad_data" in run.stderr and "parse error" in run.stderr
    assert "Traceback" not in run.stderr


def test_unreachable_prometheus_is_a_clear_error_within_the_retries(config_file: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    began = time.monotonic()
    run = kayenta(*analyze_args(config_file, url, HEALTHY_PAIR), "--retries", "2", "--timeout", "2")
    elapsed = time.monotonic() - began
    assert run.returncode == 5
    assert url in run.stderr and "cannot connect after 2 retries (Connection refused)" in run.stderr
    assert "Traceback" not in run.stderr
    assert elapsed < 60  # bounded: 2 retries with 0.5 s, 1 s backoff, not a hang


def test_prometheus_stopping_mid_analysis(prometheus: PrometheusServer) -> None:
    config = kayenta_py.load_config(CONFIG)
    source = PrometheusSource(prometheus.url, retries=1, backoff=0.1, timeout=2)
    fetched: list[str] = []

    def progress(done: int, total: int, metric: str, side: str) -> None:
        fetched.append(f"{metric}/{side}")
        if done == 3:
            prometheus.stop()

    try:
        with pytest.raises(SourceError) as caught:
            kayenta_py.analyze(
                config,
                source,
                Scope(REGRESSED_PAIR[0]),
                Scope(REGRESSED_PAIR[1]),
                start=WINDOW[0],
                end=WINDOW[1],
                step=30,
                concurrency=1,
                progress=progress,
            )
    finally:
        prometheus.start()
    assert len(fetched) == 3
    error = caught.value
    assert error.url == prometheus.url and error.metric in {m.name for m in config.metrics}
    assert f"Prometheus {prometheus.url}: metric {error.metric!r}: cannot connect" in str(error)


class FakePrometheus(BaseHTTPRequestHandler):
    """A real HTTP server that answers like Prometheus, scripted per test."""

    answers: ClassVar[list[tuple[int, dict[str, str]]]] = []
    seen: ClassVar[list[dict[str, str]]] = []
    token: ClassVar[str | None] = None

    def do_GET(self) -> None:
        FakePrometheus.seen.append(dict(self.headers))
        if self.token is not None and self.headers.get("Authorization") != f"Bearer {self.token}":
            self._answer(401, {}, {"status": "error", "errorType": "unauthorized", "error": "bad token"})
            return
        status, headers = FakePrometheus.answers.pop(0) if FakePrometheus.answers else (200, {})
        if status != 200:
            self._answer(status, headers, {"status": "error", "errorType": "unavailable", "error": "busy"})
            return
        values = [[START + 60 * i, str(1.0 + i)] for i in range(5)]
        body = {
            "status": "success",
            "data": {"resultType": "matrix", "result": [{"metric": {"pod": "a"}, "values": values}]},
        }
        self._answer(200, {}, body)

    def _answer(self, status: int, headers: dict[str, str], body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()
        self.send_response(status)
        for key, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def fake() -> Iterator[str]:
    FakePrometheus.answers, FakePrometheus.seen, FakePrometheus.token = [], [], None
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def one_metric() -> kayenta_py.MetricConfig:
    return kayenta_py.load_config(
        {"name": "x", "metrics": [{"name": "m", "query": 'x{v="${scope}"}'}]}
    ).metrics[0]


def test_retries_429_and_503_then_succeeds(fake: str) -> None:
    FakePrometheus.answers = [(429, {"Retry-After": "1"}), (503, {})]
    began = time.monotonic()
    (metric_set,) = PrometheusSource(fake, retries=3, backoff=0.1).fetch(
        one_metric(), Scope("v1"), START, START + 240, 60
    )
    assert time.monotonic() - began >= 1.0  # Retry-After was honoured
    assert len(FakePrometheus.seen) == 3
    np.testing.assert_array_equal(metric_set.values, [1.0, 2.0, 3.0, 4.0, 5.0])


def test_persistent_5xx_is_reported_with_prometheus_message(fake: str) -> None:
    FakePrometheus.answers = [(503, {})] * 10
    with pytest.raises(SourceError, match=r"metric 'm': HTTP 503: unavailable: busy"):
        PrometheusSource(fake, retries=2, backoff=0.05).fetch(
            one_metric(), Scope("v1"), START, START + 240, 60
        )
    assert len(FakePrometheus.seen) == 3


def test_bearer_token_is_sent_and_never_shown(fake: str) -> None:
    FakePrometheus.token = "s3cret-token"
    source = PrometheusSource(fake, bearer_token="s3cret-token")
    assert len(source.fetch(one_metric(), Scope("v1"), START, START + 240, 60)) == 1
    assert "s3cret-token" not in repr(source)
    wrong = PrometheusSource(fake, bearer_token="other")
    with pytest.raises(SourceError) as caught:
        wrong.fetch(one_metric(), Scope("v1"), START, START + 240, 60)
    assert "HTTP 401: unauthorized: bad token" in str(caught.value)
    assert "other" not in str(caught.value)


def test_a_bad_prometheus_setting_is_an_error_naming_it_and_its_variable() -> None:
    from kayenta_py.plugin import FieldError

    with pytest.raises(FieldError, match=r"prometheus_timeout: .*\(KAYENTA_PROMETHEUS_TIMEOUT\)") as caught:
        PrometheusSource.from_settings({"prometheus_url": "http://127.0.0.1:9", "prometheus_timeout": "x"})
    assert caught.value.field == "prometheus_timeout"
    built = PrometheusSource.from_settings({"prometheus_url": "http://127.0.0.1:9", "prometheus_retries": 1})
    assert built.retries == 1
