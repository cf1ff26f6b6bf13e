"""Finished analyses' outcomes on ``/metrics`` (issue 16 item 4): verdicts, classifications, effect sizes.

Analyses are stored through the real store (a fresh SQLite file and a fresh PostgreSQL database),
with interval results judged by the real engine; the exposition is parsed with prometheus_client's
text parser, and scraped by a real Prometheus (tests/prometheus_harness.py) from a live service. A
config name with a double quote, a backslash and a line feed proves label values are escaped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from live_server import LiveServer, settings_for
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_harness import PrometheusProcess, ensure_prometheus, instant_query
from sqlalchemy import event

import kayenta_py
from kayenta_py import MetricSet, MetricSetPair
from kayenta_py.service.outcome_metrics import OutcomeCollector
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import CANCELLED, COMPLETED

HOSTILE = 'checkout "blue"\\green\nv2'  # a double quote, a backslash, a line feed
BODY: dict[str, Any] = {
    "name": "body-name",
    "metrics": [{"name": "latency", "kind": "latency"}, {"name": "errors", "kind": "errors"}],
}
CLASSES = {"Pass", "High", "Low", "Nodata", "NodataFailMetric", "Error"}


def judged(shift: float, seed: int) -> tuple[kayenta_py.CanaryResult, list[MetricSetPair]]:
    """Judge latency and errors (tagged ``region``) with the canary shifted by ``shift`` (log scale)."""
    rng = np.random.default_rng(seed)
    stamps = np.arange(40, dtype=np.float64) * 10.0 + 1_700_000_000.0
    pairs = [
        MetricSetPair(
            name,
            MetricSet(name, rng.lognormal(0.0, 0.05, 40), {"region": 'eu"1'}, stamps),
            MetricSet(name, rng.lognormal(shift, 0.05, 40), {"region": 'eu"1'}, stamps),
            {"region": 'eu"1'},
        )
        for name in ("latency", "errors")
    ]
    return kayenta_py.judge_pairs(kayenta_py.load_config(BODY), pairs), pairs


def finished(
    store: Store, config: str | None, shift: float, *, seed: int = 1, cancel: bool = False
) -> Analysis:
    """Store an analysis of one interval and finish it (judged, or cancelled before its interval)."""
    analysis = store.create_analysis(
        config_name=config,
        config_version=1 if config else None,
        config_body=BODY,
        baseline_scope="baseline",
        canary_scope="canary",
        source="demo",
        start_ts=time.time() - 600.0,
        lifetime_s=180.0,
        interval_s=180.0,
        step_s=10.0,
        thresholds={"pass": 95.0, "marginal": 75.0},
        intervals_total=1,
    )
    if cancel:
        store.finish_analysis(analysis.id, CANCELLED, "fail", None, "cancelled")
    else:
        result, pairs = judged(shift, seed)
        final = (COMPLETED, result.verdict.value, result.score, "the last interval")
        assert store.record_interval(analysis.id, 0, analysis.window(0), analysis.due_ts(0), result, pairs,
                                     final=final)
    got = store.get_analysis(analysis.id, with_intervals=False)
    assert got is not None
    return got


def scrape(store: Store) -> tuple[str, dict[str, list[tuple[dict[str, str], float]]]]:
    """The collector's exposition text and its samples by name (parsed by prometheus_client)."""
    registry = CollectorRegistry()
    registry.register(OutcomeCollector(store))
    text = generate_latest(registry).decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return text, samples


def value(samples: dict[str, list[tuple[dict[str, str], float]]], name: str, **labels: str) -> float | None:
    found = [v for got, v in samples.get(name, []) if all(got.get(k) == x for k, x in labels.items())]
    assert len(found) <= 1, (name, labels, found)
    return found[0] if found else None


