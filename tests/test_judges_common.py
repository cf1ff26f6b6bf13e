"""Conformance suite run over every registered judge (DESIGN section 4), and registry tests.

Every judge the installed entry points declare is collected here, so a new judge
cannot escape the suite: it must have an entry in :data:`JUDGE_PARAMS` (the
parameters that make it a sensible judge for a given direction), or the suite fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import kayenta_py
from kayenta_py import (
    Classification,
    Direction,
    FloatArray,
    Judge,
    MetricResult,
    MetricSetPair,
    NanStrategy,
    Outliers,
    OutlierStrategy,
    PluginError,
    Registry,
    SummaryStats,
)

ParamsFactory = Callable[[Direction], dict[str, Any]]


def _no_params(direction: Direction) -> dict[str, Any]:
    return {}


def _threshold_params(direction: Direction) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if direction.allows_high():
        params["max_increase"] = "+10%"
    if direction.allows_low():
        params["max_decrease"] = "10%"
    return params


JUDGE_PARAMS: dict[str, ParamsFactory] = {
    "mann-whitney": _no_params,
    "mean-inequality": _no_params,
    "threshold": _threshold_params,
}
"""Judge name -> function(direction) -> the judge-specific parameters used in this suite."""

_ALL = Registry().load_entry_points()
# Fixed-horizon judges: judge(pair) -> MetricResult. Sequential judges (batch updates of a
# state) have their own suite in tests/test_sequential.py.
JUDGE_NAMES = [n for n in _ALL.judge_names() if not getattr(_ALL.judge_class(n), "sequential", False)]
DIRECTIONS = list(Direction)
SIDES = ["baseline", "canary", "both"]
SCENARIOS = ["identical", "shift-up", "shift-down"]

EXPECTED: dict[tuple[str, Direction], Classification] = {
    ("identical", Direction.EITHER): Classification.PASS,
    ("identical", Direction.INCREASE): Classification.PASS,
    ("identical", Direction.DECREASE): Classification.PASS,
    ("shift-up", Direction.EITHER): Classification.HIGH,
    ("shift-up", Direction.INCREASE): Classification.HIGH,
    ("shift-up", Direction.DECREASE): Classification.PASS,
    ("shift-down", Direction.EITHER): Classification.LOW,
    ("shift-down", Direction.INCREASE): Classification.PASS,
    ("shift-down", Direction.DECREASE): Classification.LOW,
}


@pytest.fixture
def registry() -> Registry:
    """A fresh registry with the installed plugins, one per test."""
    return Registry().load_entry_points()


def params_for(name: str, direction: Direction) -> dict[str, Any]:
    """Return the suite's judge-specific parameters, failing clearly for an unknown judge."""
    factory = JUDGE_PARAMS.get(name)
    if factory is None:
        pytest.fail(
            f"judge {name!r} is registered but has no parameter factory in "
            f"tests/test_judges_common.py::JUDGE_PARAMS; add one so that the common "
            f"conformance suite covers it"
        )
    return factory(direction)


def make_judge(
    registry: Registry,
    name: str,
    direction: Direction = Direction.EITHER,
    **common: Any,
) -> Judge:
    """Build the registered judge ``name`` with sensible parameters for ``direction``."""
    cls = registry.judge_class(name)
    judge = cls(**params_for(name, direction), direction=direction, **common)
    assert isinstance(judge, Judge)
    return judge


def sample(seed: int, size: int) -> FloatArray:
    """Return ``size`` seeded normal draws around 100."""
    return np.random.default_rng(seed).normal(100.0, 10.0, size)


def scenario_data(scenario: str, size: int, seed: int = 7) -> tuple[FloatArray, FloatArray]:
    """Return (baseline, canary) for a scenario: identical, a clear shift up or down."""
    baseline = sample(seed, size)
    other = sample(seed + 1, size)
    if scenario == "identical":
        return baseline, baseline.copy()
    if scenario == "shift-up":
        return baseline, other * 3.0 + 50.0
    if scenario == "shift-down":
        return baseline, other / 3.0 - 10.0
    raise AssertionError(f"unknown scenario {scenario}")


