"""The CloudWatch source against moto's server mode (the only offline CloudWatch), on a free port.

Data are put with boto3's ``put_metric_data`` (cloudwatch_harness.py); analyses run through the
engine (``kayenta_py.analyze``/``evaluate_window``) and ``kayenta-py query``/``analyze``. Retries,
throttling and pages come from a small real HTTP server in front of moto (``FaultProxy``).
moto answers MetricStat queries; it does not evaluate metric math, so expressions are checked
for what is sent (and that moto takes the call), not for values.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cloudwatch_harness import KEYS, NAMESPACE, REGION, FaultProxy, MotoServer, pages, put_canary_data
from prometheus_harness import default_start, free_port

import kayenta_py
from kayenta_py import Classification, ConfigError, KayentaError, Scope, SourceError, Verdict
from kayenta_py.testing import check_source
from metrics_sources import CloudWatchSource
from metrics_sources.cloudwatch_query import TemplateError

START = default_start()
WINDOW = (START, START + 3600)


def stat(name: str, version: str = "${scope}", stat_name: str = "Average") -> str:
    """A MetricStat query (YAML text) of ``name`` for one version of the checkout service."""
    return (
        f"namespace: {NAMESPACE}\nmetricName: {name}\n"
        f"dimensions: {{Service: checkout, Version: '{version}'}}\nstat: {stat_name}\n"
    )


CONFIG: dict[str, Any] = {
    "name": "checkout-cloudwatch",
    "groups": {"errors": 50, "latency": 50},
    "metrics": [
        {"name": "error-rate", "kind": "errors", "query": stat("ErrorRate")},
        {"name": "latency", "kind": "latency", "query": stat("Latency")},
    ],
}
SEARCH = "SEARCH('{Checkout,Service,Version} Version=\"${scope}\"', 'Average', ${period})"
HOSTILE = [
    "v1-base' OR '1'='1",
    'v1-base" OR Version="v2-canary',
    "v1-base} {Checkout,Service",
    "v1-base,Service",
    "SEARCH('{Checkout} MetricName=\"Latency\"', 'Average', 60)",
    "v1-base\\",
    "v1-base\nx",
    "v1 base",
    "OR",
]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    with MotoServer() as server:
        put_canary_data(server.client(), START)
        yield server


@pytest.fixture(scope="module")
def source(moto: MotoServer) -> CloudWatchSource:
    return connect(moto.url, retries=1, backoff=0.01)


def connect(url: str, **options: Any) -> CloudWatchSource:
    """A source of the CloudWatch at ``url`` with the test credentials."""
    key, secret = KEYS["aws_access_key_id"], KEYS["aws_secret_access_key"]
    return CloudWatchSource(REGION, endpoint_url=url, access_key_id=key, secret_access_key=secret, **options)


def metric(query: str | dict[str, Any], name: str = "m") -> kayenta_py.MetricConfig:
    return kayenta_py.load_config({"name": "q", "metrics": [{"name": name, "query": query}]}).metric(name)


def analyze(source: CloudWatchSource, baseline: str, canary: str) -> kayenta_py.CanaryResult:
    return kayenta_py.analyze(
        CONFIG, source, Scope(baseline), Scope(canary), start=WINDOW[0], end=WINDOW[1], step=60
    )


def test_healthy_canary_passes(source: CloudWatchSource) -> None:
    result = analyze(source, "v1-base", "v1-canary")
    assert result.verdict is Verdict.PASS, result.reason
    assert {m.name for m in result.metrics} == {"error-rate", "latency"}


def test_regressed_canary_fails_naming_its_metrics(source: CloudWatchSource) -> None:
    config = kayenta_py.load_config(CONFIG)
    judgement = kayenta_py.evaluate_window(
        config, source, Scope("v2-base"), Scope("v2-canary"), start=WINDOW[0], end=WINDOW[1], step=60
    )
    assert judgement.result.verdict is Verdict.FAIL
    assert {m.name: m.classification for m in judgement.result.metrics} == {
        "error-rate": Classification.HIGH,
        "latency": Classification.HIGH,
    }
    (pair, *_) = [p for p in judgement.pairs if p.name == "latency"]
    assert pair.baseline.values.size == 60 and np.isfinite(pair.baseline.values).all()


def test_series_sit_on_the_step_grid_and_long_windows_are_chunked(
    source: CloudWatchSource, moto: MotoServer
) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (whole,) = source.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert whole.timestamps is not None
    assert np.array_equal(whole.timestamps, START + 60.0 * np.arange(60))
    assert whole.tags == {"id": "m1", "label": "Latency Average"}
    chunked = connect(moto.url, max_datapoints=7)
    (again,) = chunked.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert np.array_equal(again.values, whole.values)
    (wide,) = source.fetch(latency, Scope("v1-base"), *WINDOW, 300)  # 5-minute buckets, averaged
    assert wide.values.size == 12 and wide.values[0] == pytest.approx(whole.values[:5].mean())
    (gap,) = source.fetch(latency, Scope("v1-base"), WINDOW[1] - 600, WINDOW[1] + 600, 60)
    assert gap.values.size == 20 and np.isfinite(gap.values[:10]).all() and np.isnan(gap.values[10:]).all()


@pytest.mark.parametrize("step", [45, 7, 90, 0.5])
def test_a_step_that_is_no_cloudwatch_period_is_refused(source: CloudWatchSource, step: float) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    with pytest.raises(KayentaError, match=r"metric 'latency': .*(not a CloudWatch period|whole seconds)"):
        source.fetch(latency, Scope("v1-base"), *WINDOW, step)


@pytest.mark.parametrize("hostile", HOSTILE, ids=repr)
def test_a_hostile_scope_is_a_dimension_value_and_changes_nothing(
    source: CloudWatchSource, hostile: str
) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (query,) = json.loads(source.render(latency, Scope(hostile), *WINDOW, 60))
    dimensions = query["MetricStat"]["Metric"]["Dimensions"]
    assert dimensions == [{"Name": "Service", "Value": "checkout"}, {"Name": "Version", "Value": hostile}]
    assert source.fetch(latency, Scope(hostile), *WINDOW, 60) == []  # matches no version
    assert analyze(source, "v1-base", hostile).verdict is Verdict.FAIL  # no canary data is never a pass
    assert len(source.fetch(latency, Scope("v1-base"), *WINDOW, 60)) == 1


def test_a_hostile_dimension_value_matches_exactly_its_own_series(
    moto: MotoServer, source: CloudWatchSource
) -> None:
    hostile = "v9' OR '1'='1\"} {Checkout,Version}, SEARCH("
    moto.client().put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": "Latency",
                "Dimensions": [
                    {"Name": "Service", "Value": "checkout"},
                    {"Name": "Version", "Value": hostile},
                ],
                "Timestamp": datetime.fromtimestamp(START + 75, UTC),
                "Value": 7.0,
            }
        ],
    )
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (series,) = source.fetch(latency, Scope(hostile), *WINDOW, 60)
    assert series.values[1] == 7.0 and np.isnan(np.delete(series.values, 1)).all()


@pytest.mark.parametrize("hostile", [h for h in HOSTILE if h != "OR"], ids=repr)  # "OR" in "": text
def test_a_hostile_scope_in_an_expression_is_refused_naming_the_variable(hostile: str) -> None:
    dead = connect(f"http://127.0.0.1:{free_port()}", retries=0)
    search = metric(SEARCH)
    with pytest.raises(TemplateError, match=r"\$\{scope\} has the value .* could change the expression"):
        dead.fetch(search, Scope(hostile), *WINDOW, 60)  # refused before any request (none could succeed)
    with pytest.raises(TemplateError, match=r"\$\{region\}"):
        dead.fetch(metric(SEARCH + " / ${region}"), Scope("v1-base", params={"region": hostile}), *WINDOW, 60)


def test_expressions_fill_plain_values_and_the_period(source: CloudWatchSource) -> None:
    search = metric(SEARCH)
    (query,) = json.loads(source.render(search, Scope("v1-base"), *WINDOW, 300))
    assert query == {
        "Id": "e1",
        "Expression": "SEARCH('{Checkout,Service,Version} Version=\"v1-base\"', 'Average', 300)",
        "Period": 300,
    }
    assert source.fetch(search, Scope("v1-base"), *WINDOW, 300) == []  # moto takes it (and evaluates none)
    bare = metric("m1 * ${factor}")
    assert (
        json.loads(source.render(bare, Scope("v1", params={"factor": "2.5"})))[0]["Expression"] == "m1 * 2.5"
    )
    with pytest.raises(TemplateError, match=r"\$\{factor\} has the value 'm2' and stands outside quotes"):
        source.render(bare, Scope("v1", params={"factor": "m2"}))
    operator = metric("SEARCH('{Checkout,Version} ${scope}', 'Average', ${period})")
    with pytest.raises(TemplateError, match=r"\$\{scope\} .* would be a search operator"):
        source.render(operator, Scope("NOT"))
    with pytest.raises(TemplateError, match=r"undefined variable \$\{scop\}; did you mean scope"):
        source.render(metric("SEARCH('{Checkout} \"${scop}\"', 'Average', 60)"), Scope("v1"))


def test_argo_rollouts_metric_data_queries_load_and_run(source: CloudWatchSource) -> None:
    """Argo Rollouts' cloudwatch provider shape: metricDataQueries with ids, metricStat, returnData."""
    argo = {
        "metricDataQueries": [
            {"id": "rate", "expression": "errors / latency"},
            {
                "id": "errors",
                "metricStat": {
                    "metric": {
                        "namespace": NAMESPACE,
                        "metricName": "ErrorRate",
                        "dimensions": [
                            {"name": "Service", "value": "checkout"},
                            {"name": "Version", "value": "${scope}"},
                        ],
                    },
                    "stat": "Average",
                },
                "returnData": False,
            },
            {
                "id": "latency",
                "metricStat": {
                    "metric": {
                        "namespace": NAMESPACE,
                        "metricName": "Latency",
                        "dimensions": [
                            {"name": "Service", "value": "checkout"},
                            {"name": "Version", "value": "${scope}"},
                        ],
                    },
                    "period": 60,
                    "stat": "Average",
                    "unit": "Milliseconds",
                },
            },
        ]
    }
    text_form = metric(yaml.safe_dump(argo))
    queries = json.loads(source.render(text_form, Scope("v2-canary"), *WINDOW, 60))
    assert [q["Id"] for q in queries] == ["rate", "errors", "latency"]
    assert queries[0] == {"Id": "rate", "Expression": "errors / latency", "Period": 60}
    assert queries[1]["ReturnData"] is False and queries[2]["MetricStat"]["Unit"] == "Milliseconds"
    (series,) = source.fetch(text_form, Scope("v2-canary"), *WINDOW, 60)  # moto evaluates no math
    assert series.tags["id"] == "latency" and np.isfinite(series.values).all()
    kayenta = {
        "name": "k",
        "configVersion": "1",
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "classifier": {"groupWeights": {"latency": 100}},
        "metrics": [
            {
                "name": "latency",
                "groups": ["latency"],
                "query": {"type": "cloudwatch", **argo},
                "analysisConfigurations": {"canary": {"direction": "increase"}},
            }
        ],
    }
    result = kayenta_py.analyze(
        kayenta, source, Scope("v2-base"), Scope("v2-canary"), start=WINDOW[0], end=WINDOW[1], step=60
    )
    assert result.verdict is Verdict.FAIL and result.metrics[0].classification is Classification.HIGH
    with pytest.raises(
        TemplateError, match=r"metricDataQueries\[2\]\.metricStat\.period: 60 is not the analysis step"
    ):
        source.render(text_form, Scope("v2-canary"), *WINDOW, 300)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            {
                "metricDataQueries": [
                    {
                        "id": "a",
                        "metricStat": {"metric": {"namespace": "N", "metricName": "M"}, "stats": "Sum"},
                    }
                ]
            },
            r"query\.metricDataQueries\[0\]\.metricStat\.stats: unknown field; did you mean stat",
        ),
        (
            {
                "metricDataQueries": [
                    {"id": "a", "metricStat": {"metric": {"namespace": "N", "metricName": "M"}}}
                ]
            },
            r"metricStat\.stat: required",
        ),
        (
            {"interval": "5m", "metricDataQueries": [{"id": "a", "expression": "1"}]},
            r"query\.interval: not a field .*the analysis window sets the range",
        ),
        (
            {"metricDataQueries": [{"id": "A1", "expression": "1"}]},
            r"\.id: 'A1' must start with a lowercase letter",
        ),
        (
            {"metricDataQueries": [{"id": "a", "expression": "1"}, {"id": "a", "expression": "2"}]},
            "ids must be unique",
        ),
        (
            {"metricDataQueries": [{"id": "a", "expression": "1", "returnData": False}]},
            "no query returns data",
        ),
        ({"metricDataQueries": [{"id": "a"}]}, "exactly one of expression and metricStat"),
        (
            {"namespace": "N", "metricName": "M", "dimensions": {"Version": "${location}"}, "stat": "Sum"},
            r"dimensions\.Version: the value '\$\{location\}' is empty once filled",
        ),
        ({"type": "prometheus", "metricName": "x"}, r"query\.type 'prometheus' is not a CloudWatch query"),
        ("namespace: [unclosed", "neither an expression nor valid YAML"),
        ("SEARCH('{Checkout} \"${scope}', 'Average', 60)", r"unterminated quote"),
    ],
)
def test_a_query_of_the_wrong_shape_is_named(source: CloudWatchSource, query: Any, message: str) -> None:
    if isinstance(query, dict) and "type" not in query:
        query = yaml.safe_dump(query)
    if isinstance(query, dict):  # a Kayenta format config: the query is a mapping
        built = kayenta_py.load_config(
            {
                "name": "k",
                "classifier": {"groupWeights": {"g": 100}},
                "metrics": [{"name": "m", "groups": ["g"], "query": query}],
            }
        ).metric("m")
    else:
        built = metric(query)
    with pytest.raises(TemplateError, match=message):
        source.fetch(built, Scope("v1-base"), *WINDOW, 60)


