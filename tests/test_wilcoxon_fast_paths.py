"""The rank-sum statistic's fast paths give the values of its full evaluation (issue 15, capacity).

``RankSumStatistic`` with a tie tolerance answers most evaluations without the full tie count
(no ``x - mu`` ties a ``y``: the pooled ties are the data's own) and, for small samples, by
bisecting the sorted pairwise differences. Both must give the full evaluation's value, so that
the Mann-Whitney judge's intervals (checked against R in ``tests/test_r_reference.py``) do not
move. The full evaluation here is the test's own, the formula counted in full at every shift.
"""

from __future__ import annotations

import numpy as np
import pytest

import judges.wilcoxon as wilcoxon
from judges.wilcoxon import TIE_TOLERANCE, RankSumStatistic, wilcoxon_interval


def samples(kind: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 50)), int(rng.integers(2, 50))
    if kind == "continuous":
        return rng.lognormal(0, 0.3, n), rng.lognormal(0.05, 0.3, m)
    if kind == "integers":  # heavy ties within and across samples, shifts landing on them
        return rng.integers(0, 6, n).astype(float), rng.integers(0, 6, m).astype(float)
    if kind == "tiny":  # error ratios: magnitudes of 1e-4, ties at 0
        return (rng.poisson(1.0, n) * 1e-4 / 3), (rng.poisson(1.2, m) * 1e-4 / 3)
    return np.round(rng.normal(100, 2, n), 1), np.round(rng.normal(100, 2, m), 1)  # decimals


def reference(x: np.ndarray, y: np.ndarray, mu: float, *, correct: bool) -> float:
    """R's standardized statistic with ties within the scale-free tolerance, counted in full."""
    x, y = np.sort(x), np.sort(y)
    nx, ny = x.size, y.size
    tol = TIE_TOLERANCE * max(float(np.max(np.abs(x))), float(np.max(np.abs(y))))
    shifted = x - mu
    below = np.searchsorted(y, shifted - tol, side="left")
    equal = np.searchsorted(y, shifted + tol, side="right") - below
    dz = float(below.sum()) + 0.5 * float(equal.sum()) - nx * ny / 2
    starts = np.flatnonzero(np.r_[True, x[1:] != x[:-1]])  # runs of equal x in the data
    x_counts = np.diff(np.r_[starts, nx])
    _, y_counts = np.unique(y, return_counts=True)
    joint, y_alone = x_counts + equal[starts], equal[starts]
    ties = int(np.sum(y_counts**3 - y_counts)) + int(np.sum(joint**3 - joint - (y_alone**3 - y_alone)))
    sigma = np.sqrt((nx * ny / 12) * ((nx + ny + 1) - ties / ((nx + ny) * (nx + ny - 1))))
    return float((dz - (0.5 * np.sign(dz) if correct else 0.0)) / sigma)


def shifts(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The shifts a root finder visits: every pairwise difference (ties), between them, beyond."""
    differences = np.unique((x[:, None] - y[None, :]).ravel())
    between = (differences[1:] + differences[:-1]) / 2
    grid = np.linspace(differences[0] - 1, differences[-1] + 1, 97)
    return np.concatenate([differences, between, grid])


@pytest.mark.parametrize("kind", ["continuous", "integers", "tiny", "decimals"])
@pytest.mark.parametrize("correct", [True, False])
def test_fast_evaluations_equal_the_full_one(kind: str, correct: bool) -> None:
    for seed in range(15):
        x, y = samples(kind, seed)
        magnitude = max(float(np.max(np.abs(x))), float(np.max(np.abs(y))))
        paired = RankSumStatistic(x, y, correct=correct, tie_tolerance=TIE_TOLERANCE * magnitude)
        assert paired._differences is not None  # small samples: the pairwise path is taken
        searched = RankSumStatistic(x, y, correct=correct, tie_tolerance=TIE_TOLERANCE * magnitude)
        searched._differences = None
        for mu in shifts(x, y):
            expected = reference(x, y, float(mu), correct=correct)
            assert paired(float(mu)) == expected, (kind, seed, mu)
            assert searched(float(mu)) == expected, (kind, seed, mu)


@pytest.mark.parametrize("kind", ["continuous", "integers", "tiny", "decimals"])
def test_intervals_are_unchanged_by_the_fast_paths(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cases = [samples(kind, seed) for seed in range(30)]
    fast = [wilcoxon_interval(x, y, 0.98, root_tolerance="relative") for x, y in cases]
    monkeypatch.setattr(wilcoxon, "PAIRWISE_LIMIT", 0)  # the searchsorted path for every size
    searched = [wilcoxon_interval(x, y, 0.98, root_tolerance="relative") for x, y in cases]
    assert fast == searched


def test_large_samples_search_instead_of_pairing() -> None:
    rng = np.random.default_rng(7)
    x, y = np.round(rng.normal(size=100), 1), np.round(rng.normal(size=100), 1)
    statistic = RankSumStatistic(x, y, tie_tolerance=TIE_TOLERANCE * float(np.max(np.abs(np.r_[x, y]))))
    assert statistic._differences is None  # 10,000 pairs: beyond PAIRWISE_LIMIT
    for mu in shifts(x, y):
        assert statistic(float(mu)) == reference(x, y, float(mu), correct=True)