def sprinkle_nans(values: FloatArray, seed: int, share: float = 0.15) -> FloatArray:
    """Return ``values`` with NaN inserted at random positions (the values keep their order)."""
    rng = np.random.default_rng(seed)
    count = max(1, int(values.size * share))
    positions = np.sort(rng.choice(values.size + 1, size=count, replace=True))
    return np.insert(values, positions, math.nan)


def check_result(result: MetricResult) -> None:
    """Properties of every result: a non-empty reason and a strict-JSON to_dict()."""
    assert isinstance(result.reason, str)
    assert result.reason.strip(), f"empty reason for {result.classification}"
    assert isinstance(result.classification, Classification)
    json.dumps(result.to_dict(), allow_nan=False)


def judge_values(judge: Judge, baseline: Any, canary: Any) -> MetricResult:
    result = judge.judge(MetricSetPair.of("latency", baseline, canary))
    check_result(result)
    return result


# ---------------------------------------------------------------- coverage of the suite


@pytest.mark.parametrize("name", JUDGE_NAMES)
def test_registered_judge_has_params_factory(name: str) -> None:
    if name not in JUDGE_PARAMS:
        pytest.fail(
            f"judge {name!r} is registered but has no parameter factory in "
            f"tests/test_judges_common.py::JUDGE_PARAMS; add one so that the common "
            f"conformance suite covers it"
        )


def test_builtin_judges_are_registered() -> None:
    assert {"mann-whitney", "mean-inequality", "threshold"} <= set(JUDGE_NAMES)


def test_factories_name_registered_judges() -> None:
    stale = sorted(set(JUDGE_PARAMS) - set(JUDGE_NAMES))
    assert not stale, f"JUDGE_PARAMS names judges that are not registered: {stale}"


# ---------------------------------------------------------------- the judge interface


@pytest.mark.parametrize("name", JUDGE_NAMES)
def test_judge_is_named_and_versioned(registry: Registry, name: str) -> None:
    cls = registry.judge_class(name)
    assert issubclass(cls, Judge)
    assert cls.name == name
    judge = make_judge(registry, name)
    assert judge.full_name == f"{name}-v{cls.version}"
    result = judge_values(judge, sample(1, 60), sample(2, 60))
    assert result.judge == judge.full_name


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("direction", DIRECTIONS)
def test_parameters_are_keyword_only_and_stored_unchanged(
    registry: Registry, name: str, direction: Direction
) -> None:
    cls = registry.judge_class(name)
    params = params_for(name, direction)
    judge = cls(**params, direction=direction, critical=True, must_have_data=True)
    stored = judge.get_params()
    for key, value in params.items():
        assert stored[key] == value
    assert stored["direction"] == direction
    assert stored["critical"] is True
    assert stored["must_have_data"] is True
    with pytest.raises(TypeError):
        cls(direction)


@pytest.mark.parametrize("name", JUDGE_NAMES)
def test_result_names_the_metric_and_keeps_tags(registry: Registry, name: str) -> None:
    judge = make_judge(registry, name)
    pair = MetricSetPair.of("cpu", sample(3, 80), sample(4, 80), tags={"region": "eu"})
    result = judge.judge(pair)
    check_result(result)
    assert result.name == "cpu"
    assert dict(result.tags) == {"region": "eu"}
    assert result.label == "cpu{region=eu}"


# ---------------------------------------------------------------- classification


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("size", [50, 200])
def test_identical_data_passes(
    registry: Registry, name: str, direction: Direction, size: int
) -> None:
    baseline, canary = scenario_data("identical", size)
    result = judge_values(make_judge(registry, name, direction), baseline, canary)
    assert result.classification is Classification.PASS, result.reason
    assert result.critical is False


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("scenario", ["shift-up", "shift-down"])
@pytest.mark.parametrize(("size", "seed"), [(50, 11), (120, 12), (200, 13)])
def test_clear_shift_respects_direction(
    registry: Registry, name: str, direction: Direction, scenario: str, size: int, seed: int
) -> None:
    baseline, canary = scenario_data(scenario, size, seed)
    result = judge_values(make_judge(registry, name, direction), baseline, canary)
    expected = EXPECTED[(scenario, direction)]
    assert result.classification is expected, (
        f"{name} direction={direction.value} {scenario}: got "
        f"{result.classification.value} ({result.reason})"
    )
    assert result.critical is False  # the metric is not critical
    assert result.baseline.count == size
    assert result.canary.count == size


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("scenario", ["shift-up", "shift-down"])
def test_critical_metric_that_fails_is_flagged_critical(
    registry: Registry, name: str, scenario: str
) -> None:
    baseline, canary = scenario_data(scenario, 100)
    result = judge_values(make_judge(registry, name, critical=True), baseline, canary)
    expected = Classification.HIGH if scenario == "shift-up" else Classification.LOW
    assert result.classification is expected, result.reason
    assert result.critical is True
    assert result.critical_metric is True


