"""The New Relic source against RECORDED answers of New Relic's documented NerdGraph API.

No live New Relic account can be reached here: tests/recorded/newrelic/ holds answers written by
hand from New Relic's public NerdGraph and NRQL documentation (``POST /graphql``,
``actor.account.nrql(query:).results`` with TIMESERIES buckets), served by a real HTTP server on a
free loopback port (recorded_server.py). The server checks each request (path, API-Key header,
account id, the GraphQL document, the NRQL text and its bucket count) and fills the recorded body
with the test's baseline and canary values; analyses run through the engine and ``kayenta-py``.
"""

from __future__ import annotations

import json
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
from metrics_sources import NewRelicSource
from metrics_sources.nrql import TemplateError, escape_string

API_KEY, ACCOUNT = "NRAK-0123456789ABCDEFGHIJKLMNOPQ", 1234567
START = 1_700_000_000 - 1_700_000_000 % 3600
WINDOW = (START, START + 3600)
WHERE = "WHERE appName = 'web' AND version = '${scope}'"
CONFIG: dict[str, Any] = {
    "name": "web",
    "groups": {"errors": 50, "latency": 50},
    "metrics": [
        {"name": "latency", "kind": "latency", "query": f"SELECT average(duration) FROM Transaction {WHERE}"},
        {"name": "errors", "kind": "errors", "query": f"SELECT count(*) FROM TransactionError {WHERE}"},
    ],
}
_TIMES = re.compile(r"TIMESERIES (\d+) seconds SINCE (\d+) UNTIL (\d+)")
_SELECT = re.compile(r"SELECT (average\(duration\)|count\(\*\)) FROM (Transaction|TransactionError) ")
_VERSION = re.compile(r"(?:version|`version`) (?:=|LIKE) '((?:[^'\\]|\\.)*)'")
COLUMNS = {"average(duration)": "average.duration", "count(*)": "count"}


def answer(request: Request) -> Answer:
    """NerdGraph's answer to one request, as New Relic's documentation shows it."""
    if request.method != "POST" or request.path != "/graphql":
        return 404, {"errors": [{"message": "Not found"}]}, {}
    if request.headers.get("api-key") != API_KEY:
        return 403, recorded("newrelic/error_403.json"), {}
    body = request.body or {}
    variables = body.get("variables") or {}
    if "nrql(query: $nrql)" not in body.get("query", "") or variables.get("accountId") != ACCOUNT:
        return 200, recorded("newrelic/nrql_error.json"), {}
    nrql = variables.get("nrql", "")
    times, select, version = _TIMES.search(nrql), _SELECT.match(nrql), _VERSION.search(nrql)
    if times is None or select is None:
        return 200, recorded("newrelic/nrql_error.json"), {}
    step, since, until = (int(g) for g in times.groups())
    if (until - since) // step > 366:
        error = recorded("newrelic/nrql_error.json")
        error["errors"][0]["message"] = "NRQL Syntax Error: Error at TIMESERIES: too many buckets (max 366)"
        return 200, error, {}
    scope = re.sub(r"\\(.)", r"\1", version.group(1)) if version else ""
    column = COLUMNS[select.group(1)]
    document = recorded("newrelic/nrql_timeseries.json")
    row = document["data"]["actor"]["account"]["nrql"]["results"][0]
    del row["average.duration"]
    results = []
    for t in range(since, until, step):
        level = value(scope, t)
        if level == level:  # a known version: its bucket; unknown ones have no events (null)
            level = max(0.0, (level - 80.0) / 10.0) if column == "count" else level / 1000.0
        results.append(
            {
                **row,
                "beginTimeSeconds": t,
                "endTimeSeconds": t + step,
                column: None if level != level else level,
            }
        )
    document["data"]["actor"]["account"]["nrql"]["results"] = results
    return 200, document, {}


@pytest.fixture
def server() -> Iterator[RecordedServer]:
    yield from serve(answer)


