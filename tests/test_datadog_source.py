"""The Datadog source against RECORDED answers of Datadog's documented metrics query API v1.

No live Datadog account can be reached here: tests/recorded/datadog/ holds answers written by hand
from Datadog's public API reference (``GET /api/v1/query``), served by a real HTTP server on a free
loopback port (recorded_server.py). The server checks each request (path, DD-API-KEY and
DD-APPLICATION-KEY headers, the query text) and fills the recorded body with the test's baseline
and canary values; analyses run through the engine and the ``kayenta-py`` command.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from recorded_server import Answer, RecordedServer, Request, recorded, serve, value

import kayenta_py
from kayenta_py import Classification, KayentaError, Scope, SourceError, Verdict
from kayenta_py.model.errors import ConfigError, FieldError
from kayenta_py.testing import check_source
from metrics_sources import DatadogSource
from metrics_sources.datadog import DatadogSettings
from metrics_sources.ddquery import TemplateError

API_KEY, APP_KEY = "ddapikey0123456789abcdef", "ddappkey0123456789abcdef0123456789abcdef"
START = 1_700_000_000 - 1_700_000_000 % 3600
WINDOW = (START, START + 3600)
LATENCY = "avg:trace.http.request.duration{service:web,version:${scope}}"
ERRORS = "sum:trace.http.request.errors{service:web,version:${scope}}.as_count().rollup(sum, ${interval})"
CONFIG: dict[str, Any] = {
    "name": "web",
    "groups": {"errors": 50, "latency": 50},
    "metrics": [
        {"name": "latency", "kind": "latency", "query": LATENCY},
        {"name": "errors", "kind": "errors", "query": ERRORS},
    ],
}
_QUERY = re.compile(
    r"(?:(?:avg|sum):)?trace\.http\.request\.(?P<metric>duration|errors)\{(?P<tags>[^{}]*)\}"
    r"(?:\.as_count\(\))?\.rollup\((?:avg|sum), (?P<step>\d+)\)"
)
HOSTILE = [
    "v1-base,version:v2-canary",
    "v1-base}",
    "v1-base} by {host",
    "v1-base OR version:v2-canary",
    "*",
    "v1-*",
    "!v1-base",
    "-v1-base",
    "v1-base'",
    'v1-base"',
    "v1-base\nx",
    "v1-base(x)",
    "v1-base\\",
    "",
    "x" * 201,
]


def answer(request: Request) -> Answer:
    """Datadog's answer to one request, as its API reference documents it."""
    if request.method != "GET" or request.path != "/api/v1/query":
        return 404, {"errors": ["Not found"]}, {}
    if request.headers.get("dd-api-key") != API_KEY or request.headers.get("dd-application-key") != APP_KEY:
        return 403, recorded("datadog/error_403.json"), {}
    query, frm, to = request.params.get("query", ""), request.params.get("from"), request.params.get("to")
    match = _QUERY.fullmatch(query)
    if match is None or frm is None or to is None:
        return 400, recorded("datadog/error_400.json"), {}
    tags = set(match["tags"].split(","))
    versions = [t.removeprefix("version:") for t in tags if t.startswith("version:")]
    step = int(match["step"])
    if "service:web" not in tags or len(versions) != 1 or len(tags) != 2 or versions[0] not in LEVELS_OK:
        body = recorded("datadog/query_no_data.json")
        body["query"] = query
        return 200, body, {}
    body = recorded("datadog/query_ok.json")
    body.update(query=query, from_date=int(frm) * 1000, to_date=int(to) * 1000)
    series = body["series"][0]
    stamps = range(math.ceil(int(frm) / step) * step, int(to) + 1, step)
    errors = match["metric"] == "errors"  # an error count per minute, from the same level
    points = [value(versions[0], t) for t in stamps]
    series["pointlist"] = [
        [t * 1000.0, max(0.0, (v - 80.0) / 10.0) if errors else v]
        for t, v in zip(stamps, points, strict=True)
    ]
    series.update(
        metric=f"trace.http.request.{match['metric']}",
        expression=query,
        scope=",".join(sorted(tags)),
        interval=step,
        length=len(series["pointlist"]),
        start=stamps[0] * 1000 if stamps else int(frm) * 1000,
        end=(stamps[-1] + step - 1) * 1000 if stamps else int(to) * 1000,
    )
    return 200, body, {}


