"""The sequential judge of continuous series: ``sequential-rank``.

Its state is a small JSON document updated batch by batch in time proportional to the
batch, so live analyses persist and resume it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import chi2, norm

from judges.sequential.common import final_share_p
from kayenta_py import Direction, KayentaError
from kayenta_py.plugin import AR1_MAX, Assessment, SequentialJudge, ar1_upper_bound, clip_p

FloatArray = npt.NDArray[np.float64]

# ---------------------------------------------------------------- ranks of aligned pairs


class RankParams(BaseModel):
    """Parameters of ``sequential-rank``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_effect: float = Field(0.56, gt=0.5, lt=1, description="smallest relevant theta, P(canary > baseline)")
    min_points: int = Field(10, ge=10, description="aligned points before any decision")
    min_effective: float = Field(
        3.0, ge=1, description="effectively independent points (points / correlation inflation) to decide"
    )
    tuning: int = Field(100, ge=10, description="points at which the confidence sequence is tightest")
    final_share: float = Field(
        0.7, ge=0, lt=1, description="share of the metric's alpha kept for one fixed-horizon look at the end"
    )


# Batch sizes 1, 2, 4, ... 2^19 for the long-run variance (batch means), streamed in O(log n) per point.
_LEVELS = 20


class SequentialRankJudge(SequentialJudge):
    """Continuous series: a confidence sequence for theta = P(canary > baseline) + P(tie)/2.

    Points are paired by timestamp (by position within a batch), so a trend both
    versions share cancels; each pair scores ``1{c > b} + 1{c = b}/2``. Metric
    series are autocorrelated, so the scores are too: the confidence sequence is
    Waudby-Smith et al.'s asymptotic confidence sequence (Annals of Statistics 2024,
    the Robbins normal-mixture boundary) with the *long-run* standard deviation of
    the scores, estimated conservatively (``_sd``: an AR(1) inflation from an upper
    bound of the latent autocorrelation, checked by batch means). A regression is
    established when the sequence lies above ``min_effect`` (below
    ``1 - min_effect`` for a decrease); it is excluded when the sequence lies below it. No decision before
    ``min_points`` aligned points, nor before ``min_effective`` effectively
    independent ones (points / inflation): a strongly autocorrelated series
    needs more data, and a short stretch of a persistent series can look much
    less correlated than it is. Each batch costs O(points x log n).

    Final look: ``final_share`` of the metric's alpha is kept for one
    fixed-horizon test of "no relevant regression" on all points, read once when
    the lifetime ends (``p_final``); the confidence sequence gets the rest (its
    p-value is divided by ``1 - final_share``). By the union bound the metric's
    false-fail rate stays at alpha. A persistent series often has too little
    evidence for the time-uniform boundary by the end of the hour but enough for a
    single test at that one planned time.
    """

    name = "sequential-rank"
    params_model = RankParams

    min_effect: float
    min_points: int
    min_effective: float
    tuning: int
    final_share: float

    def new_state(self, alpha: float) -> dict[str, Any]:
        """Return the empty state."""
        return {
            "alpha": alpha,
            "n": 0,
            "sum": 0.0,
            "sum_sq": 0.0,
            # per level: [open batch's points, its sum, closed batches, sum of means, sum of squares]
            "levels": [[0, 0.0, 0, 0.0, 0.0] for _ in range(_LEVELS)],
            "min_p": {"up": 1.0, "down": 1.0, "safe_up": 1.0, "safe_down": 1.0},
            "baseline": [0, 0.0, 0.0, None, None],
            "canary": [0, 0.0, 0.0, None, None],
            # paired differences less the first one (a shift-free origin): count, sum, sum of squares,
            # lag pairs, last, sum of lag products, the origin (see ``_lag_correlation``)
            "lag": [0, 0.0, 0.0, 0, 0.0, 0.0, None],
            # relative differences' signs about their running mean: count, sum, lag pairs, same-sign
            # pairs, last sign
            "centred": [0, 0.0, 0, 0.0, 0.0],
        }

    def update(self, state: dict[str, Any], baseline: Any, canary: Any) -> dict[str, Any]:
        """Add aligned points and refresh the anytime p-values."""
        b = np.asarray(baseline, dtype=np.float64).reshape(-1)
        c = np.asarray(canary, dtype=np.float64).reshape(-1)
        if b.size != c.size:
            raise KayentaError(f"baseline has {b.size} points and canary {c.size}: align them by time")
        keep = np.isfinite(b) & np.isfinite(c)
        b, c = b[keep], c[keep]
        _moments(state["baseline"], b)
        _moments(state["canary"], c)
        scores = (c > b).astype(np.float64) + 0.5 * (c == b)
        _lag_moments(state.setdefault("lag", [0, 0.0, 0.0, 0, 0.0, 0.0, None]), c - b)  # older states lack it
        _centred_signs(state.setdefault("centred", [0, 0.0, 0, 0.0, 0.0]), c, b)  # older states lack it
        for x in scores.tolist():
            state["n"] += 1
            state["sum"] += x
            state["sum_sq"] += x * x
            for level, acc in enumerate(state["levels"]):
                acc[0] += 1
                acc[1] += x
                if acc[0] == 1 << level:
                    mean = acc[1] / acc[0]
                    acc[2] += 1
                    acc[3] += mean
                    acc[4] += mean * mean
                    acc[0], acc[1] = 0, 0.0
        if scores.size:
            for key, value in self._p_values(state).items():
                state["min_p"][key] = min(state["min_p"][key], value)
        return state

    def _sd(self, state: Mapping[str, Any]) -> float:
        """Long-run standard deviation of the scores at the null, estimated conservatively.

        Two estimates, the larger wins. (1) The scores' variance at the boundary of the
        null, ``m (1 - m)`` with m = ``min_effect`` (never the sample's: a persistent series
        whose canary stays above its baseline for an hour has scores all 1 and a sample
        variance of 0), or the sample's if larger, times the long-run factor of the
        indicators of a Gaussian AR(1) (``_inflation``). (2) Batch means of the scores:
        size x variance of the batch means for the largest batch size with at least 6
        batches, at its 95% chi-square upper confidence bound.
        """
        n = state["n"]
        mean = state["sum"] / n
        plain = max(0.0, state["sum_sq"] / n - mean * mean)
        variance = max(plain, self.min_effect * (1.0 - self.min_effect))
        long_run = variance * _inflation(state)
        for level in range(1, _LEVELS):
            closed, total, total_sq = state["levels"][level][2:]
            if closed < 6:
                break
            size = 1 << level
            batch_var = max(0.0, (total_sq - total * total / closed) / (closed - 1))
            upper = size * (closed - 1) * batch_var / float(chi2.ppf(0.05, closed - 1))
            long_run = max(long_run, upper)
        return math.sqrt(max(long_run, 1e-4))

    def _rho2(self, alpha: float) -> float:
        """The normal mixture's precision, tuned to be tightest after ``tuning`` points."""
        return (-2.0 * math.log(alpha) + math.log(-2.0 * math.log(alpha) + 1.0)) / self.tuning

    def _boundary_alpha(self, n: int, z: float, alpha: float) -> float:
        """The alpha at which the normal-mixture boundary sits ``z`` standard deviations out after n points.

        Robbins' normal mixture:
        |mean - theta| <= sd sqrt(2 (n rho2 + 1) / (n^2 rho2) log(sqrt(n rho2 + 1) / a)).
        """
        if z <= 0:
            return 1.0
        rho2 = self._rho2(alpha)
        log_alpha = 0.5 * math.log(n * rho2 + 1.0) - (z * z) * (n * n * rho2) / (2.0 * (n * rho2 + 1.0))
        return min(1.0, math.exp(log_alpha))

    def _ready(self, state: Mapping[str, Any]) -> bool:
        """Enough aligned and effectively independent points to judge."""
        n = state["n"]
        return bool(n >= self.min_points and n / _inflation(state) >= self.min_effective)

    def _p_values(self, state: Mapping[str, Any]) -> dict[str, float]:
        n = state["n"]
        none = {"up": 1.0, "safe_up": 1.0, "down": 1.0, "safe_down": 1.0}
        if not self._ready(state):
            return none
        mean, sd = state["sum"] / n, self._sd(state)
        theta, alpha = self.min_effect, state["alpha"]
        return {
            "up": self._boundary_alpha(n, (mean - theta) / sd, alpha),
            "safe_up": self._boundary_alpha(n, (theta - mean) / sd, alpha),
            "down": self._boundary_alpha(n, ((1.0 - theta) - mean) / sd, alpha),
            "safe_down": self._boundary_alpha(n, (mean - (1.0 - theta)) / sd, alpha),
        }

    def _regression_p(self, up: float, down: float) -> float:
        """The p-value of a regression in the judged direction, from the two one-sided ones."""
        if self.direction is Direction.INCREASE:
            return up
        if self.direction is Direction.DECREASE:
            return down
        return 2 * min(up, down)

    def _final_p(self, state: Mapping[str, Any], sd: float) -> float:
        """The fixed-horizon p-value of "no relevant regression" on all points, over its alpha share."""
        if not self._ready(state):
            return 1.0
        n = state["n"]
        mean, se = state["sum"] / n, sd / math.sqrt(n)
        up = float(norm.sf((mean - self.min_effect) / se))
        down = float(norm.sf(((1.0 - self.min_effect) - mean) / se))
        return final_share_p(self._regression_p(up, down), self.final_share)

    def _inconclusive(self, state: Mapping[str, Any]) -> str | None:
        """Why the evidence is too thin for a pass at the end (None: it suffices)."""
        n = state["n"]
        if n < self.min_points:
            return f"{n} aligned points, fewer than min_points {self.min_points}"
        effective = n / _inflation(state)
        if effective < self.min_effective:
            return (
                f"{effective:.1f} effectively independent points, "
                f"fewer than min_effective {self.min_effective:g}"
            )
        theta = state["sum"] / n
        up = theta >= self.min_effect and self.direction is not Direction.DECREASE
        down = theta <= 1.0 - self.min_effect and self.direction is not Direction.INCREASE
        if up or down:
            return (
                f"theta estimate {theta:.3g} is past the relevant {self.min_effect:g} (or 1 - it) "
                "without the regression being established"
            )
        return None

    def assess(self, state: Mapping[str, Any]) -> Assessment:
        """Evidence on theta."""
        best = state["min_p"]
        n = state["n"]
        if self.direction is Direction.INCREASE:
            safe = best["safe_up"]
        elif self.direction is Direction.DECREASE:
            safe = best["safe_down"]
        else:
            safe = max(best["safe_up"], best["safe_down"])
        # The confidence sequence's share of alpha.
        p = (self._regression_p(best["up"], best["down"]) / (1.0 - self.final_share), safe)
        ci = None
        estimate = None
        sd = self._sd(state) if n else None
        if sd is not None:
            estimate = state["sum"] / n
            alpha0 = float(state["alpha"])
            rho2 = self._rho2(alpha0)
            radius = sd * math.sqrt(
                2.0 * (n * rho2 + 1.0) / (n * n * rho2) * math.log(math.sqrt(n * rho2 + 1.0) / alpha0)
            )
            ci = (max(0.0, estimate - radius), min(1.0, estimate + radius))
        return Assessment(
            # Shafer's p-to-e calibrator 1 / (2 sqrt(p)) turns the anytime p-value into an e-value (e-BH).
            p_regression=clip_p(p[0]),
            p_safe=clip_p(p[1]),
            e_regression=0.5 / math.sqrt(max(p[0], 1e-300)),
            p_final=1.0 if sd is None else self._final_p(state, sd),
            inconclusive=self._inconclusive(state),
            ci=ci,
            estimate=estimate,
            effect_measure="theta",
            neutral=0.5,
            observations=int(n),
            baseline=_stats(state["baseline"]),
            canary=_stats(state["canary"]),
            details={
                "long_run_sd": sd,
                "min_effect": self.min_effect,
                "min_points": self.min_points,
                "final_share": self.final_share,
            },
        )