def source(server: RecordedServer, **options: Any) -> NewRelicSource:
    return NewRelicSource(API_KEY, account_id=ACCOUNT, url=server.url, retries=2, backoff=0.01, **options)


def analyze(server: RecordedServer, baseline: str, canary: str) -> kayenta_py.CanaryResult:
    return kayenta_py.analyze(
        CONFIG, source(server), Scope(baseline), Scope(canary), start=WINDOW[0], end=WINDOW[1], step=60
    )


def nrqls(server: RecordedServer) -> set[str]:
    return {r.body["variables"]["nrql"] for r in server.requests}


def test_healthy_canary_passes(server: RecordedServer) -> None:
    result = analyze(server, "v1-base", "v1-canary")
    assert result.verdict is Verdict.PASS, result.reason
    assert (
        "SELECT average(duration) FROM Transaction WHERE appName = 'web' AND version = 'v1-canary'\n"
        f"TIMESERIES 60 seconds SINCE {START} UNTIL {START + 3600}"
    ) in nrqls(server)
    assert all(r.headers["content-type"] == "application/json" for r in server.requests)


def test_regressed_canary_fails_naming_its_metrics(server: RecordedServer) -> None:
    result = analyze(server, "v2-base", "v2-canary")
    assert result.verdict is Verdict.FAIL
    assert {m.name: m.classification for m in result.metrics} == {
        "latency": Classification.HIGH,
        "errors": Classification.HIGH,
    }


def test_evaluate_judges_fetched_series(server: RecordedServer) -> None:
    config = kayenta_py.load_config(CONFIG)
    nr = source(server)
    fetched = {
        side: {m.name: nr.fetch(m, Scope(scope), *WINDOW, 60) for m in config.metrics}
        for side, scope in (("baseline", "v2-base"), ("canary", "v2-canary"))
    }
    assert kayenta_py.evaluate(config, fetched["baseline"], fetched["canary"]).result.verdict is Verdict.FAIL


QUOTED = [
    "v1-base' OR version = 'v2-canary",
    "v1-base\\' OR 1=1 --",
    "v1-base' OR appName LIKE '%",
    'v1-base" OR "1"="1',
    "v1-base' SINCE 1 week ago TIMESERIES 1 second",
    "v1-base'; DROP",
]


@pytest.mark.parametrize("hostile", QUOTED, ids=repr)
def test_a_hostile_scope_stays_a_string_literal(server: RecordedServer, hostile: str) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (series,) = source(server).fetch(latency, Scope(hostile), *WINDOW, 60)
    assert np.isnan(series.values).all()  # matches no version: no data
    (request,) = server.requests
    assert request.body["variables"]["nrql"] == (
        "SELECT average(duration) FROM Transaction WHERE appName = 'web' AND "
        f"version = '{escape_string(hostile)}'\n"
        f"TIMESERIES 60 seconds SINCE {START} UNTIL {START + 3600}"
    )
    assert request.body["query"] == (
        "query KayentaPyNrql($accountId: Int!, $nrql: Nrql!) "
        "{ actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }"
    )
    assert analyze(server, "v1-base", hostile).verdict is Verdict.FAIL  # no canary data is never a pass


