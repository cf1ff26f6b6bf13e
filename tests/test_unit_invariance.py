"""The ``mann-whitney`` judge decides the same in every unit; effect-size defaults; non-positive data.

1. Unit invariance: multiplying baseline and canary by ``10**k`` (k in -6..6)
   never changes the classification, and multiplies the CI and estimate by
   ``10**k`` up to rounding. Property tests over tied, skewed, small, large,
   negative and error-ratio-like data, shifts placed right at the decision
   boundary, and a seeded simulation of the reviewer's case (100 error-ratio
   regressions, same classification at scale 1 and 1e-4).
2. Effect-size thresholds left out default to the measure's neutral value
   (meanRatio 1.0, cles 0.5); cles thresholds outside [0, 1] are refused.
3. meanRatio on data with negative values falls back to CLES (neutral 0.5).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from judges import EffectSizeParams, MannWhitneyJudge, MannWhitneyParams, RankSumStatistic, wilcoxon_interval
from judges.mann_whitney_params import EffectThresholds
from kayenta_py import (
    Classification,
    ConfigError,
    Direction,
    FloatArray,
    MetricResult,
    MetricSetPair,
    Outliers,
    OutlierStrategy,
    Registry,
    iqr_outliers,
    load_config,
    mean_ratio,
)
from kayenta_py.engine.judge_params import JudgeParameterError

EXPONENTS = tuple(range(-6, 7))
RELATIVE_ERROR = 1e-12  # of the bracket's magnitude: the CI is exact up to rounding (~1e-15)
PROPERTY = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _pair(baseline: FloatArray, canary: FloatArray) -> MetricSetPair:
    return MetricSetPair.of("metric", baseline, canary)


def assert_scale_free(judge: MannWhitneyJudge, baseline: Any, canary: Any) -> MetricResult:
    """Judge the data at scale 1 and at every 10**k; every result must agree with the first."""
    b = np.asarray(baseline, dtype=np.float64)
    c = np.asarray(canary, dtype=np.float64)
    reference = judge.judge(_pair(b, c))
    assert reference.classification is not Classification.ERROR, reference.reason
    magnitude = max(abs(float(c.min() - b.max())), abs(float(c.max() - b.min()))) if b.size and c.size else 0
    for k in EXPONENTS:
        factor = 10.0**k
        scaled = judge.judge(_pair(b * factor, c * factor))
        where = f"at scale 1e{k}: {scaled.reason} | at scale 1: {reference.reason}"
        assert scaled.classification is reference.classification, where
        assert scaled.critical is reference.critical, where
        assert (scaled.ci is None) == (reference.ci is None), where
        if reference.ci is not None and scaled.ci is not None:
            assert scaled.estimate is not None and reference.estimate is not None
            pairs = zip((*scaled.ci, scaled.estimate), (*reference.ci, reference.estimate), strict=True)
            for got, want in pairs:
                assert abs(got / factor - want) <= RELATIVE_ERROR * magnitude, where
        if reference.effect_size is not None and not math.isnan(reference.effect_size):
            assert scaled.effect_size == pytest.approx(reference.effect_size, rel=1e-12), where
    return reference


# ---------------------------------------------------------------- data generators


def _error_ratios(rng: np.random.Generator, n: int, rate: float, traffic: float) -> FloatArray:
    """Errors / requests per interval: mostly zeros at low traffic or low rates."""
    requests = np.maximum(rng.poisson(traffic, n), 1)
    return rng.poisson(rate * requests) / requests


def _family(name: str, rng: np.random.Generator, n: int, shift: float) -> FloatArray:
    """Draw ``n`` values of a named family, shifted by ``shift`` of its spread."""
    if name == "lognormal":
        return rng.lognormal(shift, 1.0, n)
    if name == "exponential":
        return rng.exponential(math.exp(shift), n)
    if name == "pareto":
        return (rng.pareto(1.5, n) + 1.0) * 0.05 * math.exp(shift)
    if name == "normal-negative":
        return rng.normal(-250.0 + 40.0 * shift, 40.0, n)
    if name == "mixed-sign-rounded":
        return np.round(rng.normal(0.3 * shift, 1.0, n), 1)
    if name == "rounded-latency":
        return np.round(rng.lognormal(3.0 + shift, 0.4, n), 0)
    if name == "poisson":
        return rng.poisson(2.0 * math.exp(0.7 * shift), n).astype(np.float64)
    if name == "error-ratio":
        return _error_ratios(rng, n, 0.003 * math.exp(shift), 300.0)
    if name == "zero-inflated":
        values = rng.exponential(math.exp(shift), n)
        values[rng.random(n) < 0.6] = 0.0
        return values
    raise AssertionError(f"unknown family {name}")


FAMILIES = (
    "lognormal",
    "exponential",
    "pareto",
    "normal-negative",
    "mixed-sign-rounded",
    "rounded-latency",
    "poisson",
    "error-ratio",
    "zero-inflated",
)

judges_ = st.builds(
    lambda tolerance, confidence, direction, estimate, measure, critical, outliers: MannWhitneyJudge(
        tolerance=tolerance,
        confidence=confidence,
        direction=direction,
        estimate=estimate,
        effect_size=measure,
        critical=critical,
        outliers=outliers,
    ),
    tolerance=st.sampled_from([0.0, 0.1, 0.25, 0.5, 1.0]),
    confidence=st.sampled_from([0.9, 0.95, 0.98, 0.99]),
    direction=st.sampled_from(list(Direction)),
    estimate=st.sampled_from(["r", "kayenta"]),
    measure=st.sampled_from(
        [
            {},
            {"measure": "cles"},
            {"measure": "meanRatio", "allowed_increase": 1.2, "allowed_decrease": 0.8},
            {"measure": "cles", "allowed_increase": 0.6, "critical_increase": 0.7},
        ]
    ),
    critical=st.booleans(),
    outliers=st.sampled_from(
        [None, Outliers(OutlierStrategy.REMOVE, 3.0), Outliers(OutlierStrategy.REMOVE, 1.5)]
    ),
)
sizes = st.one_of(st.integers(1, 12), st.integers(30, 400))


# ---------------------------------------------------------------- 1. unit invariance


@PROPERTY
@given(
    judge=judges_,
    family=st.sampled_from(FAMILIES),
    seed=st.integers(0, 2**32 - 1),
    n_baseline=sizes,
    n_canary=sizes,
    shift=st.one_of(st.just(0.0), st.floats(-1.5, 1.5)),
)
def test_generated_data_classify_the_same_in_every_unit(
    judge: MannWhitneyJudge, family: str, seed: int, n_baseline: int, n_canary: int, shift: float
) -> None:
    rng = np.random.default_rng(seed)
    baseline = _family(family, rng, n_baseline, 0.0)
    canary = _family(family, rng, n_canary, shift)
    assert_scale_free(judge, baseline, canary)


small_integers = st.lists(st.integers(0, 6), min_size=1, max_size=12)


@PROPERTY
@given(
    judge=judges_,
    baseline=small_integers,
    canary=small_integers,
    offset=st.integers(-3, 6),
    step=st.sampled_from([1.0, 0.5, 0.1, 0.25, 3.0]),
)
def test_tied_small_samples_classify_the_same_in_every_unit(
    judge: MannWhitneyJudge, baseline: list[int], canary: list[int], offset: int, step: float
) -> None:
    # Integer lattices: the statistic is a step function with wide plateaus, and the
    # root finder's iterates can land exactly on a jump (a tie after the shift).
    b = np.asarray(baseline, dtype=np.float64) * step
    c = (np.asarray(canary, dtype=np.float64) + offset) * step
    assert_scale_free(judge, b, c)


@PROPERTY
@given(
    judge=judges_,
    n=st.integers(10, 300),
    rate=st.floats(1e-4, 2e-2),
    traffic=st.sampled_from([30.0, 100.0, 300.0, 2000.0]),
    ratio=st.floats(0.3, 6.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_error_ratios_classify_the_same_in_every_unit(
    judge: MannWhitneyJudge, n: int, rate: float, traffic: float, ratio: float, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    baseline = _error_ratios(rng, n, rate, traffic)
    canary = _error_ratios(rng, n, rate * ratio, traffic)
    assert_scale_free(judge, baseline, canary)


def _boundary_shifts(
    judge: MannWhitneyJudge, baseline: FloatArray, canary: FloatArray
) -> tuple[float, float] | None:
    """Bisect the additive canary shift where the scale-1 classification changes."""
    spread = float(np.ptp(np.concatenate([baseline, canary]))) or 1.0

    def classify(shift: float) -> Classification:
        return judge.judge(_pair(baseline, canary + shift)).classification

    low, high = -3.0 * spread, 3.0 * spread
    if classify(low) is classify(high):
        return None
    low_class = classify(low)
    # Down to 1e-9 of the spread: about a hundred times the decision margin (1e-10),
    # a million times the rounding that differs between units.
    while high - low > 1e-9 * spread:
        middle = 0.5 * (low + high)
        if classify(middle) is low_class:
            low = middle
        else:
            high = middle
    return low, high


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    family=st.sampled_from(["lognormal", "rounded-latency", "poisson", "error-ratio", "mixed-sign-rounded"]),
    seed=st.integers(0, 2**32 - 1),
    n=st.sampled_from([4, 9, 40, 150]),
    tolerance=st.sampled_from([0.0, 0.25, 0.5]),
)
def test_shifts_at_the_decision_boundary_classify_the_same_in_every_unit(
    family: str, seed: int, n: int, tolerance: float
) -> None:
    rng = np.random.default_rng(seed)
    baseline = _family(family, rng, n, 0.0)
    canary = _family(family, rng, n, 0.0)
    judge = MannWhitneyJudge(tolerance=tolerance, direction=Direction.EITHER)
    shifts = _boundary_shifts(judge, baseline, canary)
    if shifts is None:
        return
    below, above = (assert_scale_free(judge, baseline, canary + s) for s in shifts)
    assert below.classification is not above.classification


def _reviewer_case(seed: int = 20240611, count: int = 100) -> list[tuple[FloatArray, FloatArray]]:
    """``count`` error-ratio regressions: the canary's error rate is three times the baseline's."""
    rng = np.random.default_rng(seed)
    cases = []
    for _ in range(count):
        rate = float(rng.uniform(5e-4, 5e-3))
        cases.append((_error_ratios(rng, 60, rate, 300.0), _error_ratios(rng, 60, 3.0 * rate, 300.0)))
    return cases


def test_reviewer_case_error_ratio_regressions_at_scale_1e_minus_4() -> None:
    judge = MannWhitneyJudge(direction=Direction.INCREASE, critical=True)
    cases = _reviewer_case()
    natural = [judge.judge(_pair(b, c)).classification for b, c in cases]
    scaled = [judge.judge(_pair(b * 1e-4, c * 1e-4)).classification for b, c in cases]
    changed = sum(a is not b for a, b in zip(natural, scaled, strict=True))
    assert changed == 0
    assert natural.count(Classification.HIGH) >= 60  # most are caught as regressions

    # The same data under R's absolute tolerance: the CI at 1e-4 is not the scaled CI,
    # and the High/Pass rule (CI lower end above 0.25 |estimate|) changes in most cases.
    def r_rule_high(baseline: FloatArray, canary: FloatArray) -> bool:
        interval = wilcoxon_interval(canary, baseline, 0.98, root_tolerance="r")
        ratio = mean_ratio(canary, baseline)
        return interval.lower > 0.25 * abs(interval.estimate) and (math.isnan(ratio) or ratio >= 1.0)

    r_changed = sum(r_rule_high(b, c) != r_rule_high(b * 1e-4, c * 1e-4) for b, c in cases)
    assert r_changed >= 50


@pytest.mark.parametrize("k", EXPONENTS)
def test_a_shift_onto_a_tie_is_a_tie_in_every_unit(k: int) -> None:
    # At the bracket end max(x) - min(y), 3 - (3 - 1) ties 1 exactly; after scaling by
    # 10**k the subtraction may round (R's float semantics then see no tie). The
    # scale-free statistic finds the tie within 1e-12 of the data's magnitude.
    factor = 10.0**k
    x, y = np.array([0.0, 3.0]) * factor, np.array([1.0, 2.0]) * factor
    mu = float(x.max() - y.min())
    reference = RankSumStatistic([0.0, 3.0], [1.0, 2.0], tie_tolerance=3e-12)(2.0)
    assert RankSumStatistic(x, y, tie_tolerance=3e-12 * factor)(mu) == reference


@pytest.mark.parametrize("k", EXPONENTS)
def test_a_count_on_an_outlier_fence_is_kept_in_every_unit(k: int) -> None:
    # Q1 = 2, Q3 = 5, upper fence Q3 + 3 IQR = 14 (P99 is lower): 14 lies on it, so it
    # stays; after scaling, the fence rounds differently but 14 * 10**k still stays.
    data = np.array([0, 1, *[2] * 7, *[3] * 4, *[4] * 7, *[5] * 4, *[6] * 4, 7, 14], dtype=np.float64)
    assert not iqr_outliers(data, 3.0, reduce_sensitivity=True).any()
    assert not iqr_outliers(data * 10.0**k, 3.0, reduce_sensitivity=True).any()


@pytest.mark.parametrize("estimate", ["r", "kayenta"])
def test_scale_free_interval_is_scaled_exactly(estimate: Literal["r", "kayenta"]) -> None:
    rng = np.random.default_rng(3)
    x, y = np.round(rng.lognormal(1.2, 0.5, 80), 1), np.round(rng.lognormal(1.0, 0.5, 70), 1)
    reference = wilcoxon_interval(x, y, 0.95, estimate=estimate, root_tolerance="relative")
    width = float(np.ptp(x) + np.ptp(y))
    for k in EXPONENTS:
        factor = 10.0**k
        got = wilcoxon_interval(x * factor, y * factor, 0.95, estimate=estimate, root_tolerance="relative")
        for a, b in (
            (got.lower, reference.lower),
            (got.upper, reference.upper),
            (got.estimate, reference.estimate),
        ):
            assert abs(a / factor - b) <= 1e-13 * width


def test_r_rule_is_kept_for_parity_and_differs_at_small_scale() -> None:
    # R's absolute tolerance: at 1e-4 the bracket is narrower than the tolerance and
    # zeroin stops at once. The relative rule is unaffected.
    rng = np.random.default_rng(11)
    y = _error_ratios(rng, 60, 0.002, 300.0)
    x = _error_ratios(rng, 60, 0.006, 300.0)
    natural = wilcoxon_interval(x, y, root_tolerance="r")
    tiny = wilcoxon_interval(x * 1e-4, y * 1e-4, root_tolerance="r")
    assert abs(tiny.lower / 1e-4 - natural.lower) > 1e-3 * float(np.ptp(x) + np.ptp(y))
    relative = wilcoxon_interval(x, y, root_tolerance="relative")
    assert relative.lower == pytest.approx(natural.lower, abs=1e-4)
    with pytest.raises(ValueError, match="root_tolerance"):
        wilcoxon_interval(x, y, root_tolerance="absolute")  # type: ignore[arg-type]


# ---------------------------------------------------------------- 2. effect-size defaults


def _latency(seed: int, factor: float = 1.0, n: int = 120) -> FloatArray:
    return np.random.default_rng(seed).lognormal(math.log(120.0), 0.3, n) * factor


def test_thresholds_left_out_are_the_measures_neutral_value() -> None:
    assert EffectSizeParams().thresholds() == EffectThresholds(1.0, 1.0, 1.0, 1.0)
    assert EffectSizeParams(measure="cles").thresholds() == EffectThresholds(0.5, 0.5, 0.5, 0.5)
    given_ = EffectSizeParams(measure="cles", allowed_increase=0.7, critical_decrease=0.1)
    assert given_.thresholds() == EffectThresholds(0.7, 0.5, 0.5, 0.1)
    assert EffectSizeParams(allowed_increase=1.5).thresholds() == EffectThresholds(1.5, 1.0, 1.0, 1.0)


def test_cles_with_default_thresholds_flags_a_doubled_latency() -> None:
    baseline, doubled, halved = _latency(1), _latency(2, 2.0), _latency(3, 0.5)
    judge = MannWhitneyJudge(direction=Direction.EITHER, effect_size={"measure": "cles"}, critical=True)
    high = judge.judge(_pair(baseline, doubled))
    assert high.classification is Classification.HIGH, high.reason
    assert high.effect_measure == "cles" and "cles" in high.reason and ">= 0.5" in high.reason
    assert high.critical  # critical_increase defaults to 0.5 too
    low = judge.judge(_pair(baseline, halved))
    assert low.classification is Classification.LOW, low.reason
    assert judge.judge(_pair(baseline, _latency(4))).classification is Classification.PASS


def test_explicit_cles_thresholds_are_used_as_given() -> None:
    baseline, doubled = _latency(1), _latency(2, 2.0)
    # Kayenta's own defaults (1.0 for every measure), passed explicitly as Kayenta configs do:
    # CLES never reaches 1.0 unless every canary value is above every baseline value.
    kayenta = {"measure": "cles", **dict.fromkeys(EffectThresholds.__dataclass_fields__, 1.0)}
    overlap = np.concatenate([doubled, baseline[:5]])
    result = MannWhitneyJudge(effect_size=kayenta).judge(_pair(baseline, overlap))
    assert result.classification is Classification.PASS, result.reason
    strict = MannWhitneyJudge(effect_size={"measure": "cles", "allowed_increase": 0.99})
    assert strict.judge(_pair(baseline, overlap)).classification is Classification.PASS
    lenient = MannWhitneyJudge(effect_size={"measure": "cles", "allowed_increase": 0.6})
    assert lenient.judge(_pair(baseline, overlap)).classification is Classification.HIGH


@pytest.mark.parametrize(
    "name", ["allowed_increase", "allowed_decrease", "critical_increase", "critical_decrease"]
)
@pytest.mark.parametrize("value", [1.2, 5.0])
def test_cles_threshold_outside_0_1_is_refused_naming_it(name: str, value: float) -> None:
    with pytest.raises(ValidationError, match=rf"{name} {value:g} is outside \[0, 1\]"):
        EffectSizeParams.model_validate({"measure": "cles", name: value})
    with pytest.raises(JudgeParameterError, match=rf"^effect_size\.{name}: {name} {value:g} is outside"):
        MannWhitneyJudge(effect_size={"measure": "cles", name: value})
    EffectSizeParams.model_validate({"measure": "meanRatio", name: value})  # ratios may exceed 1


def test_config_with_an_out_of_range_cles_threshold_names_its_path() -> None:
    raw = {
        "name": "checkout",
        "metrics": [
            {
                "name": "p99",
                "kind": "latency",
                "judge": {
                    "type": "mann-whitney",
                    "effect_size": {"measure": "cles", "allowed_increase": 1.1},
                },
            }
        ],
    }
    with pytest.raises(ConfigError) as caught:
        load_config(raw, registry=Registry().load_entry_points())
    messages = [str(issue) for issue in caught.value.issues]
    assert len(messages) == 1
    assert messages[0].startswith("metrics[0].judge.effect_size.allowed_increase:")
    assert "outside [0, 1]" in messages[0]


def test_dumped_params_keep_the_default_per_measure() -> None:
    # Configs store the validated parameters; switching the measure later (backtest
    # --set effect_size.measure=cles) must still give CLES's neutral thresholds.
    dumped = MannWhitneyParams.model_validate({"effect_size": {"measure": "meanRatio"}}).model_dump()
    assert dumped["effect_size"]["allowed_increase"] is None
    switched = MannWhitneyParams.model_validate(
        {**dumped, "effect_size": {**dumped["effect_size"], "measure": "cles"}}
    )
    assert switched.effect_size.thresholds() == EffectThresholds(0.5, 0.5, 0.5, 0.5)


# ---------------------------------------------------------------- 3. meanRatio on negative data


def _negative(seed: int, centre: float, n: int = 60) -> FloatArray:
    return np.random.default_rng(seed).normal(centre, 1.0, n)


@pytest.mark.parametrize(
    "effect_size", [{}, {"measure": "meanRatio", "allowed_increase": 1.2, "allowed_decrease": 0.8}]
)
def test_negative_increase_is_high_with_cles(effect_size: dict[str, Any]) -> None:
    baseline, canary = _negative(1, -10.0), _negative(2, -5.0)
    assert mean_ratio(canary, baseline) < 1.0  # why meanRatio could never say High here
    judge = MannWhitneyJudge(direction=Direction.INCREASE, effect_size=effect_size)
    result = judge.judge(_pair(baseline, canary))
    assert result.classification is Classification.HIGH, result.reason
    assert result.effect_measure == "cles"
    assert result.effect_size is not None and result.effect_size > 0.99
    assert result.details["effect_size_fallback"] == "cles"
    assert "mean ratio undefined for non-positive data; effect size is CLES" in result.reason
    assert result.mean_ratio == pytest.approx(
        float(np.mean(canary) / np.mean(baseline))
    )  # Kayenta's deviation


def test_negative_decrease_is_low_and_identical_negative_data_pass() -> None:
    baseline = _negative(1, -10.0)
    judge = MannWhitneyJudge(direction=Direction.EITHER, critical=True)
    low = judge.judge(_pair(baseline, _negative(3, -15.0)))
    assert low.classification is Classification.LOW, low.reason
    assert low.critical and low.details["effect_size_fallback"] == "cles"
    same = judge.judge(_pair(baseline, baseline.copy()))
    assert same.classification is Classification.PASS
    noise = judge.judge(_pair(baseline, _negative(4, -10.0)))
    assert noise.classification is Classification.PASS, noise.reason
    assert "effect size is CLES" in noise.reason


def test_one_negative_value_is_enough_and_constant_negative_samples_work() -> None:
    judge = MannWhitneyJudge(direction=Direction.INCREASE)
    mixed = judge.judge(_pair(np.r_[_latency(1), -1.0], _latency(2, 2.0)))
    assert mixed.classification is Classification.HIGH and mixed.effect_measure == "cles"
    constant = judge.judge(_pair(np.full(10, -10.0), np.full(10, -5.0)))
    assert constant.classification is Classification.HIGH, constant.reason
    assert constant.details["effect_size_fallback"] == "cles" and constant.details["constant_samples"]


def test_zero_mean_on_non_negative_data_keeps_kayentas_rule() -> None:
    # Kayenta's zero_mean cases: the mean ratio is NaN and the CI alone decides.
    judge = MannWhitneyJudge(effect_size={"allowed_increase": 1.2, "allowed_decrease": 0.8})
    result = judge.judge(_pair(np.zeros(5), np.array([54.9, 54.5, 55.1, 55.6, 57.4])))
    assert result.classification is Classification.HIGH
    assert result.effect_measure == "meanRatio" and math.isnan(result.mean_ratio)
    assert "effect_size_fallback" not in result.details
    positive = MannWhitneyJudge().judge(_pair(_latency(1), _latency(2, 2.0)))
    assert positive.effect_measure == "meanRatio" and "effect_size_fallback" not in positive.details


def test_cles_configured_on_negative_data_is_no_fallback() -> None:
    judge = MannWhitneyJudge(effect_size={"measure": "cles"})
    result = judge.judge(_pair(_negative(1, -10.0), _negative(2, -5.0)))
    assert result.classification is Classification.HIGH
    assert "effect_size_fallback" not in result.details and "undefined" not in result.reason
