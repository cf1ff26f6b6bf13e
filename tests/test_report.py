"""The HTML report: its content and escaping, the API route on a real server, the CLI, and real Chromium.

- Unit: the page names every metric and the verdict, marks the failing metrics, escapes
  user strings (a metric called ``<script>`` is text), loads nothing from elsewhere, and
  parses; long series are downsampled.
- ``GET /api/v1/analyses/{id}/report`` on a real uvicorn server, for a past-window analysis
  of the demo source's regressed canary (404 JSON for an unknown id; read scope when
  tokens are configured).
- ``kayenta-py judge --html`` and ``kayenta-py analyze --html`` (against a real Prometheus).
- Debian's headless Chromium renders the server's page and the CLI's file: the screenshot
  is not blank, shows the failing rows' red, and Chromium's DOM has the failing metrics in
  those rows. Without Chromium the browser tests skip, or fail when ``CI`` is set.
"""

from __future__ import annotations

import math
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from browser import chromium as chromium  # the fixture, shared with tests/test_pages.py
from browser import chromium_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import LiveServer, settings_for
from PIL import Image
from prometheus_harness import (
    QUERY_P99_LATENCY,
    REGRESSED_PAIR,
    PrometheusServer,
    canary_dataset,
    default_start,
    ensure_prometheus,
)

from kayenta_py import MetricSet, MetricSetPair, default_registry, judge_pairs, load_config, pair_metric_sets
from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.model.pairs_codec import pairs_to_json
from kayenta_py.model.types import CanaryResult
from kayenta_py.reports.html import render_analysis_html, render_result_html
from kayenta_py.reports.svg import downsample
from kayenta_py.reports.templates import FAILING_ROW_COLOR, MAX_PLOT_POINTS
from kayenta_py.service.store.tables import AnalysisRecord, IntervalRecord

KAYENTA_PY = Path(sys.executable).with_name("kayenta-py")
CHECKOUT: dict[str, Any] = yaml.safe_load((EXAMPLES_DIR / "checkout.yaml").read_text(encoding="utf-8"))
REGRESSED = {"error-ratio", "p99-latency", "cpu-utilization"}  # the CSV example's failing metrics
PASSING = {"p50-latency", "orders-per-minute"}
FAILING_RGB = tuple(int(FAILING_ROW_COLOR[i : i + 2], 16) for i in (1, 3, 5))


# ---------------------------------------------------------------- helpers


@dataclass
class Row:
    """A metric row of the report: its classes, data attributes and text."""

    classes: set[str]
    attrs: dict[str, str]
    text: str = ""


class ReportParser(HTMLParser):
    """Collects the metric rows, every tag, and every URL-bearing attribute of a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.rows: list[Row] = []
        self.tags: list[str] = []
        self.urls: list[tuple[str, str, str]] = []
        self.open: list[str] = []
        self.text: list[str] = []
        self._row: Row | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        self.open.append(tag)
        for name in ("href", "src", "action", "xlink:href", "data", "poster"):
            if name in values:
                self.urls.append((tag, name, values[name]))
        if tag == "tr" and "metric" in values.get("class", "").split():
            self._row = Row(set(values["class"].split()), values)
            self.rows.append(self._row)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.open:  # void elements (meta, br) have no end tag
            while self.open and self.open.pop() != tag:
                pass
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._row is not None:
            self._row.text += data


def parse(page: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(page)
    parser.close()
    return parser


def failing_rows(page: str) -> dict[str, Row]:
    return {row.attrs["data-metric"]: row for row in parse(page).rows if "failing" in row.classes}


def assert_self_contained(page: str, allowed_prefix: str | None = None) -> None:
    """No script, no external resource: every http(s) URL is one of the analysis' own links."""
    assert "<script" not in page.lower()
    for url in re.findall(r"https?://[^\s\"'<>)]+", page):
        assert allowed_prefix is not None and url.startswith(allowed_prefix), url
    parser = parse(page)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(parser.tags)
    for tag, attribute, url in parser.urls:
        assert tag == "a" and attribute == "href", (tag, attribute, url)
        assert url.startswith("#") or (allowed_prefix is not None and url.startswith(allowed_prefix)), url
    assert "@import" not in page and "url(" not in page


