"""The InfluxDB 1.x source against a real influxd (Debian's package) on free loopback ports.

The data are written with the line protocol (influxdb_harness.py); analyses run through the
engine (``kayenta_py.analyze``) and ``kayenta-py query``/``analyze``. Retries and permanent 4xx
are checked against a small real HTTP server answering like InfluxDB.
"""

from __future__ import annotations

import json
import os
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
import requests
import yaml
from influxdb_harness import InfluxDB, canary_lines, ensure_influxd
from prometheus_harness import default_start, free_port

import kayenta_py
from kayenta_py import Classification, Scope, SourceError, Verdict
from kayenta_py.testing import check_source
from metrics_sources import InfluxDBSource
from metrics_sources.influxql import TemplateError, escape_string

START = default_start()
WINDOW = (START, START + 3600)
BY_STEP = "${timeFilter} GROUP BY time(${interval})"
WHERE = "\"version\" = '${scope}' AND " + BY_STEP
LATENCY = 'SELECT mean("latency_ms") FROM "requests" WHERE '

CONFIG: dict[str, Any] = {
    "name": "web",
    "groups": {"errors": 50, "latency": 50},
    "metrics": [
        {
            "name": "error-ratio",
            "kind": "errors",
            "query": f'SELECT sum("errors") / sum("count") FROM "requests" WHERE {WHERE}',
        },
        {"name": "latency", "kind": "latency", "query": LATENCY + WHERE},
    ],
}
HOSTILE = [
    "v1-base' OR '1'='1",
    "v1-base'; DROP DATABASE canary; --",
    'v1-base" OR 1=1',
    "v1-base\nSELECT * FROM requests",
    "v1-base\\",
    "v1-base\\' OR 'a'='a",
    'v1-base\' OR "version" =~ /.*/ --',
]


@pytest.fixture(scope="module")
def influx() -> Iterator[InfluxDB]:
    ensure_influxd()
    with InfluxDB() as server:
        server.create_database("canary")
        server.write("canary", canary_lines(START))
        yield server


@pytest.fixture(scope="module")
def source(influx: InfluxDB) -> InfluxDBSource:
    return InfluxDBSource(influx.url, database="canary", retries=1, backoff=0.01)


def analyze(source: InfluxDBSource, baseline: str, canary: str) -> kayenta_py.CanaryResult:
    return kayenta_py.analyze(
        CONFIG, source, Scope(baseline), Scope(canary), start=WINDOW[0], end=WINDOW[1], step=60
    )


def test_healthy_canary_passes(source: InfluxDBSource) -> None:
    result = analyze(source, "v1-base", "v1-canary")
    assert result.verdict is Verdict.PASS, result.reason


def test_regressed_canary_fails_naming_its_metrics(source: InfluxDBSource) -> None:
    result = analyze(source, "v2-base", "v2-canary")
    assert result.verdict is Verdict.FAIL
    assert {m.name: m.classification for m in result.metrics} == {
        "error-ratio": Classification.HIGH,
        "latency": Classification.HIGH,
    }


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_scope_stays_a_string_literal(source: InfluxDBSource, influx: InfluxDB, hostile: str) -> None:
    config = kayenta_py.load_config(CONFIG)
    latency = config.metric("latency")
    rendered = source.render(latency, Scope(hostile), *WINDOW, 60)
    assert f"\"version\" = '{escape_string(hostile)}' AND time >= " in rendered
    assert source.fetch(latency, Scope(hostile), *WINDOW, 60) == []  # matches no version
    result = analyze(source, "v1-base", hostile)
    assert result.verdict is Verdict.FAIL  # no canary data is never a pass
    databases = requests.get(f"{influx.url}/query", params={"q": "SHOW DATABASES"}, timeout=5).json()
    assert ["canary"] in databases["results"][0]["series"][0]["values"]
    assert len(source.fetch(latency, Scope("v1-base"), *WINDOW, 60)) == 1  # data untouched


def test_a_hostile_scope_matches_exactly_its_own_tag_value(influx: InfluxDB) -> None:
    """A version tagged with the hostile text itself is found, and only it: the literal is exact."""
    hostile = "v9' OR '1'='1\"; DROP DATABASE canary; --"
    tag = hostile.replace(" ", "\\ ").replace(",", "\\,").replace("=", "\\=")
    influx.write("canary", [f"requests,version={tag} latency_ms=7,errors=0i,count=1i {int(START) + 30}"])
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (series,) = InfluxDBSource(influx.url, database="canary").fetch(latency, Scope(hostile), *WINDOW, 60)
    assert series.values[0] == 7.0 and np.isnan(series.values[1:]).all()