LEVELS_OK = {"v1-base", "v1-canary", "v2-base", "v2-canary"}


@pytest.fixture
def server() -> Iterator[RecordedServer]:
    yield from serve(answer)


def source(server: RecordedServer, **options: Any) -> DatadogSource:
    return DatadogSource(API_KEY, APP_KEY, url=server.url, retries=2, backoff=0.01, **options)


def analyze(server: RecordedServer, baseline: str, canary: str) -> kayenta_py.CanaryResult:
    return kayenta_py.analyze(
        CONFIG, source(server), Scope(baseline), Scope(canary), start=WINDOW[0], end=WINDOW[1], step=60
    )


def test_healthy_canary_passes(server: RecordedServer) -> None:
    result = analyze(server, "v1-base", "v1-canary")
    assert result.verdict is Verdict.PASS, result.reason
    queries = {r.params["query"] for r in server.requests}
    assert "avg:trace.http.request.duration{service:web,version:v1-canary}.rollup(avg, 60)" in queries
    assert "sum:trace.http.request.errors{service:web,version:v1-base}.as_count().rollup(sum, 60)" in queries
    assert {(r.params["from"], r.params["to"]) for r in server.requests} == {(str(START), str(START + 3599))}


def test_regressed_canary_fails_naming_its_metrics(server: RecordedServer) -> None:
    result = analyze(server, "v2-base", "v2-canary")
    assert result.verdict is Verdict.FAIL
    assert {m.name: m.classification for m in result.metrics} == {
        "latency": Classification.HIGH,
        "errors": Classification.HIGH,
    }


def test_evaluate_judges_fetched_series(server: RecordedServer) -> None:
    config = kayenta_py.load_config(CONFIG)
    dd = source(server)
    fetched = {
        side: {m.name: dd.fetch(m, Scope(scope), *WINDOW, 60) for m in config.metrics}
        for side, scope in (("baseline", "v2-base"), ("canary", "v2-canary"))
    }
    judgement = kayenta_py.evaluate(config, fetched["baseline"], fetched["canary"])
    assert judgement.result.verdict is Verdict.FAIL


@pytest.mark.parametrize("hostile", HOSTILE, ids=repr)
def test_a_hostile_scope_is_refused_naming_the_variable_before_any_request(
    server: RecordedServer, hostile: str
) -> None:
    dd = source(server)
    for metric in kayenta_py.load_config(CONFIG).metrics:
        with pytest.raises(TemplateError, match=r"\$\{scope\} has the value .* not Datadog tag text"):
            dd.fetch(metric, Scope(hostile), *WINDOW, 60)
    assert server.requests == []
    with pytest.raises(TemplateError, match=r"\$\{scope\}"):
        analyze(server, "v1-base", hostile)
    assert all("version:v1-base}" in r.params["query"] for r in server.requests)  # the baseline's only


def test_a_scope_value_cannot_change_the_query_the_server_receives(server: RecordedServer) -> None:
    """Tag text passes as it is, inside its braces; the query keeps its shape (no data, never a pass)."""
    odd = "v1-base/x:y.z_2"
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    assert source(server).fetch(latency, Scope(odd), *WINDOW, 60) == []
    (request,) = server.requests
    assert (
        request.params["query"]
        == f"avg:trace.http.request.duration{{service:web,version:{odd}}}.rollup(avg, 60)"
    )
    assert analyze(server, "v1-base", odd).verdict is Verdict.FAIL  # no canary data is never a pass