def judge_csv(canary: str = "canary-regressed") -> tuple[CanaryResult, list[MetricSetPair]]:
    registry = default_registry()
    config = load_config(EXAMPLES_DIR / "checkout.yaml", registry=registry)
    files = {"baseline": EXAMPLES_DIR / "baseline.csv", "canary": EXAMPLES_DIR / f"{canary}.csv"}
    source = registry.source_class("csv")(files=files)
    baseline = {m.name: source.fetch(m, "baseline") for m in config.metrics}
    canary_sets = {m.name: source.fetch(m, "canary") for m in config.metrics}
    pairs = pair_metric_sets(config, baseline, canary_sets)
    return judge_pairs(config, pairs, registry=registry), pairs


def kayenta(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAYENTA_PY), *map(str, args)], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


# ---------------------------------------------------------------- unit


@pytest.fixture(scope="module")
def regressed() -> tuple[CanaryResult, list[MetricSetPair]]:
    return judge_csv()


@pytest.fixture(scope="module")
def page(regressed: tuple[CanaryResult, list[MetricSetPair]]) -> str:
    result, pairs = regressed
    return render_result_html(result, pairs, title="Canary report: checkout", details={"config": "checkout"})


def test_report_names_every_metric_the_verdict_and_marks_the_failing(
    regressed: tuple[CanaryResult, list[MetricSetPair]], page: str
) -> None:
    result, _ = regressed
    assert result.verdict.value == "fail"
    parser = parse(page)
    rows = {row.attrs["data-metric"]: row for row in parser.rows}
    assert set(rows) == REGRESSED | PASSING
    assert set(failing_rows(page)) == REGRESSED
    for name in REGRESSED:
        assert rows[name].attrs["data-classification"] == "High"
        assert "High" in rows[name].text
    for name in PASSING:
        assert rows[name].classes == {"metric", "pass"}
    text = " ".join(parser.text)
    assert "FAIL" in text and "score 0.00 / 100" in text
    assert "critical" in rows["error-ratio"].text  # the critical metric says so
    assert result.reason in text
    # statistics, interval and effect size of a failing metric
    p99 = result.metric("p99-latency")
    assert p99.ci is not None and p99.effect_size is not None
    for number in (*p99.ci, p99.effect_size, p99.baseline.mean, p99.canary.mean):
        assert f"{number:.4g}" in rows["p99-latency"].text
    assert "n=60" in rows["p99-latency"].text and "meanRatio" in rows["p99-latency"].text
    # two plots per metric: a time series and a distribution
    assert page.count("<svg") == 2 * len(rows)
    assert page.count('aria-label="time series of') == page.count('aria-label="distribution of') == len(rows)
    assert f"background: {FAILING_ROW_COLOR}" in page