# ---------------------------------------------------------------- helpers


def _lag_correlation(acc: Sequence[Any]) -> float | None:
    """Mean-centred lag-1 autocorrelation of a series streamed by ``_lag_moments`` (None: too short).

    ``sum (y_t - m)(y_{t-1} - m) / sum (y_t - m)^2`` from running sums, the series taken
    less its first value so that no large level cancels (the same value as
    ``kayenta_py.engine.stats.lag1_autocorrelation`` on the whole series, whatever its level).
    """
    count, total, total_sq, pairs, last, lag_sum = acc[:6]
    if count < 3 or pairs < 2:
        return None
    mean = total / count
    denominator = total_sq - count * mean * mean
    if denominator <= 1e-24 * max(total_sq, 1e-300):
        return None
    # Pairs cover every point but the first as "current" and every point but the last as "previous";
    # the first point is 0 in these coordinates.
    numerator = lag_sum - mean * ((total - 0.0) + (total - last)) + pairs * mean * mean
    return float(numerator / denominator)


def _inflation(state: Mapping[str, Any]) -> float:
    """Variance inflation of the mean of the scores over n points: n Var(mean) / Var(score).

    The scores are indicators ``1{c_t > b_t}`` of the paired differences; for a Gaussian
    AR(1) difference with coefficient phi, Sheppard's formula gives their lag-k
    correlation ``(2 / pi) arcsin(phi^k)`` (at the median), so the inflation of their
    mean over n points is ``1 + 2 sum_{k<n} (1 - k/n) (2 / pi) arcsin(phi^k)``.

    phi is the larger of two estimates: an Andrews-style upper bound of the AR(1)
    coefficient (``kayenta_py.engine.stats.ar1_upper_bound``) from the paired differences'
    mean-centred lag-1 autocorrelation (a short stretch of a persistent series looks far less
    correlated than it is: 10 points of an AR(1) 0.98 have a median lag-1 of 0.47), and a
    robust one from the signs of the relative differences (c - b) / (|c| + |b|) about
    their running mean: for a Gaussian process the signs about its centre agree on
    consecutive points with probability 1/2 + arcsin(r) / pi. The second keeps the
    estimate honest when a few spikes dominate the differences' variance (3% of points
    x3 on each side make the first one look uncorrelated).
    """
    lag = state.get("lag")
    n = int(lag[0]) if lag else int(state.get("n", 0))
    estimates = []
    if lag and (r := _lag_correlation(lag)) is not None:
        estimates.append(ar1_upper_bound(r, n))
    centred = state.get("centred")
    if centred and centred[2] >= 2:
        robust = math.sin(math.pi * (centred[3] / centred[2] - 0.5))
        # Less precise than the first, it counts from its 95% lower bound: on a clean series the larger
        # of two noisy estimates would inflate the variance by itself and cost power.
        estimates.append(robust - 1.645 * math.sqrt(max(0.0, 1.0 - robust * robust) / centred[2]))
    if not estimates or n < 2:
        return 1.0
    phi = min(max(max(estimates), 0.0), AR1_MAX)
    lags = np.arange(1, min(n, 5000), dtype=np.float64)
    correlation = (2.0 / math.pi) * np.arcsin(phi**lags)
    return float(1.0 + 2.0 * np.sum((1.0 - lags / n) * correlation))