@pytest.mark.parametrize(
    ("query", "params", "message"),
    [
        (
            "SELECT count(*) FROM T WHERE v = '${scope}'",
            {"scope": "v1\nSINCE 1 day ago"},
            "control character",
        ),
        ("SELECT count(*) FROM T WHERE v LIKE '${scope}'", {"scope": "v1%"}, r"LIKE pattern .* holds %"),
        ("SELECT count(*) FROM T WHERE v = ${scope}", {"scope": "1 OR 1=1"}, "outside quotes"),
        ("SELECT count(*) FROM T WHERE v = ${scope}", {"scope": "OR"}, "outside quotes"),
        ("SELECT count(*) FROM T WHERE `${attr}` = 'x'", {"attr": "a` = 'x' OR `b"}, "backtick"),
        (
            "SELECT count(*) FROM T WHERE v = '${scop}'",
            {"scope": "v1"},
            r"undefined variable \$\{scop\}; did you",
        ),
        ("SELECT count(*) FROM T WHERE v = '${scope}", {"scope": "v1"}, r"unterminated string"),
        ("SELECT count(*) FROM T /* ${scope}", {"scope": "v1"}, r"unterminated /\* comment"),
        ("SELECT count(*) FROM T WHERE v = '${scope}' SINCE 1 day ago", {"scope": "v1"}, "holds SINCE"),
        ("SELECT count(*) FROM T TIMESERIES WHERE v = '${scope}'", {"scope": "v1"}, "holds TIMESERIES"),
    ],
)
def test_unsafe_values_and_templates_are_refused_before_any_request(
    server: RecordedServer, query: str, params: dict[str, str], message: str
) -> None:
    metric = kayenta_py.load_config({"name": "h", "metrics": [{"name": "m", "query": query}]}).metric("m")
    scope = Scope(params.get("scope", "v1"), params={k: v for k, v in params.items() if k != "scope"})
    with pytest.raises(TemplateError, match=message):
        source(server).fetch(metric, scope, *WINDOW, 60)
    assert server.requests == []


def test_placement_rules_keep_plain_values(server: RecordedServer) -> None:
    query = "SELECT count(*) FROM T WHERE `${attr}` = '${scope}' AND n > ${n} -- ${scope}' here"
    metric = kayenta_py.load_config({"name": "p", "metrics": [{"name": "m", "query": query}]}).metric("m")
    rendered = source(server).render(metric, Scope("it's", params={"attr": "app name", "n": "2.5"}))
    assert rendered == (
        "SELECT count(*) FROM T WHERE `app name` = 'it\\'s' AND n > 2.5 -- ${scope}' here\n"
        "TIMESERIES 60 seconds SINCE <start> UNTIL <end>"
    )


def test_the_source_keeps_the_contract(server: RecordedServer) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    check_source(source(server), latency, Scope("v1-base", "eu"), WINDOW[0] + 7, WINDOW[1] - 7, 60.0)


def test_long_windows_are_chunked_at_366_buckets(server: RecordedServer) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    window = (START, START + 8 * 3600)  # 480 buckets of a minute
    (whole,) = source(server).fetch(latency, Scope("v1-base"), *window, 60)
    spans = [tuple(int(g) for g in _TIMES.search(n).groups()) for n in nrqls(server)]  # type: ignore[union-attr]
    assert sorted(spans) == [(60, START, START + 366 * 60), (60, START + 366 * 60, START + 8 * 3600)]
    assert whole.timestamps is not None and np.array_equal(whole.timestamps, START + 60.0 * np.arange(480))
    assert np.isfinite(whole.values).all()
    server.requests.clear()
    (chunked,) = source(server, max_points=100).fetch(latency, Scope("v1-base"), *window, 60)
    assert len(server.requests) == 5 and np.array_equal(chunked.values, whole.values)


def test_429_then_success_is_retried(server: RecordedServer) -> None:
    server.queue[:] = [(429, recorded("newrelic/error_429.json"), {"Retry-After": "0"}), (502, {}, {})]
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (series,) = source(server).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert len(server.requests) == 3 and np.isfinite(series.values).all()
    server.queue[:] = [(429, recorded("newrelic/error_429.json"), {"Retry-After": "0"})] * 3
    with pytest.raises(SourceError, match=r"HTTP 429: Too many requests \(after 2 retries\)") as caught:
        source(server).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient


def test_403_is_not_retried_and_is_named(server: RecordedServer) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    wrong = NewRelicSource("NRAK-WRONGKEY000000000000", account_id=ACCOUNT, url=server.url, retries=3)
    with pytest.raises(
        SourceError, match=r"New Relic http://127\.0\.0\.1:\d+: metric 'latency': HTTP 403"
    ) as caught:
        wrong.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert "Invalid API key" in str(caught.value) and "NRAK-WRONG" not in str(caught.value)
    assert not caught.value.transient and caught.value.status == 403 and len(server.requests) == 1
    assert "NRAK" not in repr(wrong)


