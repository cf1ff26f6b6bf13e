"""Serial correlation: the shift-invariant lag-1 autocorrelation, its streamed form, the AR(1) bound."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from judges.sequential.rank import _lag_correlation, _lag_moments
from kayenta_py.engine.stats import ar1_upper_bound, effective_points, lag1_autocorrelation


def ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    x = np.empty(n)
    x[0] = rng.normal()
    noise = rng.normal(0.0, math.sqrt(1.0 - phi * phi), n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + noise[i]
    return x


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 80),
    shift=st.sampled_from([0.0, 2.0, 20.0, -1e3, 1e6]),
    scale=st.sampled_from([1e-6, 1.0, 1e4]),
)
def test_lag1_autocorrelation_is_shift_and_scale_invariant(
    seed: int, n: int, shift: float, scale: float
) -> None:
    """The issue's case: a streamed formula gave 0.94, 0.98 or 1.28 after adding 0, 2 or 20."""
    assume(abs(shift) / scale < 1e8)  # beyond that a float cannot hold the series' variation
    x = ar1(np.random.default_rng(seed), n, 0.9)
    base = lag1_autocorrelation(x)
    moved = lag1_autocorrelation(x * scale + shift)
    assert base is not None and moved is not None
    assert moved == pytest.approx(base, abs=1e-6)
    assert -1.0 <= base <= 1.0


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(3, 120), shift=st.sampled_from([0.0, 2.0, 20.0, 1e5]))
def test_streamed_lag_correlation_equals_the_batch_one(seed: int, n: int, shift: float) -> None:
    """The rank judge streams batches of any size; the result is the whole series' value."""
    rng = np.random.default_rng(seed)
    x = ar1(rng, n, 0.95) + shift
    acc: list[object] = [0, 0.0, 0.0, 0, 0.0, 0.0, None]
    start = 0
    while start < n:
        size = int(rng.integers(1, 8))
        _lag_moments(acc, x[start : start + size])
        start += size
    streamed = _lag_correlation(acc)
    whole = lag1_autocorrelation(x)
    assert streamed is not None and whole is not None
    assert streamed == pytest.approx(whole, abs=1e-6)


@pytest.mark.parametrize("n", [10, 30, 60])
@pytest.mark.parametrize("phi", [0.5, 0.8, 0.98])
def test_ar1_upper_bound_covers_the_coefficient_about_70_percent_of_the_time(n: int, phi: float) -> None:
    """The bound is the coefficient whose 30th percentile of lag-1 equals the observed one."""
    rng = np.random.default_rng(int(phi * 1000) + n)
    runs = 1500
    covered = 0
    for _ in range(runs):
        r = lag1_autocorrelation(ar1(rng, n, phi))
        assert r is not None
        covered += ar1_upper_bound(r, n) >= phi
    assert 0.62 <= covered / runs <= 0.78, covered / runs


def test_ar1_upper_bound_is_monotone_and_bounded() -> None:
    for n in (10, 17, 60, 500):
        values = [ar1_upper_bound(r, n) for r in np.linspace(-0.9, 0.99, 60)]
        assert all(b >= a for a, b in itertools.pairwise(values))
        assert min(values) >= 0.0 and max(values) <= 0.995
    assert ar1_upper_bound(0.47, 10) > 0.95  # 10 points of an AR(1) 0.98 have a median lag-1 of 0.47


def test_effective_points_counts_independent_points_and_discounts_persistent_ones() -> None:
    rng = np.random.default_rng(5)
    iid = [effective_points(rng.normal(size=60))[0] for _ in range(200)]
    persistent = [effective_points(ar1(rng, 15, 0.9))[0] for _ in range(200)]
    assert np.median(iid) >= 40
    assert np.median(persistent) < 3  # 15 points of an AR(1) 0.9 hold about one independent point
    assert effective_points([1.0, 1.0, 1.0]) == (3.0,)  # constant: nothing to estimate, count them


def test_pooled_sides_are_each_centred_and_estimate_the_process_better() -> None:
    rng = np.random.default_rng(8)
    # A level difference between the sides (a shifted canary) is not autocorrelation.
    a, b = rng.normal(size=15), rng.normal(size=15)
    assert lag1_autocorrelation(a, b + 50.0) == pytest.approx(lag1_autocorrelation(a, b))
    assert effective_points(a, b + 50.0) == pytest.approx(effective_points(a, b))
    # Each side keeps its own length; one series pools with nothing.
    assert len(effective_points(a, b[:9])) == 2 and effective_points(a)[0] == effective_points(a, a)[0]
    # 15 iid points a side: one side's estimate alone counts fewer than 8 points far more often
    # than the pooled estimate does, and an AR(1) 0.9 pair is still counted as about one point.
    single = pooled = persistent = 0
    for _ in range(2000):
        x, y = rng.normal(size=15), rng.normal(size=15)
        single += min(effective_points(x)[0], effective_points(y)[0]) < 8
        pooled += min(effective_points(x, y)) < 8
        persistent += max(effective_points(ar1(rng, 15, 0.9), ar1(rng, 15, 0.9))) < 8
    assert pooled < 0.1 * 2000 < single, (pooled, single)
    assert persistent > 0.95 * 2000, persistent