@pytest.mark.parametrize("name", JUDGE_NAMES)
def test_critical_metric_that_passes_is_not_flagged(registry: Registry, name: str) -> None:
    baseline, canary = scenario_data("identical", 100)
    result = judge_values(make_judge(registry, name, critical=True), baseline, canary)
    assert result.classification is Classification.PASS
    assert result.critical is False
    assert result.critical_metric is True


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_outlier_removal_keeps_the_classification(
    registry: Registry, name: str, scenario: str
) -> None:
    baseline, canary = scenario_data(scenario, 150)
    judge = make_judge(registry, name, outliers=Outliers(OutlierStrategy.REMOVE, 3.0))
    result = judge_values(judge, baseline, canary)
    assert result.classification is EXPECTED[(scenario, Direction.EITHER)], result.reason


# ---------------------------------------------------------------- missing data


def _sides(side: str, size: int = 80) -> tuple[FloatArray, FloatArray]:
    data = sample(5, size)
    empty = np.empty(0)
    if side == "baseline":
        return empty, data
    if side == "canary":
        return data, empty
    return empty, empty.copy()


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_empty_side_is_nodata(registry: Registry, name: str, side: str) -> None:
    baseline, canary = _sides(side)
    result = judge_values(make_judge(registry, name), baseline, canary)
    assert result.classification is Classification.NODATA, result.reason
    assert result.critical is False
    empty_stats = SummaryStats(0.0, 0.0, 0.0, 0.0, 0)
    if side in ("baseline", "both"):
        assert result.baseline == empty_stats
    if side in ("canary", "both"):
        assert result.canary == empty_stats


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_critical_metric_without_data_is_critical_nodata(
    registry: Registry, name: str, side: str
) -> None:
    baseline, canary = _sides(side)
    result = judge_values(make_judge(registry, name, critical=True), baseline, canary)
    assert result.classification is Classification.NODATA, result.reason
    assert result.critical is True


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_must_have_data_fails_the_metric(registry: Registry, name: str, side: str) -> None:
    baseline, canary = _sides(side)
    result = judge_values(make_judge(registry, name, must_have_data=True), baseline, canary)
    assert result.classification is Classification.NODATA_FAIL_METRIC, result.reason
    assert result.critical is False


@pytest.mark.parametrize("name", JUDGE_NAMES)
def test_must_have_data_on_a_critical_metric_is_critical_nodata(
    registry: Registry, name: str
) -> None:
    baseline, canary = _sides("canary")
    judge = make_judge(registry, name, critical=True, must_have_data=True)
    result = judge_values(judge, baseline, canary)
    assert result.classification is Classification.NODATA, result.reason
    assert result.critical is True


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("critical", [False, True])
def test_replace_strategy_with_empty_side_passes(
    registry: Registry, name: str, side: str, critical: bool
) -> None:
    baseline, canary = _sides(side)
    judge = make_judge(
        registry, name, nan_strategy=NanStrategy.REPLACE, critical=critical, must_have_data=True
    )
    result = judge_values(judge, baseline, canary)
    assert result.classification is Classification.PASS, result.reason
    assert result.critical is False


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("side", SIDES)
def test_all_nan_side_is_nodata(registry: Registry, name: str, side: str) -> None:
    data = sample(6, 60)
    nans = np.full(40, math.nan)
    baseline = nans if side in ("baseline", "both") else data
    canary = nans if side in ("canary", "both") else data
    result = judge_values(make_judge(registry, name), baseline, canary)
    assert result.classification is Classification.NODATA, result.reason
    if side in ("baseline", "both"):
        assert result.baseline.count == 0
    if side in ("canary", "both"):
        assert result.canary.count == 0


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nans_are_removed(
    registry: Registry, name: str, direction: Direction, scenario: str
) -> None:
    baseline, canary = scenario_data(scenario, 120, seed=21)
    judge = make_judge(registry, name, direction)
    clean = judge_values(judge, baseline, canary)
    dirty_baseline, dirty_canary = sprinkle_nans(baseline, 1), sprinkle_nans(canary, 2)
    assert np.isnan(dirty_baseline).sum() > 0
    assert np.isnan(dirty_canary).sum() > 0
    dirty = judge_values(judge, dirty_baseline, dirty_canary)
    assert dirty.classification is clean.classification
    assert dirty.classification is EXPECTED[(scenario, direction)], dirty.reason
    assert dirty.baseline.count == baseline.size
    assert dirty.canary.count == canary.size
    assert dirty.baseline == clean.baseline
    assert dirty.canary == clean.canary


