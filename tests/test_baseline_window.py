"""Baselines from another time window: a blue-green switch judged against a real Prometheus.

The data (backfilled into a real Prometheus by promtool, see prometheus_harness.py) cover two
hours. ``blue`` serves the first hour and is switched off; ``green`` (healthy) and ``green-bad``
(1.6x latency, 5% errors, 1.3x CPU) serve the second. ``checkout`` serves both hours unchanged;
``checkout-broken`` regresses at the switch. Each series follows a 30-minute traffic shape, the
same in both hours, so points pair by their time since each window's start. The canary window is
the second hour, the baseline's the first (``baseline_offset`` -1h, or an explicit window),
through the CLI, the native HTTP API (fixed and sequential mode), Kayenta's canary and standalone
APIs and Flagger's metadata; bad inputs are refused naming the field.
"""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import yaml
from live_server import LiveServer, settings_for
from prometheus_harness import (
    MetricFamily,
    PrometheusServer,
    Sample,
    default_start,
    ensure_prometheus,
    render_openmetrics,
)

from kayenta_py import MetricConfig, MetricSet, Scope, load_config
from kayenta_py.cli.main import main
from kayenta_py.engine.batches import fetch_sequential_batch
from kayenta_py.model.errors import FieldError
from kayenta_py.service.baseline_window import BaselineRequest, parse_offset, resolve_offset

START = default_start()  # the first hour: blue; the second: green
SWITCH = START + 3600
STEP_S = 10
CANARY = (SWITCH + 60, SWITCH + 3590)  # the second hour, less the first minute
BASELINE = (CANARY[0] - 3600, CANARY[1] - 3600)  # the same minutes of the first hour

LATENCY = 'app_latency_seconds{service="${scope}"}'
ERRORS = 'app_error_ratio{service="${scope}"}'
CPU = 'app_cpu_utilization{service="${scope}"}'
CONFIG: dict[str, Any] = {
    "name": "bluegreen",
    "groups": {"errors": 50, "latency": 40, "saturation": 10},
    "metrics": [
        {"name": "error-ratio", "kind": "errors", "query": ERRORS},
        {"name": "latency", "kind": "latency", "query": LATENCY},
        {"name": "cpu", "kind": "saturation", "query": CPU},
    ],
}
SEQUENTIAL_CONFIG: dict[str, Any] = {
    "name": "bluegreen-sequential",
    "metrics": [
        {"name": "latency", "kind": "latency", "query": LATENCY, "judge": {"type": "sequential-rank"}},
        {"name": "cpu", "kind": "saturation", "query": CPU, "judge": {"type": "sequential-rank"}},
    ],
}
SERVICES: dict[str, tuple[tuple[float, float], bool]] = {
    # service: (the hours it serves, whether it regressed from the switch on)
    "blue": ((0, 1), False),
    "green": ((1, 2), False),
    "green-bad": ((1, 2), True),
    "checkout": ((0, 2), False),
    "checkout-broken": ((0, 2), True),
}


def bluegreen_dataset(seed: int = 3) -> str:
    """OpenMetrics text for :data:`SERVICES`: gauges every 10 s, a shape repeating every 30 minutes."""
    latency = MetricFamily("app_latency_seconds", "gauge", "p99 latency")
    errors = MetricFamily("app_error_ratio", "gauge", "5xx share")
    cpu = MetricFamily("app_cpu_utilization", "gauge", "CPU")
    for index, (service, ((first, last), regressed)) in enumerate(SERVICES.items()):
        rng = np.random.default_rng([seed, index])
        stamps = START + np.arange(int(first * 3600), int(last * 3600), STEP_S, dtype=float)
        shape = 1.0 + 0.1 * np.sin(2 * np.pi * (stamps - START) / 1800.0)
        after = (stamps >= SWITCH) & regressed
        values = (
            (latency, 0.2 * shape * np.where(after, 1.6, 1.0) * rng.lognormal(0.0, 0.15, stamps.size)),
            (errors, np.where(after, 0.05, 0.001) * rng.lognormal(0.0, 0.15, stamps.size)),
            (cpu, 0.4 * shape * np.where(after, 1.3, 1.0) * rng.lognormal(0.0, 0.08, stamps.size)),
        )
        for family, series in values:
            family.samples.extend(
                Sample(family.name, {"service": service}, round(float(v), 6), float(t))
                for t, v in zip(stamps, series, strict=True)
            )
    return render_openmetrics([latency, errors, cpu])


