"""The Prometheus quickstart and the shipped Prometheus-ready config, against a real Prometheus.

- ``scripts/quickstart-prometheus`` as a user runs it: backfills an hour of data with promtool,
  starts Debian's Prometheus, dry-runs a metric with ``kayenta-py query`` and judges the healthy
  pair (pass, exit 0) and the regressed pair (fail, exit 1) with ``kayenta-py analyze`` and
  ``kayenta_py/examples/prometheus.yaml``; it exits 0 only when both verdicts are right.
- The same config stored in the service (``POST /api/v1/configs``, read from the YAML as the
  quickstart shows), on the test harness' Prometheus: the healthy past window ends ``pass``,
  the regressed one ``fail``.
- A hostile scope stays a label value in every query of the shipped config.
"""

from __future__ import annotations

import math
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from live_server import LiveServer, settings_for
from prometheus_harness import (
    HEALTHY_PAIR,
    REGRESSED_PAIR,
    PrometheusServer,
    canary_dataset,
    default_start,
    ensure_prometheus,
)

from kayenta_py import MetricConfig, Scope, load_config
from kayenta_py.examples import EXAMPLES_DIR
from metrics_sources import PrometheusSource

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = EXAMPLES_DIR / "prometheus.yaml"
START = default_start()
WINDOW = (START + 120, START + 3590)  # as the script: past the first rate() windows


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    ensure_prometheus()
    with PrometheusServer(canary_dataset(START, seed=5)) as server:  # the script's data
        yield server


def test_the_shipped_config_is_packaged_and_has_a_query_per_metric() -> None:
    config = load_config(SHIPPED)
    assert config.warnings == () and config.mode == "fixed"
    assert [m.name for m in config.metrics] == ["error-ratio", "mean-latency", "slow-requests", "cpu"]
    for metric in config.metrics:
        assert metric.query is not None and '"${scope}"' in metric.query, metric.name


def test_the_quickstart_script_end_to_end(tmp_path: Path) -> None:
    ensure_prometheus()
    run = subprocess.run(
        [str(ROOT / "scripts" / "quickstart-prometheus")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        cwd=tmp_path,  # the script finds the repository itself
    )
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    assert "+ promtool tsdb create-blocks-from openmetrics" in out
    assert 'query: 1 - sum(rate(http_request_duration_seconds_bucket{version="v2-canary",le="0.25"}' in out
    assert "series: 1" in out and "116 points, 0 missing" in out
    verdicts = [line for line in out.splitlines() if line.startswith("verdict: ")]
    assert verdicts == ["verdict: PASS", "verdict: FAIL"]
    assert "healthy canary: exit 0 (0 is pass); regressed canary: exit 1 (1 is fail)" in out


def test_the_service_judges_with_the_stored_shipped_config(
    prometheus: PrometheusServer, tmp_path: Path
) -> None:
    config: dict[str, Any] = yaml.safe_load(SHIPPED.read_text(encoding="utf-8"))
    with LiveServer(settings_for(tmp_path, prometheus_url=prometheus.url)) as server:
        client = httpx.Client(base_url=server.url, timeout=30)
        stored = client.post("/api/v1/configs", json={"name": "http-service", "config": config})
        assert stored.status_code == 201, stored.text
        ids = {}
        for pair in (HEALTHY_PAIR, REGRESSED_PAIR):
            body = {
                "config_name": "http-service",
                "baseline_scope": pair[0],
                "canary_scope": pair[1],
                "start": rfc3339(WINDOW[0]),
                "end": rfc3339(WINDOW[1]),
                "interval": "PT10M",
                "step": 30,
            }
            created = client.post("/api/v1/analyses", json=body)
            assert created.status_code == 201, created.text
            ids[pair] = created.json()["id"]
        verdicts = {}
        deadline = time.monotonic() + 60
        for pair, analysis_id in ids.items():
            while not (verdict := client.get(f"/api/v1/analyses/{analysis_id}/verdict").json())["complete"]:
                assert time.monotonic() < deadline, f"{pair} did not complete in 60 s"
                time.sleep(0.1)
            verdicts[pair] = verdict
    assert verdicts[HEALTHY_PAIR]["verdict"] == "pass", verdicts[HEALTHY_PAIR]
    assert verdicts[HEALTHY_PAIR]["score"] == 100.0
    assert verdicts[REGRESSED_PAIR]["verdict"] == "fail", verdicts[REGRESSED_PAIR]


@pytest.mark.parametrize("hostile", ['v2-canary"} or vector(1) #', 'v2-canary"}) or on() vector(1) or ({a="'])
def test_a_hostile_scope_cannot_change_the_shipped_queries(
    prometheus: PrometheusServer, hostile: str
) -> None:
    source = PrometheusSource(prometheus.url)
    for metric in load_config(SHIPPED).metrics:
        assert isinstance(metric, MetricConfig)
        series = source.fetch(metric, Scope(hostile), WINDOW[0], WINDOW[1], 30)
        values = [v for s in series for v in s.values if not math.isnan(v)]
        # no such version: nothing, or the error ratio's `or vector(0)` over an empty denominator
        assert values == [], (metric.name, values[:3])
