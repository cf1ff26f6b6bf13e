"""The Graphite source against a real carbon-cache and graphite-web (Debian's packages).

Points are sent with carbon's plaintext protocol (graphite_harness.py); analyses run through the
engine (``kayenta_py.analyze``) and ``kayenta-py query``. Retries and permanent 4xx come from the
shared client, checked in test_influxdb_source.py; here a refused target and a dead server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from graphite_harness import Graphite, canary_lines, ensure_graphite
from prometheus_harness import default_start, free_port

import kayenta_py
from kayenta_py import Classification, Scope, SourceError, Verdict
from kayenta_py.testing import check_source
from metrics_sources import GraphiteSource
from metrics_sources.graphite import TemplateError

START = default_start()
WINDOW = (START, START + 3600)
RATIO = (
    'divideSeries(summarize(app.${scope}.errors, "${interval}", "sum"), '
    'summarize(app.${scope}.count, "${interval}", "sum"))'
)
CONFIG: dict[str, Any] = {
    "name": "web",
    "groups": {"errors": 50, "latency": 50},
    "metrics": [
        {"name": "error-ratio", "kind": "errors", "query": RATIO},
        {"name": "latency", "kind": "latency", "query": "app.${scope}.latency_ms"},
    ],
}
HOSTILE = [
    "v1-base'; DROP",
    'v1-base" OR 1=1',
    "v1-base\nx",
    "v1-base\\",
    "v1-base,app.v2-canary",
    "v1-base.latency_ms)|scale(app.v1-base.count,0",
    "*",
    "v1-{base,canary}",
    "v1-ba?e",
    "v1-base[0]",
    "v1 base",
    "",
    ".v1-base",
    "v1-base..x",
]


@pytest.fixture(scope="module")
def graphite() -> Iterator[Graphite]:
    ensure_graphite()
    with Graphite() as server:
        server.send(canary_lines(START))
        server.wait_for("app.*.count", START - 1, START + 3600, 4 * 360)
        yield server


@pytest.fixture(scope="module")
def source(graphite: Graphite) -> GraphiteSource:
    return GraphiteSource(graphite.url, retries=1, backoff=0.01)


def analyze(source: GraphiteSource, baseline: str, canary: str) -> kayenta_py.CanaryResult:
    return kayenta_py.analyze(
        CONFIG, source, Scope(baseline), Scope(canary), start=WINDOW[0], end=WINDOW[1], step=60
    )


def test_healthy_canary_passes(source: GraphiteSource) -> None:
    result = analyze(source, "v1-base", "v1-canary")
    assert result.verdict is Verdict.PASS, result.reason


def test_regressed_canary_fails_naming_its_metrics(source: GraphiteSource) -> None:
    result = analyze(source, "v2-base", "v2-canary")
    assert result.verdict is Verdict.FAIL
    assert {m.name: m.classification for m in result.metrics} == {
        "error-ratio": Classification.HIGH,
        "latency": Classification.HIGH,
    }


@pytest.mark.parametrize("hostile", HOSTILE, ids=repr)
def test_a_hostile_scope_is_refused_naming_the_variable(hostile: str) -> None:
    dead = GraphiteSource(f"http://127.0.0.1:{free_port()}", retries=0)  # no request may be made
    config = kayenta_py.load_config(CONFIG)
    for metric in config.metrics:
        with pytest.raises(
            TemplateError, match=r"\$\{scope\} has the value .* not a plain Graphite metric path"
        ):
            dead.fetch(metric, Scope(hostile), *WINDOW, 60)
    latency = kayenta_py.load_config(
        {"name": "p", "metrics": [{"name": "latency", "query": "app.${location}.${scope}.${field}"}]}
    ).metric("latency")
    with pytest.raises(TemplateError, match=r"\$\{location\}"):
        dead.fetch(latency, Scope("v1-base", hostile, {"field": "count"}), *WINDOW, 60)
    with pytest.raises(TemplateError, match=r"\$\{field\}"):
        dead.fetch(latency, Scope("v1-base", "eu", {"field": hostile}), *WINDOW, 60)


def test_a_hostile_scope_in_an_analysis_fails_it_before_any_request(source: GraphiteSource) -> None:
    with pytest.raises(TemplateError, match=r"\$\{scope\}"):
        analyze(source, "v1-base", "v1-canary,app.v1-base")


def test_undefined_variables_are_named(source: GraphiteSource) -> None:
    metric = kayenta_py.load_config(
        {"name": "u", "metrics": [{"name": "m", "query": "app.${scop}.latency_ms"}]}
    ).metric("m")
    with pytest.raises(TemplateError, match=r"undefined variable \$\{scop\}; did you mean scope"):
        source.fetch(metric, Scope("v1-base"), *WINDOW, 60)


def test_the_source_keeps_the_contract(source: GraphiteSource) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    check_source(source, latency, Scope("v1-base", "eu"), WINDOW[0] + 7, WINDOW[1] - 7, 60.0)


def test_series_sit_on_the_step_grid_and_long_windows_are_chunked(graphite: Graphite) -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    (whole,) = GraphiteSource(graphite.url).fetch(latency, Scope("v1-base"), *WINDOW, 30)
    (chunked,) = GraphiteSource(graphite.url, max_points=7).fetch(latency, Scope("v1-base"), *WINDOW, 30)
    assert whole.timestamps is not None
    assert np.array_equal(whole.timestamps, START + 30.0 * np.arange(120))
    assert np.isfinite(whole.values).all() and np.array_equal(chunked.values, whole.values)
    (gap,) = GraphiteSource(graphite.url).fetch(
        latency, Scope("v1-base"), WINDOW[1] - 600, WINDOW[1] + 600, 60
    )
    assert gap.values.size == 20 and np.isfinite(gap.values[:10]).all() and np.isnan(gap.values[10:]).all()


def test_the_consolidation_function_is_a_setting(graphite: Graphite) -> None:
    count = kayenta_py.load_config(
        {"name": "c", "metrics": [{"name": "count", "query": "app.${scope}.count"}]}
    )
    metric = count.metric("count")
    (avg,) = GraphiteSource(graphite.url).fetch(metric, Scope("v1-base"), *WINDOW, 60)
    total = GraphiteSource.from_settings({"graphite_url": graphite.url, "graphite_consolidation": "sum"})
    (summed,) = total.fetch(metric, Scope("v1-base"), *WINDOW, 60)
    assert np.allclose(summed.values, 6 * avg.values)  # six 10 s points a minute
    assert total.render(metric, Scope("v1-base"), 60) == 'summarize(app.v1-base.count, "60s", "sum")'


def test_several_series_are_keyed_by_their_target(source: GraphiteSource) -> None:
    metric = kayenta_py.load_config(
        {"name": "s", "metrics": [{"name": "latency", "query": "aliasByNode(app.v1-*.latency_ms, 1)"}]}
    ).metric("latency")
    sets = source.fetch(metric, Scope("ignored"), *WINDOW, 300)
    assert sorted(s.tags["target"] for s in sets) == [
        'summarize(v1-base, "300s", "avg")',
        'summarize(v1-canary, "300s", "avg")',
    ]


def test_a_refused_target_is_a_permanent_error_with_graphites_message(source: GraphiteSource) -> None:
    metric = kayenta_py.load_config(
        {"name": "b", "metrics": [{"name": "bad", "query": "nosuchfunction(app.${scope}.count)"}]}
    ).metric("bad")
    with pytest.raises(SourceError, match=r"HTTP 400: .*unknown function: nosuchfunction") as caught:
        source.fetch(metric, Scope("v1-base"), *WINDOW, 60)
    assert caught.value.transient is False and caught.value.status == 400


def test_kayenta_graphite_queries_load_and_run(source: GraphiteSource) -> None:
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
                "query": {"type": "graphite", "metricName": "app.$scope.latency_ms"},
                "analysisConfigurations": {"canary": {"direction": "increase"}},
            }
        ],
    }
    config = kayenta_py.load_config(kayenta)
    result = kayenta_py.analyze(
        config, source, Scope("v2-base"), Scope("v2-canary"), start=WINDOW[0], end=WINDOW[1]
    )
    assert result.verdict is Verdict.FAIL and result.metrics[0].classification is Classification.HIGH
    with pytest.raises(TemplateError, match=r"\$\{scope\}"):
        source.fetch(config.metric("latency"), Scope("v2-canary,*"), *WINDOW, 60)


def test_settings_and_the_query_command(graphite: Graphite, tmp_path: Path) -> None:
    settings = {"graphite_url": graphite.url, "fetch_concurrency": 4}
    assert GraphiteSource.is_configured(settings) and not GraphiteSource.is_configured({})
    assert GraphiteSource.endpoint(settings) == graphite.url
    config = tmp_path / "web.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    env = {**os.environ, "KAYENTA_GRAPHITE_URL": graphite.url}
    script = Path(sys.executable).parent / "kayenta-py"
    args = ["--config", str(config), "--metric", "latency", "--scope", "v2-canary"]
    window = ["--start", str(WINDOW[0]), "--end", str(WINDOW[1])]
    run = subprocess.run(
        [str(script), "query", "--source", "graphite", *args, *window],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert 'summarize(app.v2-canary.latency_ms, "60s", "avg")' in run.stdout
    assert "60 points, 0 missing" in run.stdout


def test_unreachable_graphite_is_a_transient_error_after_the_retries() -> None:
    latency = kayenta_py.load_config(CONFIG).metric("latency")
    dead = GraphiteSource(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01)
    began = time.monotonic()
    with pytest.raises(SourceError, match=r"Connection refused\) \(after 2 retries\)") as caught:
        dead.fetch(latency, Scope("v1"), *WINDOW, 60)
    assert caught.value.transient and time.monotonic() - began < 5


def test_the_bundled_example_renders(source: GraphiteSource) -> None:
    from kayenta_py.examples import EXAMPLES_DIR

    config = kayenta_py.load_config(EXAMPLES_DIR / "graphite.yaml")
    rendered = source.render(config.metric("p99-latency"), Scope("v2", "eu-west-1"), 60)
    assert rendered == 'summarize(services.checkout.eu-west-1.v2.latency.p99, "60s", "avg")'