@pytest.fixture(scope="module")
def prometheus() -> Iterator[PrometheusServer]:
    ensure_prometheus()
    with PrometheusServer(bluegreen_dataset()) as server:
        yield server


@pytest.fixture(scope="module")
def server(prometheus: PrometheusServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp("baseline-window")
    with LiveServer(settings_for(tmp, prometheus_url=prometheus.url)) as live:
        yield live


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")  # as the answers give it


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not done after {timeout:g} s")


# ---------------------------------------------------------------- the command line


def kayenta(*args: str | Path) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "kayenta-py"
    return subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "bluegreen.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def analyze_args(config: Path, url: str, baseline: str, canary: str, *more: str) -> list[str]:
    return [
        "analyze", "--config", str(config), "--prometheus", url,
        "--baseline-scope", baseline, "--canary-scope", canary,
        "--start", str(CANARY[0]), "--end", str(CANARY[1]), "--step", "30", *more,
    ]  # fmt: skip


def analyze(
    config: Path, url: str, baseline: str, canary: str, *more: str
) -> subprocess.CompletedProcess[str]:
    """Run ``kayenta-py analyze`` in this process (as the command does; a process costs seconds here)."""
    args = analyze_args(config, url, baseline, canary, *more)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(args)
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


@pytest.mark.parametrize(
    ("baseline", "canary", "code", "verdict"),
    [
        pytest.param("blue", "green-bad", 1, "fail", id="blue-green-regressed"),
        pytest.param("blue", "green", 0, "pass", id="blue-green-healthy"),
        pytest.param("checkout-broken", "checkout-broken", 1, "fail", id="regressed-at-the-switch"),
        pytest.param("checkout", "checkout", 0, "pass", id="unchanged"),
    ],
)
def test_cli_judges_the_canary_against_the_hour_before(
    prometheus: PrometheusServer, config_file: Path, baseline: str, canary: str, code: int, verdict: str
) -> None:
    run = analyze(
        config_file, prometheus.url, baseline, canary, "--baseline-offset", "-1h", "--format", "json"
    )
    assert run.returncode == code, run.stdout + run.stderr
    result = json.loads(run.stdout)
    assert result["verdict"] == verdict
    assert result["windows"]["baseline"] == {
        "start": rfc3339(BASELINE[0]),
        "end": rfc3339(BASELINE[1]),
        "offset_s": -3600.0,
    }
    assert result["windows"]["canary"] == {"start": rfc3339(CANARY[0]), "end": rfc3339(CANARY[1])}
    latency = next(m for m in result["metrics"] if m["name"] == "latency")
    assert latency["baseline"]["count"] == latency["canary"]["count"] == 118  # both hours, every 30 s
    if verdict == "fail":
        assert latency["classification"] == "High"


def test_cli_explicit_baseline_window_and_its_report(
    prometheus: PrometheusServer, config_file: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.html"
    run = kayenta(  # the real command, in its own process
        *analyze_args(config_file, prometheus.url, "blue", "green-bad"),
        "--baseline-start", rfc3339(BASELINE[0]), "--baseline-end", str(BASELINE[1]), "--html", str(report),
    )  # fmt: skip
    assert run.returncode == 1, run.stdout + run.stderr
    assert f"baseline window: {rfc3339(BASELINE[0])} to {rfc3339(BASELINE[1])}" in run.stdout
    page = report.read_text()
    assert "baseline window" in page and "offset -1h" in page


def test_cli_without_the_offset_blue_is_no_evidence_and_never_a_pass(
    prometheus: PrometheusServer, config_file: Path
) -> None:
    # Same window: blue stopped at the switch (Prometheus still answers its last point for 5
    # minutes), so its baseline is thin and stale; a baseline window before any data is empty.
    early = analyze(
        config_file, prometheus.url, "blue", "green", "--baseline-offset", "-3h", "--format", "json"
    )
    assert early.returncode != 0, early.stdout
    result = json.loads(early.stdout)
    assert result["verdict"] != "pass"
    assert {m["classification"] for m in result["metrics"]} <= {"Nodata", "NodataFailMetric"}


@pytest.mark.parametrize(
    ("more", "option"),
    [
        pytest.param(("--baseline-offset", "-1h", "--baseline-start", "0"), "--baseline-offset", id="both"),
        pytest.param(("--baseline-offset", "an hour ago"), "--baseline-offset", id="unparsable"),
        pytest.param(("--baseline-offset", "+P3650D"), "--baseline-offset", id="too-far"),
        pytest.param(("--baseline-offset", "P1D"), "--baseline-offset", id="future"),
        pytest.param(("--baseline-start", str(BASELINE[0])), "--baseline-end", id="start-only"),
        pytest.param(
            ("--baseline-start", str(BASELINE[0]), "--baseline-end", str(BASELINE[1] - 600)),
            "--baseline-end",
            id="shorter",
        ),
        pytest.param(
            ("--baseline-start", "now", "--baseline-end", str(time.time() + 3530)),
            "--baseline-end",
            id="future-window",
        ),
    ],
)
def test_cli_refuses_bad_baseline_windows_naming_the_option(
    prometheus: PrometheusServer, config_file: Path, more: tuple[str, ...], option: str
) -> None:
    run = analyze(config_file, prometheus.url, "blue", "green", *more)
    assert run.returncode == 2, run.stdout + run.stderr
    assert run.stderr.startswith(f"error: {option}:"), run.stderr
    assert "Traceback" not in run.stderr


# ---------------------------------------------------------------- the native HTTP API


def post_analysis(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/analyses", json=body, timeout=15)


def completed(server: LiveServer, analysis_id: str) -> dict[str, Any]:
    url = f"{server.url}/api/v1/analyses/{analysis_id}"
    return wait_for(  # type: ignore[no-any-return]
        lambda: (d := httpx.get(url, timeout=10).json())["status"] != "running" and d, 60, analysis_id
    )


def native_body(baseline: str, canary: str, **more: Any) -> dict[str, Any]:
    return {
        "config": CONFIG,
        "baseline_scope": baseline,
        "canary_scope": canary,
        "source": "prometheus",
        "start": rfc3339(CANARY[0]),
        "end": rfc3339(CANARY[1]),
        "step": 30,
        "mode": "fixed",
        **more,
    }


@pytest.mark.parametrize(
    ("canary", "verdict"),
    [pytest.param("green-bad", "fail", id="regressed"), pytest.param("green", "pass", id="healthy")],
)
def test_native_api_blue_green(server: LiveServer, canary: str, verdict: str) -> None:
    started = post_analysis(server, native_body("blue", canary, baseline_offset="-PT1H", interval="PT30M"))
    assert started.status_code == 201, started.text
    document = completed(server, started.json()["id"])
    assert document["status"] == "completed" and document["verdict"] == verdict, document["reason"]
    assert document["baseline_offset_s"] == -3600
    assert (document["baseline_start"], document["baseline_end"]) == (
        rfc3339(BASELINE[0]),
        rfc3339(BASELINE[1]),
    )
    assert (document["start"], document["end"]) == (rfc3339(CANARY[0]), rfc3339(CANARY[1]))
    first = document["intervals"][0]
    assert epoch(first["baseline_window"]["start"]) == epoch(first["window"]["start"]) - 3600
    assert epoch(first["baseline_window"]["end"]) == epoch(first["window"]["end"]) - 3600
    report = httpx.get(f"{server.url}/api/v1/analyses/{document['id']}/report", timeout=10).text
    assert "baseline window" in report and "offset -1h" in report
    first_baseline = datetime.fromtimestamp(epoch(first["baseline_window"]["start"]), UTC)
    assert f"baseline {first_baseline:%Y-%m-%d %H:%M:%S} UTC to" in report  # the intervals table
    # Each side was fetched over its own window: the stored points keep their own times.
    stored = server.service.store.get_analysis(document["id"], with_intervals=True)
    assert stored is not None and stored.baseline_offset_s == -3600
    pair = next(p for p in stored.intervals[-1].pairs if p["name"] == "latency")
    base_times, canary_times = pair["baseline"]["timestamps"], pair["canary"]["timestamps"]
    assert base_times and BASELINE[0] <= min(base_times) and max(base_times) <= BASELINE[1]
    assert CANARY[0] <= min(canary_times) and max(canary_times) <= CANARY[1]


def test_native_api_explicit_window_equals_the_offset(server: LiveServer) -> None:
    body = native_body(
        "blue", "green-bad", baseline_start=rfc3339(BASELINE[0]), baseline_end=rfc3339(BASELINE[1])
    )
    started = post_analysis(server, body)
    assert started.status_code == 201, started.text
    document = completed(server, started.json()["id"])
    assert document["verdict"] == "fail" and document["baseline_offset_s"] == -3600


def test_sequential_mode_pairs_by_time_since_each_window_start(server: LiveServer) -> None:
    body = native_body("blue", "green-bad", baseline_offset="-1h", interval="PT15M", mode="sequential")
    body["config"] = SEQUENTIAL_CONFIG
    started = post_analysis(server, body)
    assert started.status_code == 201, started.text
    document = completed(server, started.json()["id"])
    assert document["mode"] == "sequential"
    assert document["verdict"] == "fail", document["reason"]
    assert "High" in {m["classification"] for m in document["intervals"][-1]["metrics"]}
    # Each interval's new points: the baseline's an hour before the canary's, paired point by point.
    stored = server.service.store.get_analysis(document["id"], with_intervals=True)
    assert stored is not None
    for interval in stored.intervals:
        for pair in interval.pairs:
            base, canary = pair["baseline"]["timestamps"], pair["canary"]["timestamps"]
            assert len(base) == len(canary) >= 25
            assert [t + 3600 for t in base] == canary
    healthy = post_analysis(server, {**body, "canary_scope": "green"})
    assert healthy.status_code == 201, healthy.text
    assert completed(server, healthy.json()["id"])["verdict"] != "fail"


class _Shifted:
    """A source whose two scopes hold the same series, the baseline's an hour earlier."""

    def fetch(self, metric: MetricConfig, scope: Scope, start: float | None = None,
              end: float | None = None, step: float | None = None) -> list[MetricSet]:  # fmt: skip
        assert start is not None and end is not None and step is not None
        stamps = np.arange(start, end + step / 2, step)
        shift = 3600.0 if scope.scope == "before" else 0.0
        if scope.scope == "empty":
            return []
        values = np.sin((stamps + shift) / 300.0) + (stamps + shift) / 1e6  # the same curve, an hour apart
        return [MetricSet(metric.name, values, {}, stamps)]


def test_sequential_batches_pair_points_by_relative_time() -> None:
    config = load_config({"name": "c", "metrics": [{"name": "m", "judge": {"type": "sequential-rank"}}]},
                         mode="sequential")  # fmt: skip
    begin = 1_800_000_000.0
    batch = fetch_sequential_batch(
        config, _Shifted(), Scope("before"), Scope("after"),
        start=begin, end=begin + 600, step=60, after=begin, baseline_offset=-3600,
    )  # fmt: skip
    base, canary = batch.baseline["m"], batch.canary["m"]
    assert len(base) == len(canary) == 10  # the point at the window's start belongs to the previous batch
    np.testing.assert_allclose(base, canary)  # the same curve: each point met its partner
    stored = next(p for p in batch.pairs if p.name == "m")
    assert stored.baseline.timestamps is not None and stored.baseline.timestamps[0] == begin - 3600
    # Nothing to pair: no pairs, so no evidence (never a pass).
    empty = fetch_sequential_batch(
        config, _Shifted(), Scope("empty"), Scope("after"), start=begin, end=begin + 600, step=60,
        baseline_offset=-3600,
    )  # fmt: skip
    assert len(empty.baseline["m"]) == len(empty.canary["m"]) == 0


@pytest.mark.parametrize(
    ("more", "field"),
    [
        pytest.param(
            {"baseline_offset": "-1h", "baseline_start": rfc3339(BASELINE[0])}, "baseline_offset", id="both"
        ),
        pytest.param({"baseline_offset": "last week"}, "baseline_offset", id="unparsable"),
        pytest.param({"baseline_offset": "P2D"}, "baseline_offset", id="future"),
        pytest.param({"baseline_end": rfc3339(BASELINE[1])}, "baseline_start", id="end-only"),
        pytest.param(
            {"baseline_start": rfc3339(BASELINE[0]), "baseline_end": rfc3339(BASELINE[1] + 900)},
            "baseline_end",
            id="longer",
        ),
        pytest.param(
            {"baseline_start": "yesterday", "baseline_end": rfc3339(BASELINE[1])}, "baseline_start", id="bad"
        ),
    ],
)
def test_native_api_refuses_bad_baseline_windows(
    server: LiveServer, more: dict[str, Any], field: str
) -> None:
    answer = post_analysis(server, native_body("blue", "green", **more))
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"][0]
    assert detail["loc"] == ["body", field], detail
    assert "Traceback" not in answer.text


# ---------------------------------------------------------------- Kayenta's APIs


def kayenta_config() -> dict[str, Any]:
    def metric(name: str, query: str, group: str) -> dict[str, Any]:
        return {
            "name": name,
            "query": {"type": "prometheus", "customInlineTemplate": "PromQL:" + query},
            "groups": [group],
            "analysisConfigurations": {"canary": {"direction": "increase", "nanStrategy": "remove"}},
            "scopeName": "default",
        }

    return {
        "name": "bluegreen",
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "metrics": [metric("latency", LATENCY, "latency"), metric("cpu", CPU, "saturation")],
        "classifier": {"groupWeights": {"latency": 70, "saturation": 30}},
    }


def kayenta_scope(scope: str, window: tuple[float, float]) -> dict[str, Any]:
    return {"scope": scope, "start": rfc3339(window[0]), "end": rfc3339(window[1]), "step": 30}


@pytest.mark.parametrize(("canary", "passed"), [("green-bad", False), ("green", True)])
def test_kayenta_canary_with_its_own_control_window(server: LiveServer, canary: str, passed: bool) -> None:
    execution = {
        "scopes": {
            "default": {
                "controlScope": kayenta_scope("blue", BASELINE),
                "experimentScope": kayenta_scope(canary, CANARY),
            }
        },
        "thresholds": {"pass": 90, "marginal": 75},
    }
    started = httpx.post(
        f"{server.url}/canary",
        params={"metricsAccountName": "prometheus"},
        json={"canaryConfig": kayenta_config(), "executionRequest": execution},
        timeout=15,
    )
    assert started.status_code == 200, started.text
    url = f"{server.url}/canary/{started.json()['canaryExecutionId']}"
    document = wait_for(lambda: (d := httpx.get(url, timeout=10).json())["complete"] and d, 60, "canary")
    score = document["result"]["judgeResult"]["score"]["score"]
    assert (score >= 90) is passed, document["result"]["judgeResult"]["score"]
    record = server.service.store.get_analysis(started.json()["canaryExecutionId"], with_intervals=False)
    assert record is not None and record.baseline_offset_s == -3600


def test_kayenta_canary_refuses_control_windows_of_another_length(server: LiveServer) -> None:
    execution = {
        "scopes": {
            "default": {
                "controlScope": kayenta_scope("blue", (BASELINE[0], BASELINE[1] - 600)),
                "experimentScope": kayenta_scope("green", CANARY),
            }
        }
    }
    answer = httpx.post(
        f"{server.url}/canary",
        json={"canaryConfig": kayenta_config(), "executionRequest": execution},
        timeout=15,
    )
    assert answer.status_code == 422, answer.text
    assert "scopes.default.controlScope.end" in json.dumps(answer.json())


@pytest.mark.parametrize(("canary", "passed"), [("green-bad", False), ("green", True)])
def test_kayenta_standalone_control_offset(server: LiveServer, canary: str, passed: bool) -> None:
    request = {
        "scopes": [
            {
                "controlScope": "blue",
                "experimentScope": canary,
                "controlOffsetInMinutes": "60",  # Kayenta subtracts it from the control's window
                "startTimeIso": rfc3339(CANARY[0]),
                "endTimeIso": rfc3339(CANARY[1]),
                "step": 30,
            }
        ],
        "thresholds": {"pass": 90, "marginal": 75},
        "analysisIntervalMins": 30,
    }
    started = httpx.post(
        f"{server.url}/standalone_canary_analysis",
        params={"metricsAccountName": "prometheus"},
        json={"canaryConfig": kayenta_config(), "executionRequest": request},
        timeout=15,
    )
    assert started.status_code == 200, started.text
    url = f"{server.url}/standalone_canary_analysis/{started.json()['canaryAnalysisExecutionId']}"
    document = wait_for(lambda: (d := httpx.get(url, timeout=10).json())["complete"] and d, 60, "standalone")
    assert document["canaryAnalysisExecutionResult"]["didPassThresholds"] is passed, document
    assert not any("controlOffsetInMinutes" in w for w in document.get("warnings", []))


def test_kayenta_standalone_refuses_a_control_offset_into_the_future(server: LiveServer) -> None:
    now = time.time()
    request = {
        "scopes": [
            {
                "controlScope": "blue",
                "experimentScope": "green",
                "controlOffsetInMinutes": -60,  # a later control, ending in the future
                "startTimeIso": rfc3339(now - 1800),
                "endTimeIso": rfc3339(now - 60),
            }
        ]
    }
    answer = httpx.post(
        f"{server.url}/standalone_canary_analysis",
        json={"canaryConfig": kayenta_config(), "executionRequest": request},
        timeout=15,
    )
    assert answer.status_code == 422, answer.text
    assert "scopes[0].controlOffsetInMinutes" in answer.text and "future" in answer.text


# ---------------------------------------------------------------- Flagger


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with LiveServer(settings_for(tmp_path_factory.mktemp("flagger"), default_source="demo")) as live:
        config = {"name": "podinfo", "metrics": [{"name": "p50-latency", "kind": "latency"}]}
        stored = httpx.post(
            f"{live.url}/api/v1/configs", json={"name": "podinfo", "config": config}, timeout=10
        )
        assert stored.status_code == 201, stored.text
        yield live


def flagger(server: LiveServer, checksum: str, **metadata: Any) -> httpx.Response:
    payload = {"name": "podinfo", "namespace": "test", "phase": "Progressing", "checksum": checksum}
    body = {**payload, "metadata": {"config": "podinfo", "mode": "fixed", **metadata}}
    return httpx.post(f"{server.url}/api/v1/flagger/pre-rollout", json=body, timeout=15)


def test_flagger_metadata_baseline_offset(demo_server: LiveServer) -> None:
    answer = flagger(demo_server, "c1", baseline_offset="-PT1H", lifetime="2s", interval="2s", step="1")
    assert answer.status_code == 200, answer.text
    analysis_id = answer.text.split()[1]
    record = demo_server.service.store.get_analysis(analysis_id, with_intervals=False)
    assert record is not None and record.baseline_offset_s == -3600
    judged = wait_for(
        lambda: (
            (r := demo_server.service.store.get_analysis(analysis_id, with_intervals=True))
            and r.intervals
            and r
        ),
        30,
        "the Flagger analysis' first interval",
    )
    interval = judged.intervals[0]
    pair = interval.pairs[0]
    # The primary's points come from an hour before the canary interval's.
    assert pair["baseline"]["timestamps"] and pair["canary"]["timestamps"]
    assert max(pair["baseline"]["timestamps"]) <= interval.window_end_ts - 3600
    assert min(pair["baseline"]["timestamps"]) >= interval.window_start_ts - 3600 - 1
    assert min(pair["canary"]["timestamps"]) >= interval.window_start_ts - 1


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("sometime", id="unparsable"),
        pytest.param("PT1H", id="future"),
        pytest.param({"h": 1}, id="object"),
    ],
)
def test_flagger_refuses_bad_baseline_offsets(demo_server: LiveServer, value: Any) -> None:
    answer = flagger(demo_server, f"bad-{value}", baseline_offset=value)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "metadata", "baseline_offset"], answer.text