def test_values_outside_braces_must_be_metric_names(server: RecordedServer) -> None:
    metric = kayenta_py.load_config(
        {"name": "n", "metrics": [{"name": "m", "query": "avg:trace.${kind}.duration{version:${scope}}"}]}
    ).metric("m")
    dd = source(server)
    assert dd.render(metric, Scope("v1", params={"kind": "http.request"})) == (
        "avg:trace.http.request.duration{version:v1}.rollup(avg, 60)"
    )
    for bad in ("http:request", "http/2", "a{*}", "http.request{*} + avg:x"):
        with pytest.raises(TemplateError, match=r"\$\{kind\} .* not a plain Datadog metric name"):
            dd.render(metric, Scope("v1", params={"kind": bad}))
    typo = {"name": "u", "metrics": [{"name": "m", "query": "avg:m{v:${scop}}"}]}
    with pytest.raises(TemplateError, match=r"undefined variable \$\{scop\}; did you mean scope"):
        dd.render(kayenta_py.load_config(typo).metric("m"), Scope("v1"))


def test_formulas_roll_up_each_query_themselves(server: RecordedServer) -> None:
    ratio = "sum:a{v:${scope}}.as_count() / sum:b{v:${scope}}.as_count()"
    config = kayenta_py.load_config({"name": "f", "metrics": [{"name": "m", "query": ratio}]})
    with pytest.raises(TemplateError, match=r"formula .* needs \.rollup\(<method>, \$\{interval\}\)"):
        source(server).render(config.metric("m"), Scope("v1"))
    own = ratio.replace(".as_count()", ".as_count().rollup(sum, ${interval})")
    config = kayenta_py.load_config({"name": "f", "metrics": [{"name": "m", "query": own}]})
    assert source(server).render(config.metric("m"), Scope("v1"), 300) == (
        "sum:a{v:v1}.as_count().rollup(sum, 300) / sum:b{v:v1}.as_count().rollup(sum, 300)"
    )


def test_the_source_keeps_the_contract(server: RecordedServer) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    check_source(source(server), latency, Scope("v1-base", "eu"), WINDOW[0] + 7, WINDOW[1] - 7, 60.0)


def test_long_windows_are_chunked_and_stitched(server: RecordedServer) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (whole,) = source(server).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    server.requests.clear()
    (chunked,) = source(server, max_points=7).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert whole.timestamps is not None and np.array_equal(whole.timestamps, START + 60.0 * np.arange(60))
    assert np.isfinite(whole.values).all() and np.array_equal(chunked.values, whole.values)
    spans = [(int(r.params["from"]), int(r.params["to"])) for r in server.requests]
    assert len(spans) == 9 and spans[0] == (START, START + 7 * 60 - 1) and spans[-1][1] == START + 3599
    assert all(b[0] == a[1] + 1 for a, b in itertools.pairwise(spans))  # contiguous, no overlap


def test_coarsened_points_are_refused_not_misplaced(server: RecordedServer) -> None:
    coarse = recorded("datadog/query_ok.json")
    coarse["series"][0]["interval"] = 300
    server.queue[:] = [(200, coarse, {})]
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    with pytest.raises(SourceError, match=r"answered with 300 s points for a 60 s step") as caught:
        source(server).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert not caught.value.transient


def test_the_shared_client_checks_the_credential_pair() -> None:
    from metrics_sources import GraphiteSource, InfluxDBSource

    for build, what in (
        (lambda **auth: InfluxDBSource("http://127.0.0.1:1", database="d", **auth), "InfluxDB"),
        (lambda **auth: GraphiteSource("http://127.0.0.1:1", **auth), "Graphite"),
    ):
        for auth in ({"username": "u"}, {"password": "p"}):
            with pytest.raises(
                KayentaError, match=f"^{what}: a username needs a password and a password a username"
            ):
                build(**auth)
        assert build(username="u", password="p") is not None


def test_429_then_success_is_retried(server: RecordedServer) -> None:
    server.queue[:] = [(429, recorded("datadog/error_429.json"), {"Retry-After": "0"}), (503, {}, {})]
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (series,) = source(server).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert len(server.requests) == 3 and np.isfinite(series.values).all()
    server.queue[:] = [(429, recorded("datadog/error_429.json"), {"Retry-After": "0"})] * 3
    with pytest.raises(SourceError, match=r"HTTP 429: Too many requests \(after 2 retries\)") as caught:
        source(server).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient


def test_403_is_not_retried_and_is_named(server: RecordedServer) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    wrong = DatadogSource(API_KEY, "wrongappkey9876543210", url=server.url, retries=3, backoff=0.01)
    with pytest.raises(
        SourceError, match=r"Datadog http://127\.0\.0\.1:\d+: metric 'latency': HTTP 403: Forbidden"
    ):
        wrong.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert len(server.requests) == 1
    with pytest.raises(SourceError) as caught:
        wrong.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert not caught.value.transient and caught.value.status == 403
    assert API_KEY not in str(caught.value) and "wrongappkey" not in str(caught.value)
    assert API_KEY not in repr(wrong) and "wrongappkey" not in repr(wrong)


def test_a_refused_query_is_a_permanent_error_with_datadogs_message(server: RecordedServer) -> None:
    metric = kayenta_py.load_config(
        {"name": "b", "metrics": [{"name": "m", "query": "avg:other.metric{version:${scope}}"}]}
    ).metric("m")
    with pytest.raises(SourceError, match=r"HTTP 400: Error parsing query") as caught:
        source(server).fetch(metric, Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient is False and len(server.requests) == 1


def test_kayenta_datadog_queries_load_and_run(server: RecordedServer) -> None:
    def metric(name: str, group: str, query: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": name,
            "groups": [group],
            "scopeName": "default",
            "query": {"type": "datadog", **query},
            "analysisConfigurations": {"canary": {"direction": "increase"}},
        }

    web = ["service:web"]
    kayenta = {
        "name": "k",
        "configVersion": "1",
        "templates": {"errorsTemplate": "sum:trace.http.request.errors{service:web,${scope}}.as_count()"},
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "classifier": {"groupWeights": {"latency": 50, "errors": 50}},
        "metrics": [
            metric("latency", "latency", {"metricName": "avg:trace.http.request.duration", "tags": web}),
            metric("errors", "errors", {"customFilterTemplate": "errorsTemplate"}),
            metric(
                "count",
                "errors",
                {"metricName": "trace.http.request.errors", "metricType": "count", "tags": web},
            ),
            metric(
                "inline",
                "latency",
                {"customInlineTemplate": "trace.http.request.duration{service:web,$scope}"},
            ),
        ],
    }
    config = kayenta_py.load_config(kayenta)
    result = kayenta_py.analyze(
        config,
        source(server),
        Scope("version:v2-base"),
        Scope("version:v2-canary"),
        start=WINDOW[0],
        end=WINDOW[1],
    )
    assert result.verdict is Verdict.FAIL
    assert {m.name: m.classification for m in result.metrics} == dict.fromkeys(
        ("latency", "errors", "count", "inline"), Classification.HIGH
    )
    queries = {r.params["query"] for r in server.requests}
    assert "avg:trace.http.request.duration{version:v2-canary,service:web}.rollup(avg, 60)" in queries
    assert (
        "sum:trace.http.request.errors{version:v2-canary,service:web}.as_count().rollup(sum, 60)" in queries
    )
    assert (
        "sum:trace.http.request.errors{service:web,version:v2-canary}.as_count().rollup(avg, 60)" in queries
    )
    assert "trace.http.request.duration{service:web,version:v2-canary}.rollup(avg, 60)" in queries
    server.requests.clear()
    with pytest.raises(TemplateError, match=r"\$\{scope\}"):
        source(server).fetch(
            config.metric("latency"), Scope("version:v2-canary,version:v1-base"), *WINDOW, 60
        )
    bad = {**kayenta, "metrics": [metric("m", "latency", {"metricName": "avg:x{*}"})]}
    with pytest.raises(TemplateError, match=r"metricName .* without a scope"):
        source(server).fetch(kayenta_py.load_config(bad).metric("m"), Scope("version:v1"), *WINDOW, 60)
    assert server.requests == []


def test_bad_settings_are_named() -> None:
    from kayenta_py.service.settings import load_settings

    with pytest.raises(
        ConfigError, match=r"datadog_site: .*unknown site 'datadoghq\.con'; did you mean datadoghq\.com"
    ):
        load_settings(datadog_site="datadoghq.con")
    with pytest.raises(ConfigError, match=r"datadog_retries: "):
        load_settings(datadog_retries=-1)
    with pytest.raises(ConfigError, match=r"datadog_rollup: "):
        load_settings(datadog_rollup="mean")
    with pytest.raises(
        FieldError, match=r"'datadog' is not set up \(KAYENTA_DATADOG_API_KEY and KAYENTA_DATADOG_APP_KEY"
    ):
        DatadogSource.from_settings({"datadog_api_key": API_KEY})
    with pytest.raises(KayentaError, match="an API key and an application key are required"):
        DatadogSource("", APP_KEY)
    settings = {"datadog_api_key": API_KEY, "datadog_app_key": APP_KEY, "datadog_site": "datadoghq.eu"}
    assert DatadogSource.is_configured(settings) and not DatadogSource.is_configured(
        {"datadog_api_key": API_KEY}
    )
    assert DatadogSource.endpoint(settings) == "https://api.datadoghq.eu"
    assert DatadogSource.from_settings(settings).url == "https://api.datadoghq.eu"
    assert DatadogSource.endpoint({"datadog_site": "us3.datadoghq.com"}) == "https://api.us3.datadoghq.com"
    with pytest.raises(FieldError, match=r"^datadog_site: unknown site 'x'.* \(KAYENTA_DATADOG_SITE\)$"):
        DatadogSource.from_settings({**settings, "datadog_site": "x"})
    with pytest.raises(FieldError, match=r"^datadog_max_points: .*greater than or equal to 1"):
        DatadogSource.from_settings({**settings, "datadog_max_points": 0})
    own = DatadogSettings.from_service(settings)
    assert API_KEY not in repr(own) and APP_KEY not in str(own.model_dump())


def test_the_keys_are_redacted_in_the_services_output() -> None:
    from kayenta_py.model.redact import redact, register_settings_secrets
    from kayenta_py.service.settings import Settings

    settings = Settings(datadog_api_key=API_KEY, datadog_app_key=APP_KEY)
    register_settings_secrets(settings)
    text = redact(f"failed with {API_KEY} and {APP_KEY}")
    assert API_KEY not in text and APP_KEY not in text
    assert API_KEY not in repr(settings.source_settings()["datadog"])


def cli(server: RecordedServer, *args: str, **env_vars: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAYENTA_DATADOG_API_KEY": API_KEY, "KAYENTA_DATADOG_APP_KEY": APP_KEY,
           "KAYENTA_DATADOG_URL": server.url, **env_vars}  # fmt: skip
    script = Path(sys.executable).parent / "kayenta-py"
    window = ["--start", str(WINDOW[0]), "--end", str(WINDOW[1])]
    run = subprocess.run(
        [str(script), *args, "--source", "datadog", *window],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert API_KEY not in run.stdout + run.stderr and APP_KEY not in run.stdout + run.stderr
    return run


def test_the_query_and_analyze_commands(server: RecordedServer, tmp_path: Path) -> None:
    config = tmp_path / "web.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    run = cli(server, "query", "--config", str(config), "--metric", "latency", "--scope", "v2-canary")
    assert run.returncode == 0, run.stderr
    assert (
        "query: avg:trace.http.request.duration{service:web,version:v2-canary}.rollup(avg, 60)" in run.stdout
    )
    assert "60 points, 0 missing" in run.stdout
    base = ["analyze", "--config", str(config), "--format", "json"]
    run = cli(server, *base, "--baseline-scope", "v2-base", "--canary-scope", "v2-canary")
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["verdict"] == "fail"
    run = cli(server, *base, "--baseline-scope", "v1-base", "--canary-scope", "v1-canary")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verdict"] == "pass"
    run = cli(server, *base, "--baseline-scope", "v1-base", "--canary-scope", "v1-canary,version:v2-canary")
    assert run.returncode == 2 and "${scope}" in run.stderr and "Traceback" not in run.stderr
    run = cli(
        server,
        *base,
        "--baseline-scope",
        "v1-base",
        "--canary-scope",
        "v1-canary",
        KAYENTA_DATADOG_RETRIES="-1",
    )
    assert (
        run.returncode == 2
        and "error: datadog_retries: " in run.stderr
        and "(KAYENTA_DATADOG_RETRIES)" in run.stderr
    )


def test_the_bundled_example_renders(server: RecordedServer) -> None:
    from kayenta_py.examples import EXAMPLES_DIR

    config = kayenta_py.load_config(EXAMPLES_DIR / "datadog.yaml")
    assert source(server).render(config.metric("p99-latency"), Scope("v2", "eu-west-1"), 60) == (
        "p99:trace.http.request.duration{service:checkout,region:eu-west-1,version:v2}.rollup(max, 60)"
    )
    assert (
        source(server)
        .render(config.metric("error-ratio"), Scope("v2", "eu-west-1"), 60)
        .count(".rollup(sum, 60)")
        == 2
    )


def test_kayenta_adhoc_executions_read_datadog_through_the_service(
    server: RecordedServer, tmp_path: Path
) -> None:
    """Spinnaker's ad hoc canary (POST /canary, metricsAccountName=datadog) on the service's source."""
    import time
    from datetime import UTC, datetime

    import httpx
    from live_server import LiveServer, settings_for

    def when(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def scope(text: str) -> dict[str, Any]:
        return {"scope": text, "location": "", "start": when(WINDOW[0]), "end": when(WINDOW[1]), "step": 60}

    config = {
        "name": "dd",
        "configVersion": "1",
        "templates": {},
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "classifier": {"groupWeights": {"latency": 100}},
        "metrics": [
            {
                "name": "latency",
                "groups": ["latency"],
                "scopeName": "default",
                "query": {
                    "type": "datadog",
                    "metricName": "avg:trace.http.request.duration",
                    "tags": ["service:web"],
                },
                "analysisConfigurations": {"canary": {"direction": "increase"}},
            }
        ],
    }
    settings = settings_for(
        tmp_path, datadog_api_key=API_KEY, datadog_app_key=APP_KEY, datadog_url=server.url
    )
    with LiveServer(settings) as live:
        scores = {}
        for pair in (("version:v1-base", "version:v1-canary"), ("version:v2-base", "version:v2-canary")):
            request = {
                "scopes": {"default": {"controlScope": scope(pair[0]), "experimentScope": scope(pair[1])}}
            }
            started = httpx.post(
                f"{live.url}/canary",
                params={
                    "application": "web",
                    "metricsAccountName": "datadog",
                    "storageAccountName": "kayenta-py",
                },
                json={"canaryConfig": config, "executionRequest": request},
                timeout=10,
            )
            assert started.status_code == 200, started.text
            deadline = time.monotonic() + 60
            while True:
                document = httpx.get(
                    f"{live.url}/canary/{started.json()['canaryExecutionId']}", timeout=10
                ).json()
                if document["complete"] or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert document["status"] == "succeeded", document
            scores[pair[1]] = document["result"]["judgeResult"]["score"]["classification"]
        assert scores == {"version:v1-canary": "Pass", "version:v2-canary": "Fail"}
        answer = httpx.get(f"{live.url}/credentials", timeout=10)
        assert (
            answer.status_code == 200
            and {"name": "datadog", "type": "datadog"}.items()
            <= next(a for a in answer.json() if a["name"] == "datadog").items()
        )
        assert server.url in answer.text and API_KEY not in answer.text and APP_KEY not in answer.text
    assert "avg:trace.http.request.duration{version:v2-canary,service:web}.rollup(avg, 60)" in {
        r.params["query"] for r in server.requests
    }