def test_values_are_escaped_for_where_they_stand(source: InfluxDBSource) -> None:
    config = kayenta_py.load_config(
        {
            "name": "q",
            "metrics": [
                {"name": "regex", "query": LATENCY + '"version" =~ /^${scope}$/ AND ' + BY_STEP},
                {"name": "ident", "query": 'SELECT mean("${field}") FROM "requests" WHERE ' + WHERE},
                {"name": "bare", "query": LATENCY + '"version" = ${scope} AND ' + BY_STEP},
            ],
        }
    )
    regex, ident, bare = (config.metric(name) for name in ("regex", "ident", "bare"))
    assert len(source.fetch(regex, Scope("v1-base"), *WINDOW, 60)) == 1
    assert source.fetch(regex, Scope("v1-base/ OR /.*"), *WINDOW, 60) == []  # / and .* escaped
    for value in ("v1-base\\", "v1-base\nx"):
        with pytest.raises(TemplateError, match=r"\$\{scope\} stands in a regular expression"):
            source.fetch(regex, Scope(value), *WINDOW, 60)
    field = Scope("v1-base", params={"field": 'latency_ms") FROM "requests" --'})
    assert '"latency_ms\\") FROM \\"requests\\" --"' in source.render(ident, field, *WINDOW, 60)
    assert source.fetch(ident, field, *WINDOW, 60) == []
    for value in ("v1-base' OR '1'='1", "OR", "1 OR 1=1"):
        with pytest.raises(TemplateError, match=r"\$\{scope\} stands outside quotes"):
            source.fetch(bare, Scope(value), *WINDOW, 60)
    with pytest.raises(TemplateError, match=r"undefined variable \$\{field\}"):
        source.fetch(ident, Scope("v1-base"), *WINDOW, 60)


def test_the_source_keeps_the_contract(source: InfluxDBSource) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    check_source(source, latency, Scope("v1-base", "eu"), WINDOW[0] + 7, WINDOW[1] - 7, 60.0)


def test_series_sit_on_the_step_grid_and_long_windows_are_chunked(influx: InfluxDB) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    whole = InfluxDBSource(influx.url, database="canary").fetch(latency, Scope("v1-base"), *WINDOW, 30)
    chunked = InfluxDBSource(influx.url, database="canary", max_points=7).fetch(
        latency, Scope("v1-base"), *WINDOW, 30
    )
    (series,) = whole
    assert series.timestamps is not None
    assert np.array_equal(series.timestamps, START + 30.0 * np.arange(120))
    assert np.isfinite(series.values).all()
    assert np.array_equal(chunked[0].values, series.values)
    gap = InfluxDBSource(influx.url, database="canary").fetch(
        latency, Scope("v1-base"), WINDOW[1] - 600, WINDOW[1] + 600, 60
    )[0]
    assert gap.values.size == 20 and np.isfinite(gap.values[:10]).all() and np.isnan(gap.values[10:]).all()


def test_grouped_series_keep_their_tags(source: InfluxDBSource) -> None:
    config = kayenta_py.load_config(
        {
            "name": "g",
            "metrics": [
                {
                    "name": "latency",
                    "query": (
                        'SELECT mean("latency_ms"), max("latency_ms") FROM "requests" '
                        'WHERE "version" =~ /^v1-/ AND ${timeFilter} GROUP BY time(${interval}), "version"'
                    ),
                }
            ],
        }
    )
    sets = source.fetch(config.metric("latency"), Scope("x"), *WINDOW, 300)
    tags = sorted((s.tags["version"], s.tags["field"]) for s in sets)
    assert tags == [("v1-base", "max"), ("v1-base", "mean"), ("v1-canary", "max"), ("v1-canary", "mean")]