def test_the_source_keeps_the_contract(source: CloudWatchSource) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    check_source(source, latency, Scope("v1-base", "eu"), WINDOW[0] + 7, WINDOW[1] - 7, 60.0)


# ---------------------------------------------------------------- retries, pages, failures


@pytest.fixture
def proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    with FaultProxy(moto.url) as server:
        yield server


THROTTLED = (400, {"__type": "com.amazonaws.cloudwatch#Throttling", "message": "Rate exceeded"})


def test_throttling_and_503_are_retried_then_succeed(proxy: FaultProxy, source: CloudWatchSource) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    flaky = connect(proxy.url, retries=3, backoff=0.01)
    proxy.answers[:] = [THROTTLED, (503, None), (500, {"__type": "InternalFailure", "message": "boom"})]
    (series,) = flaky.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert len(proxy.seen) == 4
    assert np.array_equal(series.values, source.fetch(latency, Scope("v1-base"), *WINDOW, 60)[0].values)
    proxy.answers[:] = [(503, None)] * 5
    with pytest.raises(SourceError, match=r"\(HTTP 503\).* \(after 3 retries\)") as caught:
        flaky.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient and caught.value.status == 503 and caught.value.metric == "latency"
    proxy.answers[:] = [THROTTLED] * 5
    with pytest.raises(SourceError, match=r"Throttling \(HTTP 400\): Rate exceeded \(after 3 retries\)"):
        flaky.fetch(latency, Scope("v1-base"), *WINDOW, 60)


