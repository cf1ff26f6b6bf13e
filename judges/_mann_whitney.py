"""Judge ``mann-whitney``: Kayenta's NetflixACAJudge-v1.0 semantics, R-parity statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field
from scipy.special import ndtri

from kayenta_py import (
    Classification,
    FloatArray,
    Judge,
    MetricResult,
    MetricSetPair,
    SummaryStats,
    cles,
    format_number,
    mean_ratio,
    zeroin,
)

ROOT_TOLERANCE = 1e-4  # R's wilcox.test tol.root


@dataclass(frozen=True)
class WilcoxonInterval:
    """Confidence interval and Hodges-Lehmann-type estimate for canary minus baseline."""

    lower: float
    upper: float
    estimate: float


class RankSumStatistic:
    """The standardized rank-sum statistic of R's ``wilcox.test`` as a function of the shift.

    ``W(mu)`` ranks ``x - mu`` within the pooled sample ``{x - mu} U {y}``:
    ``dz = (sum of x ranks) - nx(nx+1)/2 - nx ny/2`` and
    ``W = (dz - correction) / sigma`` with the tie-corrected
    ``sigma = sqrt(nx ny / 12 ((nx + ny + 1) - sum(t^3 - t) / ((nx + ny)(nx + ny - 1))))``.

    Notes
    -----
    Both samples are sorted once; each evaluation then costs O(nx log ny)
    by binary search instead of a full re-ranking, with exactly the same value:
    the x ranks sum to ``nx(nx+1)/2`` among themselves, so ``dz`` is the count
    of ``y`` below each ``x - mu`` plus half the ties. ``x - mu`` is computed
    in floating point as R does, so values that become equal after the shift
    count as ties, as they do in R.
    Test: ``mann_whitney_internals`` conformance cases; ``tests/test_r_reference.py``.
    """

    def __init__(self, x: npt.ArrayLike, y: npt.ArrayLike, *, correct: bool = True) -> None:
        self.x = np.sort(np.asarray(x, dtype=np.float64))
        self.y = np.sort(np.asarray(y, dtype=np.float64))
        self.nx, self.ny = int(self.x.size), int(self.y.size)
        if self.nx == 0 or self.ny == 0:
            raise ValueError("both samples need at least one value")
        self.correct = correct
        _, y_counts = np.unique(self.y, return_counts=True)
        self._y_ties = int(np.sum(y_counts**3 - y_counts))
        self.evaluations = 0

    def __call__(self, mu: float) -> float:
        self.evaluations += 1
        nx, ny = self.nx, self.ny
        shifted = self.x - mu
        below = np.searchsorted(self.y, shifted, side="left")
        # Ties with y are rare on continuous data: search the right end only where y[below] ties.
        tied = self.y[np.minimum(below, ny - 1)] == shifted
        equal = np.zeros(nx, dtype=np.intp)
        if tied.any():
            equal[tied] = np.searchsorted(self.y, shifted[tied], side="right") - below[tied]
        dz = float(below.sum()) + 0.5 * float(equal.sum()) - nx * ny / 2
        # Tie groups of the pooled sample: runs of equal shifted x, joined by equal y.
        starts = np.flatnonzero(np.r_[True, shifted[1:] != shifted[:-1]])
        x_counts = np.diff(np.r_[starts, nx])
        joint = x_counts + equal[starts]
        y_alone = equal[starts]
        ties = self._y_ties + int(np.sum(joint**3 - joint - (y_alone**3 - y_alone)))
        sigma = math.sqrt((nx * ny / 12) * ((nx + ny + 1) - ties / ((nx + ny) * (nx + ny - 1))))
        correction = 0.5 * float(np.sign(dz)) if self.correct else 0.0
        return (dz - correction) / sigma


def wilcoxon_interval(
    canary: npt.ArrayLike,
    baseline: npt.ArrayLike,
    confidence: float = 0.98,
    *,
    estimate: Literal["r", "kayenta"] = "r",
) -> WilcoxonInterval:
    """Return the CI and location estimate of R's two-sample ``wilcox.test``.

    Equivalent to R's ``wilcox.test(canary, baseline, conf.int=TRUE,
    exact=FALSE, correct=TRUE, conf.level=confidence)``: each CI end is the
    root in mu of ``W(mu) -/+ z`` found by Brent's zeroin (tol 1e-4) on
    ``[min(x) - max(y), max(x) - min(y)]``, or that bracket end when there is
    no sign change; the estimate is the root of ``W`` without continuity
    correction, as R computes it (``estimate="r"``). Kayenta's Scala port keeps
    the continuity correction for the estimate (``estimate="kayenta"``); the
    two agree on smooth data and can differ by a plateau's width on heavily
    tied small samples.

    References
    ----------
    R Core Team, ``stats::wilcox.test`` (R 4.x); Bauer, "Constructing
    confidence sets using rank statistics", JASA 67 (1972).
    Test: ``mann_whitney`` conformance cases and ``tests/test_r_reference.py``.
    """
    x = np.asarray(canary, dtype=np.float64)
    y = np.asarray(baseline, dtype=np.float64)
    corrected = RankSumStatistic(x, y, correct=True)
    mu_min = float(corrected.x[0] - corrected.y[-1])
    mu_max = float(corrected.x[-1] - corrected.y[0])
    w_min, w_max = corrected(mu_min), corrected(mu_max)
    z = float(ndtri(1.0 - (1.0 - confidence) / 2.0))

    def root(zq: float) -> float:
        f_lower = w_min - zq
        if f_lower <= 0:
            return mu_min
        f_upper = w_max - zq
        if f_upper >= 0:
            return mu_max
        return zeroin(
            lambda mu: corrected(mu) - zq,
            mu_min,
            mu_max,
            f_lower=f_lower,
            f_upper=f_upper,
            tol=ROOT_TOLERANCE,
        ).root

    lower, upper = root(z), root(-z)
    statistic = corrected if estimate == "kayenta" else RankSumStatistic(x, y, correct=False)
    location = zeroin(statistic, mu_min, mu_max, tol=ROOT_TOLERANCE).root
    return WilcoxonInterval(lower, upper, location)


class EffectMeasure(StrEnum):
    """How the size of a difference is measured."""

    MEAN_RATIO = "meanRatio"
    CLES = "cles"


class EffectSizeParams(BaseModel):
    """Effect-size thresholds: a High needs >= ``allowed_increase``, a Low <= ``allowed_decrease``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measure: Literal["meanRatio", "cles"] = "meanRatio"
    allowed_increase: float = Field(1.0, ge=0)
    allowed_decrease: float = Field(1.0, ge=0)
    critical_increase: float = Field(1.0, ge=0)
    critical_decrease: float = Field(1.0, ge=0)