def test_outcomes_by_config_with_escaped_labels(store: Store) -> None:
    old = finished(store, "checkout", 0.5, seed=1)  # regressed: fails
    time.sleep(0.01)
    new = finished(store, "checkout", 0.0, seed=2)  # healthy: passes, and is the latest
    hostile = finished(store, HOSTILE, 0.5, seed=3)
    inline = finished(store, None, 0.0, seed=4)  # no stored config: the body's name
    finished(store, "payments", 0.0, cancel=True)
    store.create_analysis(  # still running: neither counted nor latest
        config_name="checkout", config_version=1, config_body=BODY, baseline_scope="b", canary_scope="c",
        source="demo", start_ts=time.time(), lifetime_s=60.0, interval_s=60.0, step_s=10.0,
        thresholds={"pass": 95.0, "marginal": 75.0}, intervals_total=1,
    )
    assert (old.verdict, new.verdict, hostile.verdict, inline.verdict) == ("fail", "pass", "fail", "pass")

    statements: list[str] = []
    event.listen(store.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    text, samples = scrape(store)
    assert len(statements) == 2, statements  # a GROUP BY and one statement for every latest outcome

    assert value(samples, "kayenta_outcome_metrics_up") == 1.0
    total = "kayenta_analyses_finished_total"
    assert value(samples, total, config="checkout", status="completed", verdict="fail") == 1.0
    assert value(samples, total, config="checkout", status="completed", verdict="pass") == 1.0
    assert value(samples, total, config="payments", status="cancelled", verdict="fail") == 1.0
    assert value(samples, total, config="body-name", status="completed", verdict="pass") == 1.0
    assert value(samples, total, config=HOSTILE, status="completed", verdict="fail") == 1.0
    assert sum(v for _, v in samples[total]) == 5.0  # the running analysis is not counted

    verdicts = "kayenta_last_analysis_verdict"
    assert {got["verdict"]: v for got, v in samples[verdicts] if got["config"] == "checkout"} == {
        "pass": 1.0, "marginal": 0.0, "fail": 0.0
    }
    assert value(samples, verdicts, config=HOSTILE, verdict="fail") == 1.0
    assert value(samples, "kayenta_last_analysis_score", config="checkout") == new.score
    assert value(samples, "kayenta_last_analysis_score", config="payments") is None  # no score
    assert value(samples, "kayenta_last_analysis_timestamp_seconds", config="checkout") == new.completed_ts

    results = {m["name"]: m for m in (store.last_result(hostile.id) or {})["metrics"]}
    assert {m["classification"] for m in results.values()} & {"High", "Low"}  # the regression shows
    for name, result in results.items():
        metric = f'{name}{{region=eu"1}}'
        hot = {
            got["classification"]: v
            for got, v in samples["kayenta_last_metric_classification"]
            if got["config"] == HOSTILE and got["metric"] == metric
        }
        assert set(hot) == CLASSES and sum(hot.values()) == 1.0
        assert hot[result["classification"]] == 1.0
        effect = value(samples, "kayenta_last_metric_effect_size", config=HOSTILE, metric=metric)
        assert result["effect_size"] is not None and effect == pytest.approx(result["effect_size"])
    # no analysis id anywhere: every series is bounded by configs and their metrics
    assert all("analysis_id" not in got for rows in samples.values() for got, _ in rows)
    assert old.id not in text and new.id not in text
    # the text format's escapes: backslash, double quote, line feed
    assert 'config="checkout \\"blue\\"\\\\green\\nv2"' in text
    assert 'metric="latency{region=eu\\"1}"' in text
    assert "\nv2" not in text  # the line feed never breaks a line


def test_the_latest_outcomes_are_bounded(store: Store) -> None:
    for number in range(5):
        finished(store, f"config-{number}", 0.0, seed=number)
    registry = CollectorRegistry()
    registry.register(OutcomeCollector(store, max_configs=3, max_metrics=1))
    samples = list(text_string_to_metric_families(generate_latest(registry).decode()))
    by_name = {f.name: f.samples for f in samples}
    assert {s.labels["config"] for s in by_name["kayenta_last_analysis_score"]} == {
        "config-2", "config-3", "config-4"  # the most recently finished
    }
    classes = by_name["kayenta_last_metric_classification"]
    metrics = {(s.labels["config"], s.labels["metric"]) for s in classes}
    assert len(metrics) == 3  # one metric per config
    assert len(by_name["kayenta_analyses_finished"]) == 5  # counters are never cut


def test_an_unreadable_store_reports_down_and_the_scrape_goes_on(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'empty.db'}")  # not migrated: no tables
    try:
        _, samples = scrape(store)
    finally:
        store.close()
    assert samples == {"kayenta_outcome_metrics_up": [({}, 0.0)]}


class ScrapingPrometheus(PrometheusProcess):
    """A real Prometheus scraping one target's /metrics every second."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def _write_config(self) -> Path:
        config = self.tmp_dir / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: kayenta\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{self.target}']\n",
            encoding="utf-8",
        )
        return config


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    with LiveServer(settings_for(tmp_path)) as server:
        yield server


def test_a_real_prometheus_scrapes_the_outcomes(live: LiveServer) -> None:
    ensure_prometheus()
    store = live.service.store
    finished(store, HOSTILE, 0.5, seed=3)
    passed = finished(store, "checkout", 0.0, seed=2)
    answer = httpx.get(f"{live.url}/metrics", timeout=10)
    assert answer.status_code == 200 and "kayenta_last_analysis_verdict" in answer.text
    with ScrapingPrometheus(live.url.removeprefix("http://")) as prometheus:
        deadline = time.monotonic() + 30
        while True:
            rows = instant_query(prometheus.url, "kayenta_last_analysis_verdict == 1", time.time())
            if len(rows) == 2:
                break
            assert time.monotonic() < deadline, f"no outcomes scraped: {rows}\n{prometheus.log(20)}"
            time.sleep(0.2)
        up = instant_query(prometheus.url, 'up{job="kayenta"}', time.time())
        effects = instant_query(prometheus.url, "kayenta_last_metric_effect_size", time.time())
        score = instant_query(prometheus.url, 'kayenta_last_analysis_score{config="checkout"}', time.time())
    assert [row["value"][1] for row in up] == ["1"]  # the exposition parsed
    assert {(row["metric"]["config"], row["metric"]["verdict"]) for row in rows} == {
        (HOSTILE, "fail"),  # the label value arrives exactly as stored
        ("checkout", "pass"),
    }
    assert {row["metric"]["metric"] for row in effects} == {'latency{region=eu"1}', 'errors{region=eu"1}'}
    assert float(score[0]["value"][1]) == pytest.approx(passed.score)
