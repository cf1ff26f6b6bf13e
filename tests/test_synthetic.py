"""The synthetic traffic model (kayenta_py.synthetic): deterministic, effects of the right size and way.

The demo source, the backtest's labelled canaries, the example CSVs and notebook 03 draw from this
one model; these tests pin its statistics: the same seed gives the same traffic, an effect moves
the canary's metric by its factor on average (and nothing else), error counts are overdispersed
(gamma-Poisson: variance above the mean, near ``mu + mu^2/k``), counts are non-negative integers,
and latency percentiles and histograms agree with the lognormal they come from.
"""

from __future__ import annotations

import math
from dataclasses import fields

import numpy as np
import pytest

from kayenta_py import plugin
from kayenta_py.model.errors import FieldError
from kayenta_py.synthetic import NO_EFFECT, Z99, Effects, Traffic, TrafficModel, ar1, traffic_cycle

MODEL = TrafficModel()
STEPS = 4000


def traffic(
    seed: int, effects: Effects = NO_EFFECT, model: TrafficModel = MODEL, steps: int = STEPS
) -> Traffic:
    return model.simulate(np.random.default_rng(seed), np.ones(steps), effects)


def arrays(t: Traffic) -> list[np.ndarray]:
    return [getattr(t, f.name) for f in fields(t)]


# ---------------------------------------------------------------- determinism


def test_the_same_seed_gives_the_same_traffic_and_another_seed_other_traffic() -> None:
    load = traffic_cycle(60.0 * np.arange(120), period=7200.0, phase=0.3)
    shared = ar1(np.random.default_rng(1), 120, 0.05, 0.6)
    model = TrafficModel(phi=0.6)
    first = model.pair(np.random.default_rng(7), load, Effects(errors=2.0), shared=shared)
    again = model.pair(np.random.default_rng(7), load, Effects(errors=2.0), shared=shared)
    other = model.pair(np.random.default_rng(8), load, Effects(errors=2.0), shared=shared)
    for a, b, c in zip(first, again, other, strict=True):
        for x, y, z in zip(arrays(a), arrays(b), arrays(c), strict=True):
            assert np.array_equal(x, y)
            assert not np.array_equal(x, z)


def test_an_error_multiplier_changes_only_the_errors_of_an_equal_generator() -> None:
    """The errors are drawn last: two arms on equal generators share every other draw (the demo)."""
    healthy, regressed = traffic(3, steps=50), traffic(3, Effects(errors=4.0), steps=50)
    for name in ("requests", "p50", "p99", "saturation", "orders"):
        assert np.array_equal(getattr(healthy, name), getattr(regressed, name)), name
    assert regressed.errors.sum() > 3 * healthy.errors.sum()


# ---------------------------------------------------------------- effects


@pytest.mark.parametrize(
    ("effects", "metric", "factor"),
    [
        (Effects(errors=3.0), "error_ratio", 3.0),
        (Effects(errors=0.5), "errors", 0.5),
        (Effects(p50=1.3), "p50", 1.3),
        (Effects(p99=1.4), "p99", 1.4),
        (Effects(saturation=1.25), "saturation", 1.25),
        (Effects(orders=0.9), "orders", 0.9),
    ],
)
def test_an_effect_moves_the_canary_its_way_by_its_size_on_average(
    effects: Effects, metric: str, factor: float
) -> None:
    baseline, canary = MODEL.pair(np.random.default_rng(11), np.ones(STEPS), effects)
    ratio = float(np.mean(getattr(canary, metric)) / np.mean(getattr(baseline, metric)))
    assert ratio == pytest.approx(factor, rel=0.03)
    untouched = {"error_ratio", "p50", "p99", "saturation", "orders"} - {metric, "errors", "error_ratio"}
    if metric == "errors":
        untouched.discard("error_ratio")
    for other in untouched:
        other_ratio = float(np.mean(getattr(canary, other)) / np.mean(getattr(baseline, other)))
        assert other_ratio == pytest.approx(1.0, rel=0.03), other


def test_effects_combine_by_multiplying_and_must_be_positive() -> None:
    combined = Effects(errors=2.0, p99=1.5) * Effects(errors=1.5, saturation=1.2)
    assert combined == Effects(errors=3.0, p50=1.0, p99=1.5, saturation=1.2, orders=1.0)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(FieldError, match=r"effects\.p99"):
            Effects(p99=bad)


def test_the_shared_burst_and_the_slowdown_scale_what_they_should() -> None:
    ones = np.ones(STEPS)
    plain = MODEL.simulate(np.random.default_rng(5), ones)
    burst = MODEL.simulate(np.random.default_rng(5), ones, shared=np.full(STEPS, math.log(1.2)))
    slow = MODEL.simulate(np.random.default_rng(5), ones, slowdown=np.full(STEPS, 1.5))
    assert np.allclose(burst.p99 / plain.p99, 1.2) and np.allclose(slow.p50 / plain.p50, 1.5)
    assert np.mean(burst.error_ratio) / np.mean(plain.error_ratio) == pytest.approx(1.2, rel=0.05)
    assert np.array_equal(slow.errors, plain.errors) and np.array_equal(burst.saturation, plain.saturation)


# ---------------------------------------------------------------- counts


def test_error_counts_are_overdispersed_as_a_gamma_poisson_mixture() -> None:
    t = traffic(21, steps=20_000)
    mean, variance = float(np.mean(t.errors)), float(np.var(t.errors))
    mu = MODEL.requests * MODEL.error_rate
    assert mean == pytest.approx(mu, rel=0.03)
    assert variance > 1.5 * mean  # a Poisson's variance would equal its mean
    assert variance == pytest.approx(mu + mu**2 / MODEL.error_shape, rel=0.1)