def test_report_is_self_contained_and_parses(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert_self_contained(page)
    parser = parse(page)
    assert parser.open == [], f"unclosed elements: {parser.open}"
    assert parser.tags.count("html") == parser.tags.count("body") == parser.tags.count("head") == 1
    assert "Content-Security-Policy" in page


def test_user_strings_are_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    config = load_config(
        {
            "name": "x",
            "groups": {"g": 100},
            "metrics": [{"name": hostile, "kind": "latency", "groups": ["g"]}],
        }
    )
    tags = {"pod": '"><img src=x onerror=alert(2)>'}
    base = MetricSet(hostile, np.linspace(1.0, 2.0, 40), tags)
    canary = MetricSet(hostile, np.linspace(3.0, 4.0, 40), tags)
    pairs = [MetricSetPair(hostile, base, canary, tags)]
    result = judge_pairs(config, pairs)
    page = render_result_html(result, pairs, title=hostile, details={hostile: hostile})
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert_self_contained(page)
    parser = parse(page)
    assert "script" not in parser.tags and "img" not in parser.tags
    (row,) = parser.rows
    assert row.attrs["data-metric"] == hostile  # as text, round-tripped through escaping
    assert hostile in row.text and "onerror=alert(2)" in row.text


def test_long_series_are_downsampled_keeping_spikes_and_gaps() -> None:
    n = 20_000
    x = np.arange(n, dtype=np.float64)
    y = np.sin(x / 500.0)
    y[12_345] = 50.0  # a spike
    y[3_000:3_200] = math.nan  # a gap longer than a bucket
    small_x, small_y = downsample(x, y)
    assert small_x.size <= MAX_PLOT_POINTS
    assert np.nanmax(small_y) == 50.0 and np.isnan(small_y).any()
    assert np.all(np.diff(small_x) > 0)

    stamps = 1.8e9 + 10.0 * x
    config = load_config({"name": "big", "metrics": [{"name": "m", "kind": "latency"}]})
    pair = MetricSetPair(
        "m", MetricSet("m", y, timestamps=stamps), MetricSet("m", y + 0.1, timestamps=stamps)
    )
    page = render_result_html(judge_pairs(config, [pair]), [pair])
    series = re.search(r'aria-label="time series of m.*?</svg>', page, re.S)
    assert series is not None
    for path in re.findall(r'<path d="([^"]*)"', series.group(0)):
        assert len(re.findall(r"[ML]", path)) <= MAX_PLOT_POINTS
    assert len(page) < 200_000
    assert "time (UTC)" in page


def test_a_result_without_pairs_or_data_still_renders() -> None:
    optional = {"name": "m", "kind": "latency", "must_have_data": False}
    config = load_config({"name": "empty", "metrics": [optional]})
    result = judge_pairs(config, [MetricSetPair("m", MetricSet.empty("m"), MetricSet.empty("m"))])
    page = render_result_html(result, None)
    assert "No raw values were kept" in page and "<svg" not in page
    rows = parse(page).rows
    assert rows[0].attrs["data-classification"] == "Nodata" and "nodata" in rows[0].classes
    nan_only = MetricSetPair.of("m", [math.nan] * 3, [1.0, 2.0, math.nan])
    page = render_result_html(judge_pairs(config, [nan_only]), [nan_only])
    assert page.count("<svg") == 2 and "sample" in page  # no timestamps: drawn against the index


def analysis_record(mode: str, intervals: int) -> AnalysisRecord:
    """A transient (never stored) analysis of the CSV example, ``intervals`` batches of 20 points."""
    result, pairs = judge_csv()
    record = AnalysisRecord(
        id="a1",
        mode=mode,
        config_name=None,
        config_body=CHECKOUT,
        baseline_scope="baseline",
        canary_scope="canary-regressed",
        location="",
        source="csv",
        start_ts=1.8e9,
        lifetime_s=3600.0,
        interval_s=1200.0,
        warmup_s=0.0,
        step_s=60.0,
        thresholds={"pass": 95.0, "marginal": 75.0},
        status="running" if intervals < 3 else "completed",
        verdict="pending" if intervals < 3 else "fail",
        score=None if not intervals else 0.0,
        reason="waiting for the first interval",
        intervals_total=3,
        created_ts=1.8e9,
        completed_ts=None,
    )
    batches = [
        [
            MetricSetPair(
                p.name,
                MetricSet(
                    p.name,
                    p.baseline.values[20 * i : 20 * i + 20],
                    p.tags,
                    p.baseline.timestamps[20 * i : 20 * i + 20],
                ),
                MetricSet(
                    p.name,
                    p.canary.values[20 * i : 20 * i + 20],
                    p.tags,
                    p.canary.timestamps[20 * i : 20 * i + 20],
                ),
                p.tags,
            )
            for p in pairs
            if p.baseline.timestamps is not None and p.canary.timestamps is not None
        ]
        for i in range(intervals)
    ]
    record.intervals = [
        IntervalRecord(
            index=i,
            window_start_ts=record.start_ts + 1200 * i,
            window_end_ts=record.start_ts + 1200 * (i + 1),
            due_ts=record.start_ts + 1200 * (i + 1),
            judged_ts=record.start_ts + 1200 * (i + 1),
            score=0.0,
            verdict="fail",
            reason=f"interval {i + 1} <fails>",
            result={**result.to_dict(), "kayenta": result.to_kayenta()},
            pairs=pairs_to_json(batch),
        )
        for i, batch in enumerate(batches)
    ]
    return record


def test_analysis_report_without_intervals_says_so() -> None:
    page = render_analysis_html(analysis_record("fixed", 0))
    text = " ".join(parse(page).text)
    assert "PENDING" in text and "No interval has been judged yet" in text and "None of 3 judged yet" in text
    assert "verdict provisional" in text and "<svg" not in page
    assert_self_contained(page)


@pytest.mark.parametrize(("mode", "points"), [("fixed", 20), ("sequential", 40)])
def test_analysis_report_plots_what_was_judged(mode: str, points: int) -> None:
    """A fixed analysis' last window holds all it judged; a sequential one's intervals are joined."""
    page = render_analysis_html(analysis_record(mode, 2), links={"analysis (JSON)": "http://k.example/a1"})
    assert page.count(f"baseline (n={points})") == 2 * 5 and page.count(f"canary (n={points})") == 2 * 5
    assert set(failing_rows(page)) == REGRESSED
    assert "interval 2 &lt;fails&gt;" in page and "Intervals (2 of 3 judged)" in page
    assert_self_contained(page, allowed_prefix="http://k.example/a1")


finite_or_not = st.floats(allow_nan=True, allow_infinity=True, width=64)
side = st.lists(finite_or_not, max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    baseline=side,
    canary=side,
    stamps=st.sampled_from([None, 0.0, 1.8e9, 1e15, -1e12]),
    stamp_step=st.sampled_from([1e-3, 1.0, 60.0, 86400.0, 1e9]),
)
def test_any_values_render_a_parseable_page(
    baseline: list[float], canary: list[float], stamps: float | None, stamp_step: float
) -> None:
    config = load_config({"name": "fuzz", "metrics": [{"name": "m", "kind": "latency"}]})

    def metric_set(values: list[float], offset: float) -> MetricSet:
        times = (
            None
            if stamps is None
            else stamps + offset + stamp_step * np.arange(len(values), dtype=np.float64)
        )
        return MetricSet("m", np.asarray(values, dtype=np.float64), timestamps=times)

    pair = MetricSetPair("m", metric_set(baseline, 0.0), metric_set(canary, 7.0))
    with np.errstate(over="ignore", invalid="ignore"):  # the judge's statistics of huge values overflow
        result = judge_pairs(config, [pair])
    page = render_result_html(result, [pair])
    parser = parse(page)
    assert parser.open == [] and len(parser.rows) == 1
    svgs = re.findall(r"<svg .*?</svg>", page, re.S)
    assert len(svgs) == (2 if pair.baseline.values.size or pair.canary.values.size else 0)
    for svg in svgs:  # every coordinate is a finite number
        for value in re.findall(r'\b(?:x|y|x1|x2|y1|y2|cx|cy|width|height)="([^"]*)"', svg):
            assert math.isfinite(float(value)), svg
        for path in re.findall(r' d="([^"]*)"', svg):
            assert re.fullmatch(r"([ML]-?\d+\.\d,-?\d+\.\d ?)+", path), path


# ---------------------------------------------------------------- the API, on a real server


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Served:
    url: str
    analysis_id: str
    report_url: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A real server (no tokens: a browser sends none) with a finished past-window regressed analysis."""
    with LiveServer(settings_for(tmp_path_factory.mktemp("served"))) as server:
        start = float(math.floor(time.time()) - 900)
        body = {
            "config": CHECKOUT,
            "baseline_scope": "baseline",
            "canary_scope": "canary-regressed",
            "source": "demo",
            "start": rfc3339(start),
            "end": rfc3339(start + 540),
            "interval": "PT3M",
            "step": 10,
            "fail_fast": False,  # judge all three intervals: a history to show
        }
        with httpx.Client(base_url=server.url, timeout=30) as client:
            created = client.post("/api/v1/analyses", json=body)
            assert created.status_code == 201, created.text
            analysis_id = created.json()["id"]
            deadline = time.monotonic() + 30
            while not client.get(f"/api/v1/analyses/{analysis_id}/verdict").json()["complete"]:
                assert time.monotonic() < deadline, "the analysis did not complete in 30 s"
                time.sleep(0.1)
            assert created.json()["links"]["report"] == f"{server.url}/api/v1/analyses/{analysis_id}/report"
        yield Served(server.url, analysis_id, f"{server.url}/api/v1/analyses/{analysis_id}/report")


def test_api_report_of_a_finished_analysis(served: Served) -> None:
    response = httpx.get(served.report_url, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    page = response.text
    analysis = httpx.get(f"{served.url}/api/v1/analyses/{served.analysis_id}", timeout=30).json()
    assert analysis["verdict"] == "fail" and analysis["status"] == "completed"
    assert_self_contained(page, allowed_prefix=f"{served.url}/api/v1/analyses/{served.analysis_id}")
    parser = parse(page)
    text = " ".join(parser.text)
    assert "FAIL" in text and served.analysis_id in text and analysis["reason"] in text
    last = analysis["intervals"][-1]["metrics"]
    names = {m["name"] for m in last}
    failing = {m["name"] for m in last if m["classification"] in ("High", "Low")}
    assert names == {m["name"] for m in CHECKOUT["metrics"]}
    assert failing and set(failing_rows(page)) == failing
    assert {row.attrs["data-metric"] for row in parser.rows} == names
    assert page.count("<svg") == 2 * len(names)
    # the history: one row per interval, with its window, score and verdict
    history = page[page.index('id="history"') :]
    assert "Intervals (3 of 3 judged)" in history
    assert history.count("<tr>") == 1 + 3
    history_text = " ".join(parse(history).text)
    for interval in analysis["intervals"]:
        assert interval["reason"] in history_text


def test_api_report_of_an_unknown_analysis_is_404_json(served: Served) -> None:
    response = httpx.get(f"{served.url}/api/v1/analyses/no-such-analysis/report", timeout=30)
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/json")
    assert "no-such-analysis" in response.json()["detail"]


def test_api_report_needs_the_read_scope_when_tokens_are_configured(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, api_tokens="write:w-token-1,read:r-token-1")
    with LiveServer(settings) as server:
        url = f"{server.url}/api/v1/analyses/unknown/report"
        assert httpx.get(url, timeout=30).status_code == 401
        bad = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=30)
        assert bad.status_code == 401
        reader = httpx.get(url, headers={"Authorization": "Bearer r-token-1"}, timeout=30)
        assert reader.status_code == 404 and reader.headers["content-type"].startswith("application/json")


# ---------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def cli_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "out.html"
    run = kayenta(
        "judge",
        "--config",
        "kayenta_py/examples/checkout.yaml",
        "--baseline",
        "kayenta_py/examples/baseline.csv",
        "--canary",
        "kayenta_py/examples/canary-regressed.csv",
        "--html",
        out,
        cwd=EXAMPLES_DIR.parent.parent,
    )
    assert run.returncode == 1, run.stderr  # fail, as without --html
    assert "verdict: FAIL" in run.stdout  # the normal output as well
    return out


def test_cli_judge_writes_the_report(cli_report: Path) -> None:
    page = cli_report.read_text(encoding="utf-8")
    assert set(failing_rows(page)) == REGRESSED
    assert "Canary report: checkout" in page and "canary-regressed.csv" in page
    assert_self_contained(page)


def test_cli_html_that_cannot_be_written_exits_2_naming_the_path(tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "out.html"
    run = kayenta(
        "judge",
        "--config",
        EXAMPLES_DIR / "checkout.yaml",
        "--baseline",
        EXAMPLES_DIR / "baseline.csv",
        "--canary",
        EXAMPLES_DIR / "canary-healthy.csv",
        "--html",
        target,
    )
    assert run.returncode == 2
    assert f"--html: cannot write {target}" in run.stderr
    assert not target.exists()


def test_cli_analyze_writes_the_report_with_the_fetched_series(tmp_path: Path) -> None:
    ensure_prometheus()
    start = default_start()
    config = {
        "name": "web",
        "metrics": [
            {"name": "p99-latency", "kind": "latency", "query": QUERY_P99_LATENCY},
        ],
    }
    config_file = tmp_path / "web.yaml"
    config_file.write_text(yaml.safe_dump(config))
    out = tmp_path / "analyze.html"
    with PrometheusServer(canary_dataset(start, minutes=20, seed=5)) as prometheus:
        run = kayenta(
            "analyze",
            "--config",
            config_file,
            "--prometheus",
            f"http://user:secret@{prometheus.url.removeprefix('http://')}",
            "--baseline-scope",
            REGRESSED_PAIR[0],
            "--canary-scope",
            REGRESSED_PAIR[1],
            "--start",
            str(start + 120),
            "--end",
            str(start + 1190),
            "--step",
            "30",
            "--html",
            out,
        )
    assert run.returncode == 1, run.stdout + run.stderr
    page = out.read_text(encoding="utf-8")
    assert set(failing_rows(page)) == {"p99-latency"}
    assert "time (UTC)" in page and page.count("<svg") == 2  # the fetched series, on a time axis
    assert "secret" not in page and REGRESSED_PAIR[1] in page


# ---------------------------------------------------------------- real headless Chromium


def assert_rendered_with_failing_rows(binary: str, url: str, tmp: Path, failing: set[str]) -> None:
    """Screenshot ``url`` and dump its DOM; check the picture and the highlighted rows."""
    png = tmp / "report.png"
    shot = chromium_run(binary, tmp / "profile-shot", f"--screenshot={png}", url)
    assert shot.returncode == 0 and png.is_file(), shot.stderr[-2000:]
    with Image.open(png) as opened:
        image = opened.convert("RGB")
    assert image.size == (1280, 2000)
    pixels = np.asarray(image, dtype=np.int16).reshape(-1, 3)
    white = np.all(pixels >= 250, axis=1)
    assert 0.03 < 1 - white.mean() < 0.9, f"{1 - white.mean():.1%} of the screenshot is not white"
    assert len(np.unique(pixels, axis=0)) > 100, "too few colors: a blank or unstyled page"
    red = np.all(np.abs(pixels - np.array(FAILING_RGB)) <= 2, axis=1)
    assert red.sum() > 5_000, f"only {red.sum()} pixels of the failing rows' {FAILING_ROW_COLOR}"

    dom = chromium_run(binary, tmp / "profile-dom", "--dump-dom", url)
    assert dom.returncode == 0, dom.stderr[-2000:]
    rows = failing_rows(dom.stdout)
    assert set(rows) == failing
    for name, row in rows.items():
        assert name in row.text  # the name is visible text in the highlighted row


def test_chromium_renders_the_api_report(chromium: str, served: Served, tmp_path: Path) -> None:
    analysis = httpx.get(f"{served.url}/api/v1/analyses/{served.analysis_id}", timeout=30).json()
    failing = {
        m["name"] for m in analysis["intervals"][-1]["metrics"] if m["classification"] in ("High", "Low")
    }
    assert_rendered_with_failing_rows(chromium, served.report_url, tmp_path, failing)


def test_chromium_renders_the_cli_report(chromium: str, cli_report: Path, tmp_path: Path) -> None:
    assert_rendered_with_failing_rows(chromium, cli_report.resolve().as_uri(), tmp_path, REGRESSED)