def test_nerdgraph_errors_are_named_and_only_timeouts_are_transient(server: RecordedServer) -> None:
    metric = kayenta_py.load_config(
        {"name": "b", "metrics": [{"name": "m", "query": "SELECT count(*) FORM Transaction"}]}
    ).metric("m")
    with pytest.raises(SourceError, match=r"NerdGraph: NRQL Syntax Error: .*unexpected 'FORM'") as caught:
        source(server).fetch(metric, Scope("v1-base"), *WINDOW, 60)
    assert not caught.value.transient and len(server.requests) == 1
    timeout = recorded("newrelic/nrql_error.json")
    timeout["errors"][0].update(message="NRQL query timed out", extensions={"errorClass": "TIMEOUT"})
    server.queue[:] = [(200, timeout, {})]
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    with pytest.raises(SourceError, match="timed out") as caught:
        source(server).fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient


def test_facets_and_several_columns_are_tagged(server: RecordedServer) -> None:
    rows = [
        {"beginTimeSeconds": START, "endTimeSeconds": START + 60, "facet": "GET /", "name": "GET /",
         "average.duration": 0.1, "percentile.duration": {"99": 0.5}},
        {"beginTimeSeconds": START + 60, "endTimeSeconds": START + 120, "facet": "GET /", "name": "GET /",
         "average.duration": None, "percentile.duration": {"99": 0.7}},
    ]  # fmt: skip
    document = recorded("newrelic/nrql_timeseries.json")
    document["data"]["actor"]["account"]["nrql"]["results"] = rows
    server.queue[:] = [(200, document, {})]
    query = "SELECT average(duration), percentile(duration, 99) FROM Transaction FACET name"
    metric = kayenta_py.load_config({"name": "f", "metrics": [{"name": "m", "query": query}]}).metric("m")
    sets = {s.tags["field"]: s for s in source(server).fetch(metric, Scope("v1"), START, START + 120, 60)}
    assert set(sets) == {"average.duration", "percentile.duration.99"}
    assert sets["average.duration"].tags["facet"] == "GET /"
    assert sets["average.duration"].values[0] == 0.1 and np.isnan(sets["average.duration"].values[1])
    assert list(sets["percentile.duration.99"].values) == [0.5, 0.7]


def kayenta_config(query: dict[str, Any], templates: dict[str, str] | None = None) -> kayenta_py.CanaryConfig:
    return kayenta_py.load_config(
        {
            "name": "k",
            "configVersion": "1",
            "templates": templates or {},
            "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
            "classifier": {"groupWeights": {"latency": 100}},
            "metrics": [
                {
                    "name": "latency",
                    "groups": ["latency"],
                    "scopeName": "default",
                    "query": {"type": "newrelic", **query},
                    "analysisConfigurations": {"canary": {"direction": "increase"}},
                }
            ],
        }
    )