def test_smaller_gamma_shape_is_more_overdispersed() -> None:
    wide = traffic(2, model=TrafficModel(error_shape=2.0), steps=20_000).errors
    narrow = traffic(2, model=TrafficModel(error_shape=50.0), steps=20_000).errors
    assert np.var(wide) / np.mean(wide) > 2 * np.var(narrow) / np.mean(narrow)


def test_counts_are_non_negative_integers_and_errors_never_exceed_requests() -> None:
    heavy = TrafficModel(requests=5.0, error_rate=0.6, orders=0.5, error_shape=0.5)
    low = traffic_cycle(np.arange(3000.0), period=500.0, amplitude=0.9)
    for t in (traffic(4), heavy.simulate(np.random.default_rng(4), low, Effects(errors=3.0))):
        for counts in (t.requests, t.errors, t.orders):
            assert np.all(counts >= 0) and np.array_equal(counts, np.round(counts))
        assert np.all(t.errors <= t.requests)
        assert np.all((t.error_ratio >= 0) & (t.error_ratio <= 1))
        assert np.all((t.saturation > 0) & (t.saturation <= 1))


def test_requests_follow_the_traffic_cycle() -> None:
    seconds = 60.0 * np.arange(24 * 60)
    load = traffic_cycle(seconds)  # daily
    t = MODEL.simulate(np.random.default_rng(9), load)
    assert np.corrcoef(t.requests, load)[0, 1] > 0.99
    poisson_sd = 1 / math.sqrt(MODEL.requests * 0.85)  # relative sd of the fewest requests
    assert np.all(np.abs(t.requests / (MODEL.requests * load) - 1) < 5 * poisson_sd)
    assert float(np.mean(t.requests)) == pytest.approx(MODEL.requests, rel=0.01)


# ---------------------------------------------------------------- latency


def test_latency_percentiles_are_lognormal_around_their_medians() -> None:
    t = traffic(13)
    assert np.all(t.p50 > 0) and np.all(t.p99 >= t.p50)
    assert float(np.median(t.p50)) == pytest.approx(MODEL.p50, rel=0.01)
    assert float(np.median(t.p99)) == pytest.approx(MODEL.p99, rel=0.01)
    assert float(np.std(np.log(t.p99))) == pytest.approx(MODEL.p99_sd, rel=0.05)
    assert float(np.median(t.latency_sd)) == pytest.approx(math.log(MODEL.p99 / MODEL.p50) / Z99, rel=0.02)


def test_latency_histogram_is_cumulative_and_agrees_with_the_percentiles() -> None:
    t = traffic(17, steps=200)
    bounds = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
    histogram = t.latency_histogram(np.random.default_rng(1), bounds)
    assert histogram.shape == (200, len(bounds) + 1)
    assert np.all(np.diff(histogram, axis=1) >= 0) and np.all(histogram >= 0)
    assert np.array_equal(histogram[:, -1], t.requests)
    # The 0.05 s bound is above every step's median (~0.045 s): just over half the requests are below it.
    below = histogram[:, bounds.index(0.05)] / t.requests
    z = (np.log(0.05) - np.log(t.p50)) / t.latency_sd
    expected = 0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2)))
    assert np.allclose(below, expected, atol=0.03)
    # Almost all requests but the 1% tail sit under a bound just above the step's p99.
    tail = t.latency_histogram(np.random.default_rng(2), [float(np.max(t.p99)) * 1.0001])
    assert np.all(tail[:, 0] / t.requests >= 0.97)
    with pytest.raises(FieldError, match="bounds"):
        t.latency_histogram(np.random.default_rng(1), [0.1, 0.05])


# ---------------------------------------------------------------- noise and parameters


def test_ar1_noise_has_its_sd_and_autocorrelation() -> None:
    noise = ar1(np.random.default_rng(3), 50_000, 0.08, 0.6)
    assert float(np.std(noise)) == pytest.approx(0.08, rel=0.03)
    assert float(np.corrcoef(noise[:-1], noise[1:])[0, 1]) == pytest.approx(0.6, abs=0.02)
    independent = ar1(np.random.default_rng(3), 50_000, 0.08)
    assert abs(float(np.corrcoef(independent[:-1], independent[1:])[0, 1])) < 0.02


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"requests": 0.0}, "requests"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"p99": 0.01}, "p99"),
        ({"phi": 1.0}, "phi"),
        ({"p50_sd": -0.1}, "p50_sd"),
    ],
)
def test_bad_parameters_name_their_field(changes: dict[str, float], field: str) -> None:
    with pytest.raises(FieldError) as raised:
        TrafficModel(**changes)
    assert raised.value.field == field


def test_bad_load_shared_or_slowdown_name_themselves() -> None:
    rng = np.random.default_rng(0)
    with pytest.raises(FieldError, match="load"):
        MODEL.simulate(rng, [1.0, -0.5])
    with pytest.raises(FieldError, match="shared"):
        MODEL.simulate(rng, np.ones(3), shared=np.zeros(2))
    with pytest.raises(FieldError, match="slowdown"):
        MODEL.simulate(rng, np.ones(3), slowdown=[1.0, math.nan, 1.0])
    with pytest.raises(FieldError, match="amplitude"):
        traffic_cycle([0.0], amplitude=1.0)


def test_plugins_get_the_model_from_the_public_api() -> None:
    assert {"Effects", "TrafficModel", "traffic_cycle"} <= set(plugin.__all__)
    assert plugin.TrafficModel is TrafficModel and plugin.Effects is Effects