def test_a_refused_query_is_a_permanent_error_with_influxdbs_message(source: InfluxDBSource) -> None:
    config = kayenta_py.load_config(
        {
            "name": "b",
            "metrics": [{"name": "bad", "query": "SELECT mean(latency_ms FROM requests WHERE " + BY_STEP}],
        }
    )
    with pytest.raises(SourceError, match="error parsing query") as caught:
        source.fetch(config.metric("bad"), Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient is False and caught.value.metric == "bad"


def test_templates_need_the_time_filter_and_interval(source: InfluxDBSource) -> None:
    config = kayenta_py.load_config(
        {
            "name": "t",
            "metrics": [
                {"name": "nofilter", "query": "SELECT mean(x) FROM y GROUP BY time(${interval})"},
                {"name": "nointerval", "query": "SELECT mean(x) FROM y WHERE ${timeFilter}"},
            ],
        }
    )
    with pytest.raises(TemplateError, match=r"needs \$\{timeFilter\}"):
        source.fetch(config.metric("nofilter"), Scope("v1"), *WINDOW, 60)
    with pytest.raises(TemplateError, match=r"needs GROUP BY time\(\$\{interval\}\)"):
        source.fetch(config.metric("nointerval"), Scope("v1"), *WINDOW, 60)


def test_kayenta_influxdb_queries_load_and_run(source: InfluxDBSource, tmp_path: Path) -> None:
    kayenta = {
        "name": "k",
        "configVersion": "1",
        "templates": {},
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "classifier": {"groupWeights": {"latency": 100}},
        "metrics": [
            {
                "name": "latency",
                "groups": ["latency"],
                "scopeName": "default",
                "query": {"type": "influxdb", "metricName": "requests", "fields": ["latency_ms"]},
                "analysisConfigurations": {"canary": {"direction": "increase"}},
            }
        ],
    }
    config = kayenta_py.load_config(kayenta)
    result = kayenta_py.analyze(
        config, source, Scope("version:v2-base"), Scope("version:v2-canary"), start=WINDOW[0], end=WINDOW[1]
    )
    assert result.verdict is Verdict.FAIL and result.metrics[0].classification is Classification.HIGH
    hostile = Scope("version:v2-canary' OR '1'='1")
    assert source.fetch(config.metric("latency"), hostile, *WINDOW, 60) == []
    with pytest.raises(TemplateError, match="name:value"):
        source.fetch(config.metric("latency"), Scope("v2-canary"), *WINDOW, 60)


def test_settings_and_the_query_command(influx: InfluxDB, tmp_path: Path) -> None:
    settings = {"influxdb_url": influx.url, "influxdb_database": "canary", "fetch_concurrency": 4}
    assert InfluxDBSource.is_configured(settings) and not InfluxDBSource.is_configured({"influxdb_url": "x"})
    assert InfluxDBSource.endpoint(settings) == influx.url
    assert isinstance(InfluxDBSource.from_settings(settings), InfluxDBSource)
    config = tmp_path / "web.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "KAYENTA_INFLUXDB_URL": influx.url, "KAYENTA_INFLUXDB_DATABASE": "canary"}
    script = Path(sys.executable).parent / "kayenta-py"
    window = ["--start", str(WINDOW[0]), "--end", str(WINDOW[1])]
    run = subprocess.run(
        [
            str(script),
            "query",
            "--source",
            "influxdb",
            "--config",
            str(config),
            "--metric",
            "latency",
            "--scope",
            "v2-canary",
            *window,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "\"version\" = 'v2-canary'" in run.stdout and "60 points, 0 missing" in run.stdout
    run = subprocess.run(
        [
            str(script),
            "analyze",
            "--source",
            "influxdb",
            "--config",
            str(config),
            "--baseline-scope",
            "v2-base",
            "--canary-scope",
            "v2-canary",
            *window,
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["verdict"] == "fail"


def test_unreachable_influxdb_is_a_transient_error_after_the_retries() -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    dead = InfluxDBSource(f"http://127.0.0.1:{free_port()}", database="canary", retries=2, backoff=0.01)
    began = time.monotonic()
    refused = r"cannot connect \(Connection refused\) \(after 2 retries\)"
    with pytest.raises(SourceError, match=refused) as caught:
        dead.fetch(latency, Scope("v1"), *WINDOW, 60)
    assert caught.value.transient and time.monotonic() - began < 5


class _Flaky(BaseHTTPRequestHandler):
    """Answers like InfluxDB after ``failures`` transient errors; ``status`` 400 refuses at once."""

    answers: ClassVar[list[int]] = []
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.seen.append(self.path)
        status = self.answers.pop(0) if self.answers else 200
        body = (
            {
                "results": [
                    {
                        "statement_id": 0,
                        "series": [
                            {
                                "name": "requests",
                                "columns": ["time", "mean"],
                                "values": [[START, 1.5], [START + 60, None]],
                            }
                        ],
                    }
                ]
            }
            if status == 200
            else {"error": f"status {status}"}
        )
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flaky)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Flaky.seen.clear()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_429_and_503_are_retried_then_succeed(flaky: str) -> None:
    _Flaky.answers[:] = [429, 503]
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    source = InfluxDBSource(flaky, database="canary", retries=3, backoff=0.01, username="u", password="p")
    (series,) = source.fetch(latency, Scope("v1"), START, START + 120, 60)
    assert len(_Flaky.seen) == 3 and series.values[0] == 1.5 and np.isnan(series.values[1])
    _Flaky.answers[:] = [503] * 5
    with pytest.raises(SourceError, match=r"HTTP 503: status 503 \(after 3 retries\)") as caught:
        source.fetch(latency, Scope("v1"), START, START + 120, 60)
    assert caught.value.transient and caught.value.status == 503
    assert "p@" not in repr(source) and "u:p" not in str(caught.value)


def test_a_4xx_fails_at_once(flaky: str) -> None:
    _Flaky.answers[:] = [401]
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    source = InfluxDBSource(flaky, database="canary", retries=3, backoff=0.01)
    with pytest.raises(SourceError, match="HTTP 401: status 401") as caught:
        source.fetch(latency, Scope("v1"), START, START + 120, 60)
    assert not caught.value.transient and len(_Flaky.seen) == 1


def test_the_bundled_example_renders(source: InfluxDBSource) -> None:
    from kayenta_py.examples import EXAMPLES_DIR

    config = kayenta_py.load_config(EXAMPLES_DIR / "influxdb.yaml")
    rendered = source.render(config.metric("p99-latency"), Scope("v2", "eu"), *WINDOW, 60)
    assert "\"version\" = 'v2' AND \"region\" = 'eu' AND time >= " in rendered
    assert source.fetch(config.metric("error-ratio"), Scope("v2"), *WINDOW, 60) == []  # no such measurement