# ---------------------------------------------------------------- the rules, without servers


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("-P7D", -7 * 86400), ("-PT1H", -3600), ("-1h30m", -5400), ("+90m", 5400), ("-3600", -3600), (-60, -60)],
)
def test_offsets_read_iso_8601_go_and_seconds(text: str | int, seconds: float) -> None:
    assert parse_offset(text) == seconds


@pytest.mark.parametrize("text", ["", "-", "--1h", "P", "-1 hour", "nan", True])
def test_unreadable_offsets_name_the_field(text: Any) -> None:
    with pytest.raises(FieldError) as caught:
        parse_offset(text, "baseline_offset")
    assert caught.value.field == "baseline_offset"


def test_a_positive_offset_is_fine_when_the_baseline_is_already_recorded() -> None:
    now = 2_000_000_000.0
    given = BaselineRequest(offset="PT1H")
    assert resolve_offset(given, start_ts=now - 7200, end_ts=now - 3600, now=now) == 3600
    with pytest.raises(FieldError, match="future"):
        resolve_offset(given, start_ts=now - 7200, end_ts=now - 3500, now=now)
    # A negative offset is never in the future: each interval's baseline ends before its canary's.
    assert resolve_offset(BaselineRequest(offset="-1h"), start_ts=now, end_ts=now + 7200, now=now) == -3600
    assert resolve_offset(BaselineRequest(offset="0"), start_ts=now, end_ts=now + 60, now=now) is None
    explicit = BaselineRequest(start=now - 3660, end=now - 3600)
    assert resolve_offset(explicit, start_ts=now - 60, end_ts=now, now=now) == -3600
