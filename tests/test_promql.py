"""PromQL templating: substitution, escaping, injection attempts, Kayenta query building."""

from __future__ import annotations

import re
from typing import Any

import pytest

from kayenta_py import ConfigError, Registry, Scope, load_config
from metrics_sources import TemplateError, build_query, escape_string, render

REGISTRY = Registry().load_entry_points()
P99 = 'histogram_quantile(0.99, sum by (le) (rate(latency_bucket{version="${scope}"}[1m])))'

INJECTIONS = [
    'v2"} or vector(1) #',
    'v2"}) or on() vector(1) or (x{a="',
    "v2\\",
    'v2\\"} or vector(1)',
    "v2\n} or vector(1)",
    "v2'} or vector(1) #",
    "${location}",
]


def structure(query: str) -> str:
    """The query with the contents of every string literal blanked out."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', '""', query)


def string_literals(query: str) -> list[str]:
    """Decode every double-quoted literal as PromQL reads it."""
    out = []
    for literal in re.findall(r'"((?:[^"\\]|\\.)*)"', query):
        out.append(
            re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), literal)
        )
    return out


@pytest.mark.parametrize("scope", INJECTIONS)
def test_injected_scope_stays_a_label_value(scope: str) -> None:
    rendered = render(P99, {"scope": scope})
    assert structure(rendered) == structure(render(P99, {"scope": "v1"}))
    assert string_literals(rendered) == [scope]


def test_single_quoted_and_raw_strings() -> None:
    assert render("x{v='${scope}'}", {"scope": "a'b\\c"}) == "x{v='a\\'b\\\\c'}"
    assert render("x{v=`${scope}`}", {"scope": 'a"b'}) == 'x{v=`a"b`}'
    with pytest.raises(TemplateError, match="backtick"):
        render("x{v=`${scope}`}", {"scope": "a`b"})


def test_placeholders_outside_quotes_take_only_plain_identifiers() -> None:
    assert render("sum by (${label}) (x)", {"label": "pod"}) == "sum by (pod) (x)"
    assert render("topk(${k}, x)", {"k": "5"}) == "topk(5, x)"
    with pytest.raises(TemplateError, match=r"\$\{label\} stands outside quotes"):
        render("sum by (${label}) (x)", {"label": "pod) or vector(1"})


def test_undefined_variable_is_named_with_the_near_match() -> None:
    with pytest.raises(TemplateError, match=r"undefined variable \$\{scpoe\}; did you mean scope\?"):
        render(P99.replace("${scope}", "${scpoe}"), {"scope": "v1", "location": ""})


def test_escaped_quotes_and_comments_in_templates_are_respected() -> None:
    template = 'x{a="say \\"${scope}\\"", b="${scope}"} # ${ignored} "unbalanced'
    assert render(template, {"scope": "v1"}) == 'x{a="say \\"v1\\"", b="v1"} # ${ignored} "unbalanced'
    with pytest.raises(TemplateError, match="unterminated"):
        render('x{a="${scope}}', {"scope": "v1"})


def test_escape_string() -> None:
    assert escape_string('a"b\\c\nd', '"') == 'a\\"b\\\\c\\nd'


def native_metric(query: str) -> Any:
    return load_config({"name": "n", "metrics": [{"name": "m", "query": query}]}, registry=REGISTRY).metrics[
        0
    ]


def test_native_query_uses_scope_location_and_extended_params() -> None:
    metric = native_metric('rate(x{version="${scope}",region="${location}",env="${env}"}[5m])')
    query = build_query(metric, Scope("v2", "eu-west-1", {"env": "prod"}))
    assert query == 'rate(x{version="v2",region="eu-west-1",env="prod"}[5m])'
    with pytest.raises(TemplateError, match=r"metric 'm': undefined variable \$\{env\}"):
        build_query(metric, Scope("v2"))


def kayenta_metric(query: dict[str, Any], templates: dict[str, str] | None = None) -> Any:
    config = {
        "name": "k",
        "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
        "templates": templates or {},
        "metrics": [{"name": "m", "groups": ["g"], "query": {"type": "prometheus", **query}}],
    }
    return load_config(config, registry=REGISTRY).metrics[0]


def test_kayenta_filter_template_label_bindings_and_group_by() -> None:
    metric = kayenta_metric(
        {
            "metricName": "http_latency",
            "customFilterTemplate": "by-version",
            "labelBindings": ['code="200"'],
            "groupByFields": ["pod", "zone"],
        },
        {"by-version": 'version="${scope}",region="${location}"'},
    )
    query = build_query(metric, Scope('v2"}', "us-east-1"))
    assert query == 'avg(http_latency{version="v2\\"}",region="us-east-1",code="200"}) by (pod,zone)'


def test_kayenta_inline_promql_template() -> None:
    metric = kayenta_metric({"customInlineTemplate": 'PromQL:sum(rate(x{v="${scope}",e="${env}"}[1m]))'})
    assert build_query(metric, Scope("v1", params={"env": "prod"})) == 'sum(rate(x{v="v1",e="prod"}[1m]))'


def test_kayenta_resource_types() -> None:
    gce = kayenta_metric({"metricName": "cpu", "resourceType": "gce_instance"})
    assert build_query(gce, Scope("app-v1", "us-central1")) == (
        'avg(cpu{instance=~"app-v1-.{4}",zone=~".+/zones/us-central1-.{1}"})'
    )
    ec2 = kayenta_metric({"metricName": "cpu", "resourceType": "aws_ec2_instance"})
    assert (
        build_query(ec2, Scope("asg-v1", "us-east-1"))
        == 'avg(cpu{asg_groupName="asg-v1",zone=~"us-east-1.{1}"})'
    )
    with pytest.raises(TemplateError, match="needs the scope's location"):
        build_query(ec2, Scope("asg-v1"))
    bare = kayenta_metric({"metricName": "cpu"})
    with pytest.raises(TemplateError, match="needs a custom filter template or a resourceType"):
        build_query(bare, Scope("v1"))


def test_kayenta_missing_filter_template_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        kayenta_metric(
            {"metricName": "x", "customFilterTemplate": "by-verison"}, {"by-version": 'v="${scope}"'}
        )
    assert str(caught.value.issues[0]) == (
        "metrics[0].query.customFilterTemplate: "
        "no template 'by-verison' in templates; did you mean by-version?"
    )


def test_group_by_fields_must_be_label_names() -> None:
    metric = kayenta_metric(
        {"metricName": "x", "customInlineTemplate": 'v="${scope}"', "groupByFields": ["a)"]}
    )
    with pytest.raises(TemplateError, match="not a valid label name"):
        build_query(metric, Scope("v1"))
