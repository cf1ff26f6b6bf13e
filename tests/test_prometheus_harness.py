"""The real-Prometheus harness: backfilled canary data served by a real Prometheus, queried for real."""

from __future__ import annotations

import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from prometheus_harness import (
    BUCKETS,
    HEALTHY_PAIR,
    QUERY_CPU,
    QUERY_ERROR_RATIO,
    QUERY_P50_LATENCY,
    QUERY_P99_LATENCY,
    QUERY_REQUEST_RATE,
    REGRESSED_PAIR,
    VERSIONS,
    MetricFamily,
    PrometheusError,
    PrometheusServer,
    Sample,
    canary_dataset,
    dataset_window,
    default_start,
    ensure_prometheus,
    for_scope,
    instant_query,
    query_range,
    render_openmetrics,
    write_openmetrics,
)

START = default_start()
FIRST, LAST = dataset_window(START)
STEP = 30.0


@pytest.fixture(scope="module")
def prom() -> Iterator[PrometheusServer]:
    ensure_prometheus()
    with PrometheusServer(canary_dataset(START)) as server:
        yield server


def mean_of(url: str, query: str, version: str) -> float:
    """Mean over the data window (after the first rate window) of a query yielding one series."""
    result = query_range(url, for_scope(query, version), FIRST + 60, LAST, STEP)
    assert len(result) == 1, f"{query} for {version}: {result}"
    values = [float(value) for _, value in result[0]["values"]]
    assert len(values) >= 100, f"{query} for {version}: only {len(values)} points"
    return statistics.fmean(values)


# -- the generator, without Prometheus -------------------------------------------------------------


def test_dataset_is_deterministic_and_ends_with_eof() -> None:
    text = canary_dataset(START, minutes=5)
    assert text == canary_dataset(START, minutes=5)
    assert text != canary_dataset(START, minutes=5, seed=2)
    assert text.endswith("# EOF\n")
    assert text.count("# TYPE ") == 3


def test_histogram_buckets_are_cumulative_and_monotone() -> None:
    lines = [
        line for line in canary_dataset(START, minutes=5).splitlines() if line.startswith("http_request_")
    ]
    buckets: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    for line in lines:
        head, value, _ts = line.rsplit(" ", 2)
        if "_bucket{" in head:
            version = head.split('version="')[1].split('"')[0]
            buckets.setdefault(version, []).append(float(value))
        assert float(value) >= last.get(head, 0.0), f"{head} decreased"
        last[head] = float(value)
    for version, values in buckets.items():
        for i in range(0, len(values), len(BUCKETS)):
            row = values[i : i + len(BUCKETS)]
            assert row == sorted(row), f"{version}: buckets not cumulative: {row}"


def test_writer_rejects_what_promtool_would_silently_drop(tmp_path: Path) -> None:
    labels = {"version": "x"}
    backwards = MetricFamily(
        "g", "gauge", samples=[Sample("g", labels, 1, 20.0), Sample("g", labels, 2, 10.0)]
    )
    with pytest.raises(ValueError, match="timestamps must increase"):
        render_openmetrics([backwards])
    wrong_name = MetricFamily("c", "counter", samples=[Sample("c", labels, 1, 10.0)])
    with pytest.raises(ValueError, match="does not belong"):
        render_openmetrics([wrong_name])
    with pytest.raises(ValueError, match="# EOF"):
        write_openmetrics(tmp_path / "x.txt", "g 1 10\n")


# -- a real Prometheus ------------------------------------------------------------------------------


def test_request_counters_for_every_version(prom: PrometheusServer) -> None:
    result = query_range(
        prom.url, "sum by (version, code) (rate(http_requests_total[1m]))", FIRST + 60, LAST, STEP
    )
    assert {(r["metric"]["version"], r["metric"]["code"]) for r in result} == {
        (version, code) for version in VERSIONS for code in ("200", "500")
    }
    for version in VERSIONS:
        assert 40 < mean_of(prom.url, QUERY_REQUEST_RATE, version) < 60


def test_healthy_pair_latencies_are_close(prom: PrometheusServer) -> None:
    base, canary = HEALTHY_PAIR
    for query in (QUERY_P99_LATENCY, QUERY_P50_LATENCY):
        ratio = mean_of(prom.url, query, canary) / mean_of(prom.url, query, base)
        assert 0.85 < ratio < 1.15, f"{query}: {ratio}"
    assert 0.03 < mean_of(prom.url, QUERY_P50_LATENCY, base) < 0.05  # median ~40 ms


def test_regressed_canary_is_slower(prom: PrometheusServer) -> None:
    base, canary = REGRESSED_PAIR
    assert mean_of(prom.url, QUERY_P99_LATENCY, canary) > 1.3 * mean_of(prom.url, QUERY_P99_LATENCY, base)
    assert mean_of(prom.url, QUERY_P50_LATENCY, canary) > 1.3 * mean_of(prom.url, QUERY_P50_LATENCY, base)


def test_regressed_canary_errors(prom: PrometheusServer) -> None:
    base, canary = REGRESSED_PAIR
    base_ratio = mean_of(prom.url, QUERY_ERROR_RATIO, base)
    canary_ratio = mean_of(prom.url, QUERY_ERROR_RATIO, canary)
    assert 0 < base_ratio < 0.005
    assert 0.03 < canary_ratio < 0.07
    assert canary_ratio > 10 * base_ratio
    healthy = [mean_of(prom.url, QUERY_ERROR_RATIO, version) for version in HEALTHY_PAIR]
    assert all(ratio < 0.005 for ratio in healthy)


def test_cpu_gauges(prom: PrometheusServer) -> None:
    cpu = {version: mean_of(prom.url, QUERY_CPU, version) for version in VERSIONS}
    for version in ("v1-base", "v1-canary", "v2-base"):
        assert 0.3 <= cpu[version] <= 0.5
    assert 1.2 < cpu["v2-canary"] / cpu["v2-base"] < 1.4
    at_end = instant_query(prom.url, "process_cpu_utilization", LAST)
    assert {r["metric"]["version"] for r in at_end} == set(VERSIONS)


def test_bad_query_raises_with_prometheus_message(prom: PrometheusServer) -> None:
    with pytest.raises(PrometheusError, match="bad_data"):
        query_range(prom.url, "sum(", FIRST, LAST, STEP)


def test_stop_then_start_again(prom: PrometheusServer) -> None:
    query = for_scope(QUERY_REQUEST_RATE, "v1-base")
    prom.stop()
    prom.stop()  # idempotent
    assert not prom.running
    with pytest.raises(requests.ConnectionError):
        query_range(prom.url, query, FIRST + 60, LAST, STEP)
    port = prom.port
    prom.start()
    assert prom.port == port
    assert requests.get(f"{prom.url}/-/ready", timeout=5).status_code == 200
    result = query_range(prom.url, query, FIRST + 60, LAST, STEP)
    assert len(result) == 1
    assert len(result[0]["values"]) >= 100


def test_promtool_failure_is_reported(tmp_path: Path) -> None:
    ensure_prometheus()
    server = PrometheusServer("# TYPE g gauge\ng 1\n# EOF\n")  # no timestamp: promtool refuses
    tmp_dir = server.tmp_dir
    with pytest.raises(PrometheusError, match="expected timestamp"), server:
        pass
    assert not tmp_dir.exists()  # removed even though startup failed