def test_a_refusal_fails_at_once_with_cloudwatchs_message(proxy: FaultProxy) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    flaky = connect(proxy.url, retries=3, backoff=0.01)
    proxy.answers[:] = [
        (400, {"__type": "InvalidParameterValue", "message": "The value p999 for stat is invalid"})
    ]
    with pytest.raises(SourceError, match=r"InvalidParameterValue \(HTTP 400\): The value p999") as caught:
        flaky.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert not caught.value.transient and len(proxy.seen) == 1
    proxy.answers[:] = [(403, {"__type": "AccessDenied", "message": "not authorized to GetMetricData"})]
    with pytest.raises(SourceError, match="AccessDenied") as denied:
        flaky.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert not denied.value.transient


def test_pages_are_followed_by_their_next_token(proxy: FaultProxy) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    paged = connect(proxy.url, retries=0)
    values = [float(i) for i in range(10)]
    proxy.answers[:] = [(200, page) for page in pages(START, values)]
    (series,) = paged.fetch(latency, Scope("v1-base"), START, START + 600, 60)
    assert series.values.tolist() == values
    assert len(proxy.seen) == 2 and b"page-2-token" in proxy.seen[1] and b"page-2-token" not in proxy.seen[0]


def test_unreachable_cloudwatch_is_a_transient_error_after_the_retries() -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    dead = connect(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    began = time.monotonic()
    with pytest.raises(SourceError, match=r"cannot reach it .* \(after 2 retries\)") as caught:
        dead.fetch(latency, Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient and time.monotonic() - began < 10


def test_no_credentials_is_a_permanent_error_saying_where_they_come_from(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    with pytest.raises(
        SourceError, match=r"Unable to locate credentials \(set cloudwatch_access_key_id"
    ) as caught:
        CloudWatchSource(REGION, endpoint_url=moto.url, retries=0).fetch(
            latency, Scope("v1-base"), *WINDOW, 60
        )
    assert not caught.value.transient


# ---------------------------------------------------------------- settings and the command line


def test_settings_build_the_source_and_bad_ones_are_named(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kayenta_py.model.redact import redact, register_settings_secrets
    from kayenta_py.service.analyses import Service
    from kayenta_py.service.settings import Settings, load_settings

    settings = {
        "cloudwatch_region": REGION,
        "cloudwatch_endpoint_url": moto.url,
        "cloudwatch_access_key_id": "AKIAEXAMPLEKEY123",
        "cloudwatch_secret_access_key": "cwSECRETkey/abc123",
    }
    assert CloudWatchSource.is_configured(settings) and not CloudWatchSource.is_configured({})
    assert CloudWatchSource.endpoint(settings) == moto.url
    assert (
        CloudWatchSource.endpoint({"cloudwatch_region": "us-east-2"})
        == "https://monitoring.us-east-2.amazonaws.com"
    )
    built = CloudWatchSource.from_settings(settings)
    assert "cwSECRET" not in repr(built) and "AKIA" not in repr(built)
    assert (
        len(built.fetch(kayenta_py.load_config(CONFIG).metric("latency"), Scope("v1-base"), *WINDOW, 60)) == 1
    )
    with pytest.raises(KayentaError, match="'cloudwatch' is not set up"):
        CloudWatchSource.from_settings({})
    for given, message in (
        ({"cloudwatch_region": "Ireland"}, r"cloudwatch_region: 'Ireland' is not an AWS region name"),
        (
            {"cloudwatch_endpoint_url": "moto:5000"},
            r"cloudwatch_endpoint_url: must start with http:// or https://",
        ),
        (
            {"cloudwatch_access_key_id": "AKIA1"},
            r"cloudwatch_secret_access_key: access_key_id and secret_access_key",
        ),
        ({"cloudwatch_max_datapoints": 200_000}, r"cloudwatch_max_datapoints: "),
        ({"cloudwatch_retries": -1}, r"cloudwatch_retries: "),
        (
            {"cloudwatch_regoin": REGION},
            r"cloudwatch_regoin: unknown setting; did you mean cloudwatch_region\?",
        ),
    ):
        with pytest.raises(ConfigError, match=message):
            load_settings(**given)
    monkeypatch.setenv("KAYENTA_CLOUDWATCH_TIMEOUT", "0")
    with pytest.raises(ConfigError, match="cloudwatch_timeout: "):
        load_settings()
    monkeypatch.delenv("KAYENTA_CLOUDWATCH_TIMEOUT")
    with pytest.raises(KayentaError, match="region"):
        CloudWatchSource("not a region")
    with pytest.raises(KayentaError, match=r"CloudWatch: .*no-such-profile"):
        CloudWatchSource(REGION, profile="no-such-profile")
    service = Service(load_settings(database_url=f"sqlite:///{tmp_path}/k.db", data_dir=tmp_path, **settings))
    assert "cloudwatch" in service.source_names() and service.source_endpoint("cloudwatch") == moto.url
    assert isinstance(service.source("cloudwatch"), CloudWatchSource)
    register_settings_secrets(Settings(**settings))  # type: ignore[arg-type]
    assert "cwSECRETkey/abc123" not in redact("failed with cwSECRETkey/abc123")


def run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = Path(sys.executable).parent / "kayenta-py"
    return subprocess.run(
        [str(script), *args], capture_output=True, text=True, timeout=60, env=env, check=False
    )


def test_the_query_and_analyze_commands(moto: MotoServer, tmp_path: Path) -> None:
    config = tmp_path / "checkout.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {
        **os.environ,
        "KAYENTA_CLOUDWATCH_REGION": REGION,
        "KAYENTA_CLOUDWATCH_ENDPOINT_URL": moto.url,
        "KAYENTA_CLOUDWATCH_ACCESS_KEY_ID": "testing",
        "KAYENTA_CLOUDWATCH_SECRET_ACCESS_KEY": "testing",
    }
    window = ["--start", str(WINDOW[0]), "--end", str(WINDOW[1])]
    base = ["--source", "cloudwatch", "--config", str(config)]
    run = run_cli("query", *base, "--metric", "latency", "--scope", "v2-canary", *window, env=env)
    assert run.returncode == 0, run.stderr
    assert '{"Name": "Version", "Value": "v2-canary"}' in run.stdout and "60 points, 0 missing" in run.stdout
    run = run_cli(
        "analyze",
        *base,
        "--baseline-scope",
        "v2-base",
        "--canary-scope",
        "v2-canary",
        *window,
        "--format",
        "json",
        env=env,
    )
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["verdict"] == "fail"
    run = run_cli(
        "analyze",
        *base,
        "--baseline-scope",
        "v1-base",
        "--canary-scope",
        "v1-canary",
        *window,
        "--format",
        "json",
        env=env,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["verdict"] == "pass"
    run = run_cli("query", *base, "--metric", "latency", "--scope", "v1", *window, "--step", "45", env=env)
    assert run.returncode != 0 and "not a CloudWatch period" in run.stderr and "Traceback" not in run.stderr
    bad = {**env, "KAYENTA_CLOUDWATCH_REGION": "Ireland"}
    run = run_cli("query", *base, "--metric", "latency", "--scope", "v1", *window, env=bad)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "cloudwatch_region: 'Ireland' is not an AWS region name" in run.stderr
    assert "(KAYENTA_CLOUDWATCH_REGION)" in run.stderr


def test_the_bundled_example_loads_and_renders(source: CloudWatchSource) -> None:
    from kayenta_py.examples import EXAMPLES_DIR

    config = kayenta_py.load_config(EXAMPLES_DIR / "cloudwatch.yaml")
    (latency,) = json.loads(
        source.render(config.metric("p99-latency"), Scope("v2", "eu-west-1"), *WINDOW, 60)
    )
    assert {"Name": "Version", "Value": "v2"} in latency["MetricStat"]["Metric"]["Dimensions"]
    queries = json.loads(source.render(config.metric("error-ratio"), Scope("v2", "eu-west-1"), *WINDOW, 60))
    assert [q["Id"] for q in queries] == ["ratio", "errors", "requests"]
    assert (
        source.fetch(config.metric("error-ratio"), Scope("v2", "eu-west-1"), *WINDOW, 60) == []
    )  # no such data
