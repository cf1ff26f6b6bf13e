"""Config loading: strict native YAML/JSON, Kayenta canary-config JSON, defaults and overrides."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kayenta_py import (
    ConfigError,
    Direction,
    MetricKind,
    NanStrategy,
    OutlierStrategy,
    Registry,
    is_kayenta_config,
    load_config,
)

REGISTRY = Registry().load_entry_points()


def native(**overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "name": "checkout",
        "groups": {"errors": 60, "latency": 40},
        "metrics": [
            {"name": "error-ratio", "kind": "errors"},
            {
                "name": "p99",
                "kind": "latency",
                "judge": {"type": "mann-whitney", "effect_size": {"allowed_increase": 1.1}},
            },
        ],
    }
    config.update(overrides)
    return config


def issues_of(raw: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(raw, registry=REGISTRY)
    return [str(issue) for issue in caught.value.issues]


def test_kind_defaults_are_resolved() -> None:
    config = load_config(native(), registry=REGISTRY)
    errors, latency = config.metrics
    assert errors.kind is MetricKind.ERRORS
    assert errors.direction is Direction.INCREASE and errors.critical is True
    assert errors.groups == ("errors",)
    assert latency.direction is Direction.INCREASE and latency.critical is False
    assert latency.judge_params["effect_size"]["allowed_increase"] == 1.1
    assert latency.judge_params["confidence"] == 0.98 and latency.judge_params["tolerance"] == 0.25
    assert config.thresholds.pass_ == 95 and config.thresholds.marginal == 75


def test_misspelled_judge_key_names_its_path_and_the_near_match() -> None:
    raw = native()
    raw["metrics"].append(
        {"name": "p50", "kind": "latency", "judge": {"type": "mann-whitney", "efect_size": {}}}
    )
    assert issues_of(raw) == ["metrics[2].judge.efect_size: unknown key; did you mean effect_size?"]


def test_misspelled_keys_at_every_level() -> None:
    raw = native(treshold={"pass": 90})
    raw["metrics"][0]["critcal"] = True
    raw["metrics"][1]["judge"]["effect_size"]["allowed_increse"] = 1.2
    found = issues_of(raw)
    assert "treshold: unknown key; did you mean thresholds?" in found
    assert "metrics[0].critcal: unknown key; did you mean critical?" in found
    assert (
        "metrics[1].judge.effect_size.allowed_increse: unknown key; did you mean allowed_increase?" in found
    )


def test_wrong_types_and_ranges_name_their_path() -> None:
    raw = native(thresholds={"pass": 120})
    raw["metrics"][0]["confidence"] = 1.5
    raw["metrics"][1]["kind"] = "latancy"
    found = "\n".join(issues_of(raw))
    assert "thresholds.pass:" in found and "100" in found
    assert "metrics[0].confidence:" in found
    assert "metrics[1].kind: 'latancy' is not one of" in found and "did you mean latency?" in found


def test_marginal_above_pass_is_an_error() -> None:
    assert issues_of(native(thresholds={"pass": 70, "marginal": 80})) == [
        "thresholds.marginal: 80 is above thresholds.pass (70)"
    ]


def test_unknown_judge_type_suggests_the_near_match() -> None:
    raw = native()
    raw["metrics"][1]["judge"]["type"] = "man-whitney"
    (issue,) = issues_of(raw)
    assert issue.startswith("metrics[1].judge.type: unknown judge 'man-whitney'; did you mean mann-whitney?")


def test_metric_level_confidence_and_tolerance_override_the_judge_defaults() -> None:
    raw = native()
    raw["metrics"][1].update({"confidence": 0.9, "tolerance": 0.1})
    metric = load_config(raw, registry=REGISTRY).metrics[1]
    assert metric.judge_params["confidence"] == 0.9 and metric.judge_params["tolerance"] == 0.1
    judge = metric.build_judge(REGISTRY)
    assert judge.get_params()["confidence"] == 0.9


def test_confidence_set_twice_is_an_error() -> None:
    raw = native()
    raw["metrics"][1]["confidence"] = 0.9
    raw["metrics"][1]["judge"]["confidence"] = 0.95
    assert issues_of(raw) == ["metrics[1].confidence: also set in metrics[1].judge.confidence; set it once"]


def test_confidence_on_a_judge_without_it_is_an_error() -> None:
    raw = native()
    raw["metrics"][1] = {
        "name": "p99",
        "kind": "latency",
        "confidence": 0.9,
        "judge": {"type": "threshold", "upper": 1.0},
    }
    assert issues_of(raw) == ["metrics[1].confidence: judge threshold has no parameter confidence"]


def test_business_metrics_need_a_direction() -> None:
    raw = native(metrics=[{"name": "orders", "kind": "business"}], groups={})
    (issue,) = issues_of(raw)
    assert issue.startswith("metrics[0].direction: required for kind business")


def test_duplicate_metric_names_and_overweight_groups() -> None:
    raw = native(groups={"errors": 80, "latency": 40})
    raw["metrics"][1]["name"] = "error-ratio"
    found = issues_of(raw)
    assert "metrics[1].name: duplicate metric name 'error-ratio'" in found
    assert "groups: weights add up to 120, more than 100" in found


def test_group_weight_warnings() -> None:
    config = load_config(native(groups={"errors": 50, "latncy": 30}), registry=REGISTRY)
    assert any(
        "groups.latncy: no metric is in group 'latncy'; did you mean latency?" in w for w in config.warnings
    )
    config = load_config(native(groups={"errors": 50, "latency": 30}), registry=REGISTRY)
    assert any("best possible score is 80" in w for w in config.warnings)


def test_top_level_judge_is_the_default_for_every_metric() -> None:
    raw = native(judge={"type": "mann-whitney", "tolerance": 0.4})
    config = load_config(raw, registry=REGISTRY)
    assert [m.judge_params["tolerance"] for m in config.metrics] == [0.4, 0.4]
    assert config.metrics[1].judge_params["effect_size"]["allowed_increase"] == 1.1


def test_yaml_file_and_json_file(tmp_path: Path) -> None:
    yaml_path = tmp_path / "c.yaml"
    yaml_path.write_text(
        "name: x\nmetrics:\n  - name: lat\n    kind: latency\n    nan_strategy: replace\n"
        "    outliers: {strategy: remove, factor: 2.5}\n"
    )
    metric = load_config(yaml_path, registry=REGISTRY).metrics[0]
    assert metric.nan_strategy is NanStrategy.REPLACE
    assert metric.outliers is not None and metric.outliers.strategy is OutlierStrategy.REMOVE
    assert metric.outliers.factor == 2.5
    json_path = tmp_path / "c.json"
    json_path.write_text(json.dumps(native()))
    assert load_config(json_path, registry=REGISTRY).name == "checkout"


def test_unreadable_and_malformed_files_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read: No such file"):
        load_config(tmp_path / "missing.yaml", registry=REGISTRY)
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmetrics: [\n  - {name: a\n")
    with pytest.raises(ConfigError) as caught:
        load_config(bad, registry=REGISTRY)
    assert "bad.yaml" in str(caught.value) and "invalid YAML" in str(caught.value)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"name": "x",\n "metrics": [}')
    with pytest.raises(ConfigError, match=r"bad.json: line 2: invalid JSON"):
        load_config(bad_json, registry=REGISTRY)


KAYENTA_CONFIG: dict[str, Any] = {
    "name": "checkout-kayenta",
    "applications": ["checkout"],
    "configVersion": "1",
    "createdTimestamp": 1700000000000,
    "judge": {"name": "NetflixACAJudge-v1.0", "judgeConfigurations": {}},
    "metrics": [
        {
            "name": "error-ratio",
            "query": {"type": "prometheus", "metricName": "http_errors", "serviceType": "prometheus"},
            "groups": ["errors"],
            "analysisConfigurations": {
                "canary": {
                    "direction": "increase",
                    "critical": True,
                    "nanStrategy": "replace",
                    "effectSize": {"allowedIncrease": 1.2, "criticalIncrease": 2.0},
                    "confidence": 0.95,
                }
            },
            "scopeName": "default",
        },
        {
            "name": "latency",
            "query": {"type": "prometheus", "customInlineTemplate": "PromQL:histogram_quantile(0.99, x)"},
            "groups": ["latency", "all"],
            "analysisConfigurations": {
                "canary": {
                    "mustHaveData": True,
                    "tolerance": 0.1,
                    "outliers": {"strategy": "remove", "outlierFactor": 2.0},
                }
            },
        },
    ],
    "templates": {"t": "x{${scope}}"},
    "classifier": {
        "groupWeights": {"errors": 60, "latency": 40},
        "scoreThresholds": {"pass": 90, "marginal": 50},
    },
}


def test_kayenta_config_is_accepted_as_is() -> None:
    assert is_kayenta_config(KAYENTA_CONFIG)
    config = load_config(KAYENTA_CONFIG, registry=REGISTRY)
    assert config.format == "kayenta" and config.warnings == ()
    errors, latency = config.metrics
    assert errors.judge_type == "mann-whitney"
    assert errors.critical and errors.direction is Direction.INCREASE
    assert errors.nan_strategy is NanStrategy.REPLACE
    assert errors.judge_params["confidence"] == 0.95
    assert errors.judge_params["effect_size"]["allowed_increase"] == 1.2
    assert errors.judge_params["effect_size"]["critical_increase"] == 2.0
    assert errors.kayenta_query is not None and errors.kayenta_query["metricName"] == "http_errors"
    assert latency.groups == ("latency", "all") and latency.must_have_data
    assert latency.direction is Direction.EITHER and not latency.critical
    assert latency.judge_params["tolerance"] == 0.1
    assert latency.outliers is not None and latency.outliers.factor == 2.0
    assert config.group_weights == {"errors": 60, "latency": 40}
    assert config.thresholds.pass_ == 90 and config.thresholds.marginal == 50
    assert config.templates == {"t": "x{${scope}}"}


def test_kayenta_unknown_fields_are_warnings_with_suggestions() -> None:
    raw = json.loads(json.dumps(KAYENTA_CONFIG))
    raw["metrics"][0]["analysisConfigurations"]["canary"]["efectSize"] = {}
    raw["somethingNew"] = 1
    config = load_config(raw, registry=REGISTRY)
    assert (
        "metrics[0].analysisConfigurations.canary.efectSize: unknown field, ignored; did you mean effectSize?"
        in config.warnings
    )
    assert any(w.startswith("somethingNew: unknown field") for w in config.warnings)


def test_kayenta_type_errors_name_their_path() -> None:
    raw = json.loads(json.dumps(KAYENTA_CONFIG))
    raw["metrics"][1]["analysisConfigurations"]["canary"]["direction"] = "up"
    raw["metrics"][0]["groups"] = []
    found = "\n".join(issues_of(raw))
    assert "metrics[1].analysisConfigurations.canary.direction: 'up' is not one of" in found
    assert "metrics[0].groups:" in found


def test_kayenta_unknown_judge_is_an_error() -> None:
    raw = json.loads(json.dumps(KAYENTA_CONFIG))
    raw["judge"]["name"] = "dredd-v1.0"
    assert any(i.startswith("judge.name: unknown judge 'dredd'") for i in issues_of(raw))


# ---------------------------------------------------------------- config traps (issue 11)


def test_scored_metric_in_a_weightless_group_is_an_error_naming_it() -> None:
    config: dict[str, Any] = {
        "groups": {"errors": 60, "latency": 40},  # saturation is unlisted and would weigh 0
        "metrics": [
            {"name": "error-ratio", "kind": "errors"},
            {"name": "p99", "kind": "latency"},
            {"name": "cpu", "kind": "saturation"},
        ],
    }
    with pytest.raises(ConfigError) as caught:
        load_config(config)
    assert "metrics[2].group" in str(caught.value) and "'cpu'" in str(caught.value)
    given_zero = {"groups": {"errors": 100, "saturation": 0}, "metrics": config["metrics"][::2]}
    with pytest.raises(ConfigError, match=r"metrics\[1\]\.group"):
        load_config(given_zero)
    # Muted, it is reported and not scored: no error. With weights leaving a share: no error.
    load_config({**config, "metrics": [*config["metrics"][:2], {**config["metrics"][2], "muted": True}]})
    load_config({**config, "groups": {"errors": 60, "latency": 30}})


def test_kayenta_config_with_a_weightless_group_warns() -> None:
    kayenta = {
        "name": "k",
        "classifier": {"groupWeights": {"a": 100}},
        "metrics": [
            {"name": "m1", "query": {"type": "prometheus", "metricName": "x"}, "groups": ["a"]},
            {"name": "m2", "query": {"type": "prometheus", "metricName": "y"}, "groups": ["b"]},
        ],
    }
    config = load_config(kayenta)
    assert any("'m2'" in w and "weight" in w for w in config.warnings)


@pytest.mark.parametrize("kind", ["latency", "saturation", "errors"])
def test_decrease_on_an_increase_kind_warns(kind: str) -> None:
    config = load_config({"metrics": [{"name": "m", "kind": kind, "direction": "decrease"}]})
    assert any("metrics[0].direction" in w and "'decrease'" in w for w in config.warnings)
    assert not load_config({"metrics": [{"name": "m", "kind": kind, "direction": "either"}]}).warnings


def test_native_metrics_must_have_data_by_default_kayenta_ones_do_not() -> None:
    native = load_config({"metrics": [{"name": "m"}, {"name": "n", "must_have_data": False}]})
    assert [m.must_have_data for m in native.metrics] == [True, False]
    kayenta = load_config(
        {"classifier": {}, "metrics": [{"name": "m", "query": {"metricName": "x"}, "groups": ["g"]}]}
    )
    assert kayenta.metrics[0].must_have_data is False


@pytest.mark.parametrize("thresholds", [{"pass": 0, "marginal": 0}, {"pass": 0.0}])
def test_thresholds_that_let_a_zero_score_pass_are_refused(thresholds: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=r"thresholds\.pass"):
        load_config({"thresholds": thresholds, "metrics": [{"name": "m"}]})