def _centred_signs(acc: list[Any], canary: FloatArray, baseline: FloatArray) -> None:
    """Stream the agreement of consecutive signs of the relative differences about their running mean."""
    if canary.size == 0:
        return
    scale = np.abs(canary) + np.abs(baseline)
    relative = np.divide(canary - baseline, scale, out=np.zeros_like(scale), where=scale > 0)
    seen = acc[0] + np.arange(relative.size)
    before = acc[1] + np.concatenate([[0.0], np.cumsum(relative)[:-1]])  # sums of the earlier points
    signs = np.where(seen > 0, np.sign(relative - before / np.maximum(seen, 1)), 0.0)
    previous = np.concatenate([[acc[4]], signs[:-1]])
    pairs = (seen > 1) & (previous != 0) & (signs != 0)
    acc[2] += int(pairs.sum())
    acc[3] += float(((1.0 + previous * signs) / 2.0)[pairs].sum())
    acc[0] += int(relative.size)
    acc[1] += float(relative.sum())
    acc[4] = float(signs[-1])


def _lag_moments(acc: list[Any], values: FloatArray) -> None:
    """Stream count, sum, sum of squares and lag-1 products of a series less its first value."""
    if values.size == 0:
        return
    if acc[6] is None:
        acc[6] = float(values[0])
    y = values - acc[6]
    previous = np.concatenate([[acc[4]], y[:-1]]) if acc[0] else y[:-1]
    current = y if acc[0] else y[1:]
    acc[3] += int(current.size)
    acc[5] += float((previous * current).sum())
    acc[0] += int(y.size)
    acc[1] += float(y.sum())
    acc[2] += float((y**2).sum())
    acc[4] = float(y[-1])


def _moments(acc: list[Any], values: FloatArray) -> None:
    """Running count, sum, sum of squares, min, max."""
    if values.size == 0:
        return
    acc[0] += int(values.size)
    acc[1] += float(values.sum())
    acc[2] += float((values**2).sum())
    low, high = float(values.min()), float(values.max())
    acc[3] = low if acc[3] is None else min(acc[3], low)
    acc[4] = high if acc[4] is None else max(acc[4], high)


def _stats(acc: Sequence[Any]) -> Any:
    from kayenta_py import SummaryStats

    n = int(acc[0])
    if n == 0:
        return SummaryStats(0.0, 0.0, 0.0, 0.0, 0)
    mean = acc[1] / n
    variance = max(0.0, (acc[2] - n * mean * mean) / (n - 1)) if n > 1 else 0.0
    return SummaryStats(float(acc[3]), float(acc[4]), mean, math.sqrt(variance), n)