def test_kayenta_newrelic_queries_load_and_run(server: RecordedServer) -> None:
    inline = (
        "SELECT average(duration) FROM Transaction TIMESERIES 60 seconds SINCE ${startEpochSeconds} "
        "UNTIL ${endEpochSeconds} WHERE appName LIKE 'web' AND version LIKE '${scope}' "
        "AND region LIKE '${location}'"
    )
    configs = [
        kayenta_config({"select": "average(duration) FROM Transaction", "q": "appName = 'web'"}),
        kayenta_config({"customInlineTemplate": inline}),
        kayenta_config({"customFilterTemplate": "t"}, {"t": inline}),
    ]
    nr = source(server, scope_key="version", location_key="region")
    for config in configs:
        result = kayenta_py.analyze(
            config, nr, Scope("v2-base", "eu"), Scope("v2-canary", "eu"), start=WINDOW[0], end=WINDOW[1]
        )
        assert result.verdict is Verdict.FAIL and result.metrics[0].classification is Classification.HIGH
    assert (
        "SELECT average(duration) FROM Transaction WHERE (appName = 'web') AND `version` LIKE 'v2-canary' "
        f"AND `region` LIKE 'eu'\nTIMESERIES 60 seconds SINCE {START} UNTIL {START + 3600}"
    ) in nrqls(server)
    filled = {"${startEpochSeconds}": str(START), "${endEpochSeconds}": str(START + 3600)}
    filled.update({"${scope}": "v2-canary", "${location}": "eu"})
    expected = inline
    for placeholder, text in filled.items():
        expected = expected.replace(placeholder, text)
    assert expected in nrqls(server)
    params = {"_scope_key": "version", "team": "pay's"}
    assert source(server).render(configs[0].metric("latency"), Scope("v1", params=params)) == (
        "SELECT average(duration) FROM Transaction WHERE (appName = 'web') AND `team` LIKE 'pay\\'s' "
        "AND `version` LIKE 'v1'\nTIMESERIES 60 seconds SINCE <start> UNTIL <end>"
    )
    server.requests.clear()
    with pytest.raises(TemplateError, match=r"LIKE pattern and its value 'v2-%' holds %"):
        nr.fetch(configs[0].metric("latency"), Scope("v2-%"), *WINDOW, 60)
    with pytest.raises(TemplateError, match="no scope key"):
        source(server).fetch(configs[0].metric("latency"), Scope("v1"), *WINDOW, 60)
    with pytest.raises(TemplateError, match="TIMESERIES is 60 s but the step is 300 s"):
        nr.fetch(configs[1].metric("latency"), Scope("v1"), *WINDOW, 300)
    with pytest.raises(TemplateError, match="needs its FROM clause"):
        nr.fetch(kayenta_config({"select": "count(*)"}).metric("latency"), Scope("v1"), *WINDOW, 60)
    assert server.requests == []


def test_bad_settings_are_named() -> None:
    from kayenta_py.service.settings import load_settings

    with pytest.raises(ConfigError, match=r"newrelic_account_id: "):
        load_settings(newrelic_account_id="abc")
    with pytest.raises(ConfigError, match=r"newrelic_region: "):
        load_settings(newrelic_region="ap")
    with pytest.raises(ConfigError, match=r"newrelic_max_points: "):
        load_settings(newrelic_max_points=400)
    with pytest.raises(FieldError, match=r"'newrelic' is not set up \(KAYENTA_NEWRELIC_API_KEY and"):
        NewRelicSource.from_settings({"newrelic_api_key": API_KEY})
    with pytest.raises(KayentaError, match="account_id must be a positive integer"):
        NewRelicSource(API_KEY, account_id=0)
    settings = {"newrelic_api_key": API_KEY, "newrelic_account_id": "42", "newrelic_region": "eu"}
    assert NewRelicSource.is_configured(settings) and not NewRelicSource.is_configured(
        {"newrelic_api_key": "x"}
    )
    assert NewRelicSource.endpoint(settings) == "https://api.eu.newrelic.com"
    with pytest.raises(
        FieldError, match=r"^newrelic_account_id: .*valid integer.* \(KAYENTA_NEWRELIC_ACCOUNT_ID\)$"
    ):
        NewRelicSource.from_settings({**settings, "newrelic_account_id": "abc"})
    built = NewRelicSource.from_settings(settings)
    assert (
        built.account_id == 42 and built.url == "https://api.eu.newrelic.com" and API_KEY not in repr(built)
    )


def test_the_key_is_redacted_in_the_services_output() -> None:
    from kayenta_py.model.redact import redact, register_settings_secrets
    from kayenta_py.service.settings import Settings

    settings = Settings(newrelic_api_key=API_KEY, newrelic_account_id=ACCOUNT)
    register_settings_secrets(settings)
    assert API_KEY not in redact(f"NerdGraph refused {API_KEY}")
    assert API_KEY not in repr(settings.source_settings()["newrelic"])