@pytest.mark.parametrize("name", JUDGE_NAMES)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_judging_is_deterministic(registry: Registry, name: str, scenario: str) -> None:
    baseline, canary = scenario_data(scenario, 150, seed=31)
    judge = make_judge(registry, name)
    pair = MetricSetPair.of("latency", baseline, canary)
    first, second = judge.judge(pair), judge.judge(pair)
    check_result(first)
    assert first.to_dict() == second.to_dict()
    fresh = make_judge(Registry().load_entry_points(), name).judge(
        MetricSetPair.of("latency", baseline.copy(), canary.copy())
    )
    assert fresh.to_dict() == first.to_dict()


# ---------------------------------------------------------------- registry


class _CanaryMaxJudge(Judge):
    """A test plugin: High when the canary's maximum exceeds the baseline's."""

    name = "canary-max"
    version = "0.1"

    def compare(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
        if canary_stats.max > baseline_stats.max and self.direction.allows_high():
            return self.result(
                pair, Classification.HIGH, "canary max above baseline max",
                baseline_stats, canary_stats, critical=self.critical,
            )
        return self.result(
            pair, Classification.PASS, "canary max within", baseline_stats, canary_stats
        )


class _OtherCanaryMaxJudge(_CanaryMaxJudge):
    """A different class claiming the same plugin name."""


class _ImpostorThreshold(_CanaryMaxJudge):
    name = "threshold"


def test_registry_starts_empty() -> None:
    registry = Registry()
    assert registry.judge_names() == []
    with pytest.raises(PluginError, match="unknown judge 'threshold'"):
        registry.judge_class("threshold")


def test_duplicate_registration_raises() -> None:
    registry = Registry()
    registry.register_judge(_CanaryMaxJudge)
    with pytest.raises(PluginError, match="duplicate judge 'canary-max'"):
        registry.register_judge(_OtherCanaryMaxJudge)
    assert registry.judge_class("canary-max") is _CanaryMaxJudge


def test_plugin_cannot_shadow_a_builtin(registry: Registry) -> None:
    builtin = registry.judge_class("threshold")
    with pytest.raises(PluginError, match="duplicate judge 'threshold'"):
        registry.register_judge(_ImpostorThreshold)
    assert registry.judge_class("threshold") is builtin


def test_replace_allows_an_explicit_override() -> None:
    registry = Registry()
    registry.register_judge(_CanaryMaxJudge)
    registry.register_judge(_OtherCanaryMaxJudge, replace=True)
    assert registry.judge_class("canary-max") is _OtherCanaryMaxJudge


def test_registering_the_same_class_twice_is_fine(registry: Registry) -> None:
    registry.register_judge(_CanaryMaxJudge)
    registry.register_judge(_CanaryMaxJudge)
    builtin = registry.judge_class("threshold")
    registry.register_judge(builtin)
    registry.load_entry_points()
    assert registry.judge_names().count("canary-max") == 1
    assert registry.judge_class("threshold") is builtin
    assert sorted(set(registry.judge_names())) == registry.judge_names()


def test_register_under_another_name() -> None:
    registry = Registry()
    registry.register_judge(_CanaryMaxJudge, name="max-check")
    assert registry.judge_names() == ["max-check"]


def test_plugin_without_a_name_is_rejected() -> None:
    class Nameless:
        pass

    with pytest.raises(PluginError, match="no plugin name"):
        Registry().register_judge(Nameless)


def test_unknown_name_suggests_the_near_match(registry: Registry) -> None:
    with pytest.raises(PluginError) as info:
        registry.judge_class("man-whitney")
    message = str(info.value)
    assert "unknown judge 'man-whitney'" in message
    assert "did you mean mann-whitney" in message


def test_unknown_name_without_near_match_lists_the_known(registry: Registry) -> None:
    with pytest.raises(PluginError) as info:
        registry.judge_class("zzzzzz")
    message = str(info.value)
    assert "did you mean" not in message
    for name in ("mann-whitney", "mean-inequality", "threshold"):
        assert name in message


def _plugin_config(registry: Registry) -> kayenta_py.CanaryConfig:
    return kayenta_py.load_config(
        {"name": "t", "metrics": [{"name": "latency", "judge": {"type": "canary-max"}}]},
        registry=registry,
    )


@pytest.mark.parametrize(
    ("canary", "verdict", "classification"),
    [
        ([1.0, 2.0, 5.0], "fail", Classification.HIGH),
        ([1.0, 2.0, 3.0], "pass", Classification.PASS),
    ],
)
def test_registered_plugin_is_usable_through_the_pipeline(
    canary: list[float], verdict: str, classification: Classification
) -> None:
    registry = Registry()
    registry.register_judge(_CanaryMaxJudge)
    config = _plugin_config(registry)
    assert config.metric("latency").judge_type == "canary-max"
    result = kayenta_py.judge(
        config, {"latency": [1.0, 2.0, 3.0]}, {"latency": canary}, registry=registry
    )
    assert result.verdict == verdict
    metric = result.metric("latency")
    assert metric.classification is classification
    assert metric.judge == "canary-max-v0.1"
    json.dumps(result.to_dict(), allow_nan=False)
    assert "canary-max" not in kayenta_py.default_registry().judge_names()


def test_config_naming_an_unregistered_plugin_is_an_error() -> None:
    with pytest.raises(kayenta_py.ConfigError) as info:
        _plugin_config(Registry().load_entry_points())
    message = str(info.value)
    assert "metrics[0].judge.type" in message
    assert "unknown judge 'canary-max'" in message


def test_plugin_without_params_model_rejects_judge_parameters() -> None:
    registry = Registry()
    registry.register_judge(_CanaryMaxJudge)
    with pytest.raises(kayenta_py.ConfigError, match=r"metrics\[0\]\.judge\.upper"):
        kayenta_py.load_config(
            {"metrics": [{"name": "m", "judge": {"type": "canary-max", "upper": 1}}]},
            registry=registry,
        )


@pytest.mark.parametrize("name", sorted(kayenta_py.default_registry().judge_names()))
def test_a_judges_parameters_are_declared_once_in_its_params_model(name: str) -> None:
    """Defaults and checks come from ``params_model`` alone (kayenta_py/engine/judge_params.py)."""
    from kayenta_py.engine.judge_params import JudgeParameterError

    cls = kayenta_py.default_registry().judge_class(name)
    model = cls.params_model
    if model is None:
        with pytest.raises(JudgeParameterError, match="takes no parameter"):
            cls(anything=1)
        return
    assert "__init__" not in vars(cls), f"{name}: __init__ restates the parameters; use _setup"
    required = {k for k, f in model.model_fields.items() if f.is_required()}
    assert not required
    if name == "threshold":  # needs a bound to be built
        judge = cls(upper=1.0, direction="increase")
    else:
        judge = cls()
        defaults = model()
        for field in model.model_fields:
            value = getattr(judge, field)
            expected = getattr(defaults, field)
            assert value == expected or (field == "min_effective" and expected is None), (name, field)
    with pytest.raises(JudgeParameterError, match=r"no_such_parameter"):
        cls(no_such_parameter=1, **({"upper": 1.0, "direction": "increase"} if name == "threshold" else {}))
