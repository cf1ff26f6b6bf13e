"""The ``threshold`` judge (DESIGN 4.2): absolute and baseline-relative bounds on an aggregate."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import kayenta_py
from judges import ThresholdJudge
from kayenta_py import (
    Classification,
    ConfigError,
    Direction,
    FloatArray,
    KayentaError,
    MetricResult,
    MetricSetPair,
    Registry,
    format_number,
)

Aggregate = Callable[[FloatArray], float]


def run(baseline: Any, canary: Any, **params: Any) -> MetricResult:
    """Judge one pair with a threshold judge; check the properties every result has."""
    result = ThresholdJudge(**params).judge(MetricSetPair.of("m", baseline, canary))
    assert result.reason.strip()
    json.dumps(result.to_dict(), allow_nan=False)
    return result


def classify(baseline: Any, canary: Any, **params: Any) -> Classification:
    return run(baseline, canary, **params).classification


def const(value: float, count: int = 4) -> FloatArray:
    """``count`` copies of ``value`` (4: the mean and the sum stay exact)."""
    return np.full(count, value, dtype=np.float64)


def up(value: float) -> float:
    return float(np.nextafter(value, math.inf))


def down(value: float) -> float:
    return float(np.nextafter(value, -math.inf))


def _percentile(q: float) -> Aggregate:
    def aggregate(values: FloatArray) -> float:
        return float(np.percentile(values, q, method="linear"))

    return aggregate


def _last(values: FloatArray) -> float:
    return float(values[-1])


AGGREGATES: list[tuple[str, Aggregate]] = [
    ("mean", lambda v: float(np.mean(v))),
    ("median", lambda v: float(np.median(v))),
    ("min", lambda v: float(np.min(v))),
    ("max", lambda v: float(np.max(v))),
    ("last", _last),
    ("sum", lambda v: float(np.sum(v))),
    ("p0", _percentile(0.0)),
    ("p1", _percentile(1.0)),
    ("p5.5", _percentile(5.5)),
    ("p50", _percentile(50.0)),
    ("p90", _percentile(90.0)),
    ("p95", _percentile(95.0)),
    ("p99", _percentile(99.0)),
    ("p99.9", _percentile(99.9)),
    ("p99.99", _percentile(99.99)),
    ("p100", _percentile(100.0)),
]
AGGREGATE_IDS = [name for name, _ in AGGREGATES]


def latency(seed: int, size: int) -> FloatArray:
    return np.random.default_rng(seed).lognormal(3.0, 0.6, size)


# ---------------------------------------------------------------- registration


def test_registered_as_threshold() -> None:
    registry = Registry().load_entry_points()
    assert registry.judge_class("threshold") is ThresholdJudge
    assert ThresholdJudge(upper=1.0).full_name == "threshold-v1.0"


# ---------------------------------------------------------------- aggregates


@pytest.mark.parametrize(("aggregate", "expected"), AGGREGATES, ids=AGGREGATE_IDS)
@pytest.mark.parametrize(("size", "seed"), [(50, 1), (137, 2), (200, 3)])
def test_aggregate_matches_numpy(aggregate: str, expected: Aggregate, size: int, seed: int) -> None:
    baseline, canary = latency(seed, size), latency(seed + 100, size + 7)
    result = run(baseline, canary, aggregate=aggregate, upper=1e12)
    assert result.details["aggregate"] == aggregate
    assert result.details["canary_value"] == pytest.approx(expected(canary), rel=1e-12)
    assert result.details["baseline_value"] == pytest.approx(expected(baseline), rel=1e-12)


@pytest.mark.parametrize(("aggregate", "expected"), AGGREGATES, ids=AGGREGATE_IDS)
def test_aggregate_decides_the_absolute_bounds(aggregate: str, expected: Aggregate) -> None:
    baseline, canary = latency(4, 90), latency(5, 120)
    value = float(run(baseline, canary, aggregate=aggregate, upper=1e12).details["canary_value"])
    assert value == pytest.approx(expected(canary), rel=1e-12)
    assert classify(baseline, canary, aggregate=aggregate, upper=value) is Classification.PASS
    assert classify(baseline, canary, aggregate=aggregate, upper=down(value)) is Classification.HIGH
    assert classify(baseline, canary, aggregate=aggregate, lower=value) is Classification.PASS
    assert classify(baseline, canary, aggregate=aggregate, lower=up(value)) is Classification.LOW


@pytest.mark.parametrize(("aggregate", "expected"), AGGREGATES, ids=AGGREGATE_IDS)
def test_aggregates_ignore_nans(aggregate: str, expected: Aggregate) -> None:
    clean = latency(6, 60)
    dirty = np.concatenate([[math.nan], clean[:30], [math.nan, math.nan], clean[30:], [math.nan]])
    result = run(dirty, dirty, aggregate=aggregate, upper=1e12)
    assert result.canary.count == clean.size
    assert result.details["canary_value"] == pytest.approx(expected(clean), rel=1e-12)
    assert result.details["baseline_value"] == pytest.approx(expected(clean), rel=1e-12)


def test_last_is_the_last_value_in_order() -> None:
    result = run([1.0, 2.0, 3.0], [9.0, 1.0, 5.0, math.nan], aggregate="last", upper=4.0)
    assert result.details["canary_value"] == 5.0
    assert result.details["baseline_value"] == 3.0
    assert result.classification is Classification.HIGH


@pytest.mark.parametrize("aggregate", ["avg", "p", "p101", "p999", "P99", "mean ", "p-1", "99"])
def test_unknown_aggregate_is_rejected(aggregate: str) -> None:
    with pytest.raises(KayentaError, match="is not one of"):
        ThresholdJudge(aggregate=aggregate, upper=1.0)


# ---------------------------------------------------------------- absolute bounds


def test_upper_bound_is_strict() -> None:
    baseline, canary = [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 2.0]  # canary mean exactly 2
    assert classify(baseline, canary, upper=2.0) is Classification.PASS
    assert classify(baseline, canary, upper=down(2.0)) is Classification.HIGH
    assert classify(baseline, canary, upper=1.999) is Classification.HIGH
    assert classify(baseline, canary, upper=2.001) is Classification.PASS


def test_lower_bound_is_strict() -> None:
    baseline, canary = [1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 2.0]
    assert classify(baseline, canary, lower=2.0) is Classification.PASS
    assert classify(baseline, canary, lower=up(2.0)) is Classification.LOW
    assert classify(baseline, canary, lower=2.001) is Classification.LOW
    assert classify(baseline, canary, lower=1.999) is Classification.PASS


def test_equal_lower_and_upper_pin_the_value() -> None:
    assert classify([5.0], const(2.0), lower=2.0, upper=2.0) is Classification.PASS
    assert classify([5.0], const(up(2.0)), lower=2.0, upper=2.0) is Classification.HIGH
    assert classify([5.0], const(down(2.0)), lower=2.0, upper=2.0) is Classification.LOW


def test_absolute_bounds_ignore_the_baseline() -> None:
    baseline = const(1000.0, 10)
    assert classify(baseline, const(2.0), upper=5.0) is Classification.PASS
    assert classify(baseline, const(2.0), lower=1.0, upper=5.0) is Classification.PASS
    assert classify(const(0.0), const(6.0), upper=5.0) is Classification.HIGH


# ---------------------------------------------------------------- relative bounds

BASELINE_200 = [190.0, 210.0]  # mean 200: +10% and +20 both give 220, -10% and -20 give 180
INCREASE_FORMS: list[str | float] = ["+10%", "10%", "<= +10%", "<=10%", " + 10 % ", 20, 20.0, "+20", "<= +20"]
DECREASE_FORMS: list[str | float] = ["10%", "-10%", "<= -10%", "<=10%", 20, 20.0, "-20", "<= -20"]


@pytest.mark.parametrize("bound", INCREASE_FORMS, ids=repr)
def test_max_increase_is_strict(bound: str | float) -> None:
    assert classify(BASELINE_200, const(220.0), max_increase=bound) is Classification.PASS
    assert classify(BASELINE_200, const(up(220.0)), max_increase=bound) is Classification.HIGH
    assert classify(BASELINE_200, const(221.0), max_increase=bound) is Classification.HIGH
    assert classify(BASELINE_200, const(219.0), max_increase=bound) is Classification.PASS
    assert classify(BASELINE_200, const(10.0), max_increase=bound) is Classification.PASS


@pytest.mark.parametrize("bound", DECREASE_FORMS, ids=repr)
def test_max_decrease_is_strict(bound: str | float) -> None:
    assert classify(BASELINE_200, const(180.0), max_decrease=bound) is Classification.PASS
    assert classify(BASELINE_200, const(down(180.0)), max_decrease=bound) is Classification.LOW
    assert classify(BASELINE_200, const(179.0), max_decrease=bound) is Classification.LOW
    assert classify(BASELINE_200, const(181.0), max_decrease=bound) is Classification.PASS
    assert classify(BASELINE_200, const(1e6), max_decrease=bound) is Classification.PASS


def test_percentage_and_absolute_delta_differ() -> None:
    baseline = const(1000.0)
    assert classify(baseline, const(1050.0), max_increase="+10%") is Classification.PASS
    assert classify(baseline, const(1050.0), max_increase="+10") is Classification.HIGH
    assert classify(baseline, const(1050.0), max_increase=10) is Classification.HIGH
    assert classify(baseline, const(950.0), max_decrease="10%") is Classification.PASS
    assert classify(baseline, const(950.0), max_decrease=10) is Classification.LOW


def test_relative_bounds_use_the_baseline_aggregate() -> None:
    baseline = [10.0, 20.0, 100.0]  # max 100, mean 43.3
    assert classify(baseline, [1.0, 110.0], aggregate="max", max_increase="+10%") is Classification.PASS
    assert classify(baseline, [1.0, up(110.0)], aggregate="max", max_increase="+10%") is (
        Classification.HIGH
    )
    assert classify(baseline, [1.0, 90.0], aggregate="max", max_decrease="10%") is Classification.PASS
    assert classify(baseline, [1.0, 89.0], aggregate="max", max_decrease="10%") is Classification.LOW


@pytest.mark.parametrize(("aggregate", "expected"), AGGREGATES, ids=AGGREGATE_IDS)
def test_relative_bounds_on_every_aggregate(aggregate: str, expected: Aggregate) -> None:
    baseline = latency(7, 150)
    params = {"aggregate": aggregate, "max_increase": "+10%", "max_decrease": "10%"}
    assert classify(baseline, baseline * 1.05, **params) is Classification.PASS
    assert classify(baseline, baseline * 0.95, **params) is Classification.PASS
    assert classify(baseline, baseline * 1.2, **params) is Classification.HIGH
    assert classify(baseline, baseline * 0.8, **params) is Classification.LOW
    result = run(baseline, baseline * 1.2, **params)
    assert result.details["baseline_value"] == pytest.approx(expected(baseline), rel=1e-12)


def test_relative_bounds_with_a_negative_baseline() -> None:
    baseline = [-210.0, -190.0]  # mean -200: 10% of |-200| is 20
    assert classify(baseline, const(-180.0), max_increase="+10%") is Classification.PASS
    assert classify(baseline, const(-179.0), max_increase="+10%") is Classification.HIGH
    assert classify(baseline, const(-220.0), max_decrease="10%") is Classification.PASS
    assert classify(baseline, const(-221.0), max_decrease="10%") is Classification.LOW


def test_percentage_bound_with_a_zero_baseline() -> None:
    baseline = np.zeros(50)
    both = {"max_increase": "+10%", "max_decrease": "10%"}
    assert classify(baseline, np.zeros(20), **both) is Classification.PASS
    assert classify(baseline, [0.0, 0.0, 1e-9], **both) is Classification.HIGH
    assert classify(baseline, [0.0, 0.0, -1e-9], **both) is Classification.LOW
    result = run(baseline, [0.0, 0.0, 1e-9], **both)
    assert result.details["baseline_value"] == 0.0
    assert result.details["canary_value"] == pytest.approx(1e-9 / 3)
    assert result.effect_size is not None
    assert math.isnan(result.effect_size)
    assert math.isnan(result.mean_ratio)
    assert result.to_dict()["effect_size"] is None
    assert result.to_dict()["mean_ratio"] is None


def test_absolute_delta_with_a_zero_baseline() -> None:
    baseline = np.zeros(50)
    assert classify(baseline, const(0.5), max_increase=0.5) is Classification.PASS
    assert classify(baseline, const(0.6), max_increase=0.5) is Classification.HIGH
    assert classify(baseline, const(-0.5), max_decrease="0.5") is Classification.PASS
    assert classify(baseline, const(-0.6), max_decrease="0.5") is Classification.LOW


@pytest.mark.parametrize("bound", ["ten percent", "", "%", "10%%", ">= 10%", "+-10%", "abc"])
@pytest.mark.parametrize("key", ["max_increase", "max_decrease"])
def test_malformed_relative_bound_is_rejected(key: str, bound: str) -> None:
    kwargs: dict[str, Any] = {key: bound}
    with pytest.raises(KayentaError, match="is not a relative bound"):
        ThresholdJudge(**kwargs)


# ---------------------------------------------------------------- direction and validation


@pytest.mark.parametrize(
    ("direction", "bound"),
    [
        ("increase", {"lower": 1.0}),
        ("increase", {"max_decrease": "10%"}),
        ("increase", {"upper": 5.0, "lower": 1.0}),
        ("decrease", {"upper": 1.0}),
        ("decrease", {"max_increase": "+10%"}),
        ("decrease", {"lower": 1.0, "max_increase": 3}),
    ],
)
def test_bound_contradicting_the_direction_is_an_error(
    direction: str, bound: dict[str, Any]
) -> None:
    with pytest.raises(KayentaError, match=f"direction '{direction}'"):
        ThresholdJudge(direction=direction, **bound)


@pytest.mark.parametrize(
    ("direction", "bound"),
    [
        ("increase", {"upper": 1.0, "max_increase": "+10%"}),
        ("decrease", {"lower": 1.0, "max_decrease": "10%"}),
        ("either", {"upper": 5.0, "lower": 1.0, "max_increase": "+10%", "max_decrease": "10%"}),
    ],
)
def test_bounds_matching_the_direction_are_accepted(direction: str, bound: dict[str, Any]) -> None:
    judge = ThresholdJudge(direction=direction, **bound)
    assert judge.direction is Direction(direction)
    for key, value in bound.items():
        assert judge.get_params()[key] == value


def test_one_sided_bounds_never_flag_the_other_side() -> None:
    baseline = const(100.0)
    assert classify(baseline, const(1.0), upper=150.0) is Classification.PASS
    assert classify(baseline, const(1.0), direction="increase", max_increase="+10%") is (
        Classification.PASS
    )
    assert classify(baseline, const(1e6), direction="decrease", lower=50.0) is Classification.PASS
    assert classify(baseline, const(1e6), max_decrease="10%") is Classification.PASS


@pytest.mark.parametrize("direction", list(Direction))
def test_no_bound_is_an_error(direction: Direction) -> None:
    with pytest.raises(KayentaError, match="at least one of upper, lower, max_increase"):
        ThresholdJudge(direction=direction)
    with pytest.raises(KayentaError, match="at least one"):
        ThresholdJudge(direction=direction, aggregate="p99")


def test_lower_above_upper_is_an_error() -> None:
    with pytest.raises(KayentaError, match=r"lower \(5\) is above upper \(1\)"):
        ThresholdJudge(lower=5.0, upper=1.0)
    ThresholdJudge(lower=1.0, upper=1.0)  # equal bounds are fine


def test_numeric_string_bound_is_used_as_a_number() -> None:
    kwargs: dict[str, Any] = {"upper": "0.5"}
    try:
        judge = ThresholdJudge(**kwargs)
    except (KayentaError, ValueError):
        return  # rejecting it at construction is fine too
    result = judge.judge(MetricSetPair.of("m", [0.1, 0.2], [0.9, 1.0]))
    assert result.classification is Classification.HIGH


# ---------------------------------------------------------------- result contents


def test_critical_flag() -> None:
    baseline = const(100.0)
    high = run(baseline, const(200.0), upper=150.0, critical=True)
    assert high.classification is Classification.HIGH
    assert high.critical is True
    assert high.critical_metric is True
    assert "critical" in high.reason
    low = run(baseline, const(10.0), lower=50.0, critical=True)
    assert low.classification is Classification.LOW
    assert low.critical is True
    passed = run(baseline, const(100.0), upper=150.0, critical=True)
    assert passed.classification is Classification.PASS
    assert passed.critical is False
    assert passed.critical_metric is True
    assert "critical" not in passed.reason
    plain = run(baseline, const(200.0), upper=150.0)
    assert plain.critical is False
    assert plain.critical_metric is False


def test_reason_names_the_aggregate_and_the_upper_bound() -> None:
    result = run(latency(8, 100), latency(9, 100) + 1000.0, aggregate="p99", upper=0.25)
    assert result.classification is Classification.HIGH
    assert "p99" in result.reason
    assert "upper bound 0.25" in result.reason
    assert format_number(float(result.details["canary_value"])) in result.reason


def test_reason_names_the_aggregate_and_the_lower_bound() -> None:
    result = run(latency(8, 100), latency(9, 100), aggregate="median", lower=1234.5)
    assert result.classification is Classification.LOW
    assert "median" in result.reason
    assert "lower bound 1234" in result.reason


def test_reason_names_the_relative_bounds() -> None:
    high = run(BASELINE_200, const(250.0), aggregate="mean", max_increase="+10%")
    assert "mean" in high.reason
    assert "10%" in high.reason
    assert "baseline 200" in high.reason
    assert "220" in high.reason
    low = run(BASELINE_200, const(150.0), max_decrease=20)
    assert "baseline 200" in low.reason
    assert "20" in low.reason
    assert "180" in low.reason


def test_reason_lists_every_breached_bound() -> None:
    result = run(BASELINE_200, const(300.0), upper=250.0, max_increase="+10%")
    assert result.classification is Classification.HIGH
    assert "upper bound 250" in result.reason
    assert "+ 10%" in result.reason


def test_reason_of_a_pass_names_the_aggregate() -> None:
    result = run(BASELINE_200, const(200.0), aggregate="p95", upper=250.0)
    assert result.classification is Classification.PASS
    assert "p95" in result.reason
    assert "within" in result.reason


def test_details_and_effect_size() -> None:
    baseline, canary = [1.0, 2.0, 3.0], [3.0, 4.0, 5.0]
    result = run(baseline, canary, aggregate="max", upper=10.0)
    assert result.details == {"aggregate": "max", "canary_value": 5.0, "baseline_value": 3.0}
    assert result.estimate == 2.0
    assert result.effect_size == pytest.approx(5.0 / 3.0)
    assert result.effect_measure == "max ratio"
    assert result.mean_ratio == pytest.approx(2.0)
    assert result.ci is None
    assert result.judge == "threshold-v1.0"
    assert result.to_dict()["details"] == {
        "aggregate": "max", "canary_value": 5.0, "baseline_value": 3.0,
    }


def test_missing_data_is_nodata() -> None:
    result = run([], [1.0, 2.0], upper=1.0, critical=True)
    assert result.classification is Classification.NODATA
    assert result.critical is True
    assert classify([1.0], [math.nan], upper=1.0) is Classification.NODATA
    assert classify([1.0], [], upper=1.0, must_have_data=True) is (
        Classification.NODATA_FAIL_METRIC
    )


# ---------------------------------------------------------------- through the configuration


def _error_config(**judge: Any) -> dict[str, Any]:
    return {
        "name": "t",
        "metrics": [{"name": "err", "kind": "errors", "judge": {"type": "threshold", **judge}}],
    }


def test_config_error_rate_p99_breached_fails_the_canary() -> None:
    cfg = kayenta_py.load_config(_error_config(upper=0.01, aggregate="p99"))
    rng = np.random.default_rng(42)
    baseline = rng.uniform(0.0, 0.002, 120)
    canary = rng.uniform(0.0, 0.05, 120)
    assert float(np.percentile(canary, 99)) > 0.01
    result = kayenta_py.judge(cfg, {"err": baseline.tolist()}, {"err": canary.tolist()})
    assert result.verdict == "fail"
    assert result.score == 0.0
    metric = result.metric("err")
    assert metric.classification is Classification.HIGH
    assert metric.critical is True
    assert "p99" in metric.reason
    assert "critical metric failed" in result.reason
    json.dumps(result.to_dict(), allow_nan=False)


def test_config_error_rate_p99_within_bound_passes() -> None:
    cfg = kayenta_py.load_config(_error_config(upper=0.01, aggregate="p99"))
    rng = np.random.default_rng(43)
    baseline = rng.uniform(0.0, 0.002, 120)
    canary = rng.uniform(0.0, 0.005, 120)
    result = kayenta_py.judge(cfg, {"err": baseline.tolist()}, {"err": canary.tolist()})
    assert result.verdict == "pass"
    assert result.score == 100.0
    assert result.metric("err").classification is Classification.PASS


def test_config_keeps_the_judge_parameters() -> None:
    registry = Registry().load_entry_points()
    cfg = kayenta_py.load_config(
        _error_config(aggregate="p99.9", upper=0.02, max_increase="+10%"), registry=registry
    )
    metric = cfg.metric("err")
    assert metric.judge_type == "threshold"
    assert metric.direction is Direction.INCREASE
    assert metric.critical is True
    assert metric.judge_params["aggregate"] == "p99.9"
    assert metric.judge_params["upper"] == 0.02
    assert metric.judge_params["max_increase"] == "+10%"
    judge = metric.build_judge(registry)
    assert isinstance(judge, ThresholdJudge)
    assert judge.critical is True


@pytest.mark.parametrize(
    ("bound", "canary", "verdict"),
    [
        ("+10%", 0.0105, "pass"),
        ("+10%", 0.0115, "fail"),
        (0.005, 0.0149, "pass"),
        (0.005, 0.0151, "fail"),
    ],
)
def test_config_relative_bound(bound: str | float, canary: float, verdict: str) -> None:
    cfg = kayenta_py.load_config(_error_config(max_increase=bound))
    result = kayenta_py.judge(cfg, {"err": [0.01, 0.01]}, {"err": [canary, canary]})
    assert result.verdict == verdict


def test_config_misspelled_key_suggests_the_right_one() -> None:
    with pytest.raises(ConfigError) as info:
        kayenta_py.load_config(_error_config(uper=1))
    message = str(info.value)
    assert "metrics[0].judge.uper" in message
    assert "did you mean upper" in message


@pytest.mark.parametrize(
    ("metric", "bound"),
    [
        ({"kind": "errors"}, {"lower": 0.0}),
        ({"kind": "latency"}, {"max_decrease": "10%"}),
        ({"kind": "saturation"}, {"lower": 0.1, "upper": 0.9}),
        ({"kind": "business", "direction": "decrease"}, {"upper": 100.0}),
        ({"kind": "custom", "direction": "decrease"}, {"max_increase": "+5%"}),
        ({"kind": "custom", "direction": "increase"}, {"lower": 1.0}),
    ],
)
def test_config_bound_contradicting_the_direction(
    metric: dict[str, Any], bound: dict[str, Any]
) -> None:
    config = {"metrics": [{"name": "m", **metric, "judge": {"type": "threshold", **bound}}]}
    with pytest.raises(ConfigError) as info:
        kayenta_py.load_config(config)
    assert [issue.path for issue in info.value.issues] == ["metrics[0].judge"]
    assert "metrics[0].judge" in str(info.value)
    assert "never flags" in str(info.value)


def test_config_error_names_the_right_metric() -> None:
    config = {
        "metrics": [
            {"name": "ok", "kind": "latency", "judge": {"type": "threshold", "upper": 300}},
            {"name": "bad", "kind": "latency", "judge": {"type": "threshold", "lower": 1}},
        ]
    }
    with pytest.raises(ConfigError) as info:
        kayenta_py.load_config(config)
    assert [issue.path for issue in info.value.issues] == ["metrics[1].judge"]


def test_config_without_a_bound() -> None:
    with pytest.raises(ConfigError) as info:
        kayenta_py.load_config(_error_config(aggregate="p99"))
    assert [issue.path for issue in info.value.issues] == ["metrics[0].judge"]
    assert "at least one" in str(info.value)


def test_config_lower_above_upper() -> None:
    config = {"metrics": [{"name": "m", "judge": {"type": "threshold", "lower": 5, "upper": 1}}]}
    with pytest.raises(ConfigError) as info:
        kayenta_py.load_config(config)
    assert [issue.path for issue in info.value.issues] == ["metrics[0].judge"]
    assert "above upper" in str(info.value)


@pytest.mark.parametrize(
    ("judge", "path"),
    [
        ({"upper": 1, "aggregate": "p999"}, "metrics[0].judge.aggregate"),
        ({"upper": 1, "aggregate": "average"}, "metrics[0].judge.aggregate"),
        ({"max_increase": "ten percent"}, "metrics[0].judge.max_increase"),
        ({"upper": "high"}, "metrics[0].judge.upper"),
    ],
)
def test_config_invalid_values_name_their_path(judge: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError) as info:
        kayenta_py.load_config(_error_config(**judge))
    assert path in [issue.path for issue in info.value.issues]