class MannWhitneyParams(BaseModel):
    """Parameters of the ``mann-whitney`` judge in a configuration file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    confidence: float = Field(0.98, gt=0, lt=1)
    tolerance: float = Field(0.25, ge=0)
    effect_size: EffectSizeParams = EffectSizeParams()
    estimate: Literal["r", "kayenta"] = "r"


class MannWhitneyJudge(Judge):
    """Kayenta's Mann-Whitney judge (NetflixACAJudge-v1.0), with results equal to Kayenta's.

    Parameters
    ----------
    confidence : float
        Confidence level of the interval for canary minus baseline (0.98).
    tolerance : float
        A High needs the CI's lower end above ``tolerance * |estimate|``; a Low
        needs its upper end below ``-tolerance * |estimate|`` (0.25).
    effect_size : EffectSizeParams or mapping
        Measure (``meanRatio`` or ``cles``) and the thresholds a High or Low
        must also reach, and the critical thresholds past which a critical
        metric's High or Low fails the canary.
    estimate : {"r", "kayenta"}
        How the location estimate is found: as R's ``wilcox.test`` (no
        continuity correction; default) or as Kayenta's port (with it).

    Notes
    -----
    Identical samples, or one distinct value overall, pass. When both samples
    are constant but different, Kayenta adds Gaussian noise (sd 1e-5 times the
    constant) and runs the test; the outcome is the same for every noise draw,
    so we decide directly and deterministically: the estimate and both CI ends
    are the difference of the constants.
    Tests: ``classifier`` conformance cases; ``tests/test_judges_common.py``.
    """

    name = "mann-whitney"
    version = "1.0"
    params_model = MannWhitneyParams

    def __init__(
        self,
        *,
        confidence: float = 0.98,
        tolerance: float = 0.25,
        effect_size: EffectSizeParams | dict[str, Any] | None = None,
        estimate: Literal["r", "kayenta"] = "r",
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.confidence = confidence
        self.tolerance = tolerance
        self.estimate = estimate
        self.effect_size = (
            effect_size
            if isinstance(effect_size, EffectSizeParams)
            else EffectSizeParams.model_validate(effect_size or {})
        )

    def compare(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
        """Classify with the Mann-Whitney CI, the tolerance and the effect size."""
        if np.array_equal(np.sort(baseline), np.sort(canary)):
            return self.result(
                pair,
                Classification.PASS,
                "baseline and canary data are identical",
                baseline_stats,
                canary_stats,
                mean_ratio=1.0,
            )
        distinct = np.unique(np.concatenate([baseline, canary]))
        if distinct.size == 1:
            return self.result(
                pair,
                Classification.PASS,
                "every value is the same on both sides",
                baseline_stats,
                canary_stats,
                mean_ratio=1.0,
            )
        measure = EffectMeasure(self.effect_size.measure)
        ratio = mean_ratio(canary, baseline)
        effect = ratio if measure is EffectMeasure.MEAN_RATIO else cles(canary, baseline)
        details: dict[str, Any] = {"confidence": self.confidence, "tolerance": self.tolerance}
        if np.unique(baseline).size == 1 and np.unique(canary).size == 1:
            shift = float(canary[0] - baseline[0])
            interval = WilcoxonInterval(shift, shift, shift)
            details["constant_samples"] = True
        else:
            interval = wilcoxon_interval(canary, baseline, self.confidence, estimate=self.estimate)
        bound = self.tolerance * abs(interval.estimate)
        es = self.effect_size
        effect_ok_high = math.isnan(effect) or effect >= es.allowed_increase
        effect_ok_low = math.isnan(effect) or effect <= es.allowed_decrease
        is_high = self.direction.allows_high() and interval.lower > bound and effect_ok_high
        is_low = self.direction.allows_low() and interval.upper < -bound and effect_ok_low
        ci_text = (
            f"{self.confidence:.0%} CI of canary - baseline [{format_number(interval.lower)}, "
            f"{format_number(interval.upper)}]"
        )
        bound_text = f"(tolerance {self.tolerance:g} x |estimate {format_number(interval.estimate)}|)"
        effect_text = f"{measure.value} {format_number(effect)}"
        critical = False
        if is_high:
            classification = Classification.HIGH
            reason = (
                f"canary higher: {ci_text} lies above +{format_number(bound)} "
                f"{bound_text}; {effect_text} >= "
                f"{es.allowed_increase:g}"
            )
            critical = self.critical and (math.isnan(effect) or effect >= es.critical_increase)
        elif is_low:
            classification = Classification.LOW
            reason = (
                f"canary lower: {ci_text} lies below -{format_number(bound)} "
                f"{bound_text}; {effect_text} <= "
                f"{es.allowed_decrease:g}"
            )
            critical = self.critical and (math.isnan(effect) or effect <= es.critical_decrease)
        else:
            classification = Classification.PASS
            reason = (
                f"no significant {self._unwanted()}: {ci_text}, estimate "
                f"{format_number(interval.estimate)}; {effect_text}"
            )
        if critical:
            reason += " (critical: the canary fails)"
        return self.result(
            pair,
            classification,
            reason,
            baseline_stats,
            canary_stats,
            critical=critical,
            ci=(interval.lower, interval.upper),
            estimate=interval.estimate,
            effect_size=effect,
            effect_measure=measure.value,
            mean_ratio=ratio,
            details=details,
        )

    def _unwanted(self) -> str:
        return {"increase": "increase", "decrease": "decrease"}.get(self.direction.value, "change")