def cli(server: RecordedServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KAYENTA_NEWRELIC_API_KEY": API_KEY, "KAYENTA_NEWRELIC_ACCOUNT_ID": str(ACCOUNT),
           "KAYENTA_NEWRELIC_URL": server.url}  # fmt: skip
    script = Path(sys.executable).parent / "kayenta-py"
    window = ["--start", str(WINDOW[0]), "--end", str(WINDOW[1])]
    run = subprocess.run(
        [str(script), *args, "--source", "newrelic", *window],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert API_KEY not in run.stdout + run.stderr
    return run


def test_the_query_and_analyze_commands(server: RecordedServer, tmp_path: Path) -> None:
    config = tmp_path / "web.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    run = cli(server, "query", "--config", str(config), "--metric", "latency", "--scope", "v2-canary")
    assert run.returncode == 0, run.stderr
    assert "WHERE appName = 'web' AND version = 'v2-canary'" in run.stdout
    assert "60 points, 0 missing" in run.stdout
    base = ["analyze", "--config", str(config), "--format", "json"]
    run = cli(server, *base, "--baseline-scope", "v2-base", "--canary-scope", "v2-canary")
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["verdict"] == "fail"
    run = cli(server, *base, "--baseline-scope", "v1-base", "--canary-scope", "v1-canary")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verdict"] == "pass"


def test_the_bundled_example_renders(server: RecordedServer) -> None:
    from kayenta_py.examples import EXAMPLES_DIR

    config = kayenta_py.load_config(EXAMPLES_DIR / "newrelic.yaml")
    rendered = source(server).render(
        config.metric("p99-latency"), Scope("v2", "eu-west-1"), START, START + 600, 60
    )
    assert rendered == (
        "SELECT percentile(duration, 99) FROM Transaction WHERE appName = 'checkout' "
        "AND tags.version = 'v2' AND tags.region = 'eu-west-1'\n"
        f"TIMESERIES 60 seconds SINCE {START} UNTIL {START + 600}"
    )


def test_kayenta_adhoc_executions_read_new_relic_through_the_service(
    server: RecordedServer, tmp_path: Path
) -> None:
    """Spinnaker's ad hoc canary (POST /canary, metricsAccountName=newrelic) on the service's source."""
    import time
    from datetime import UTC, datetime

    import httpx
    from live_server import LiveServer, settings_for

    def when(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def scope(text: str) -> dict[str, Any]:
        return {"scope": text, "location": "", "start": when(WINDOW[0]), "end": when(WINDOW[1]), "step": 60,
                "extendedScopeParams": {"_scope_key": "version"}}  # fmt: skip

    config = kayenta_config({"select": "SELECT average(duration) FROM Transaction", "q": "appName = 'web'"})
    settings = settings_for(
        tmp_path, newrelic_api_key=API_KEY, newrelic_account_id=ACCOUNT, newrelic_url=server.url
    )
    with LiveServer(settings) as live:
        scores = {}
        for pair in (("v1-base", "v1-canary"), ("v2-base", "v2-canary")):
            request = {
                "scopes": {"default": {"controlScope": scope(pair[0]), "experimentScope": scope(pair[1])}}
            }
            started = httpx.post(
                f"{live.url}/canary",
                params={
                    "application": "web",
                    "metricsAccountName": "newrelic",
                    "storageAccountName": "kayenta-py",
                },
                json={"canaryConfig": dict(config.raw), "executionRequest": request},
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
        assert scores == {"v1-canary": "Pass", "v2-canary": "Fail"}
        answer = httpx.get(f"{live.url}/credentials", timeout=10)
        assert answer.status_code == 200 and server.url in answer.text and API_KEY not in answer.text
    assert (
        "SELECT average(duration) FROM Transaction WHERE (appName = 'web') AND `version` LIKE 'v2-canary'\n"
        f"TIMESERIES 60 seconds SINCE {START} UNTIL {START + 3600}"
    ) in nrqls(server)
