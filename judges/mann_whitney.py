"""Judge ``mann-whitney``: Kayenta's NetflixACAJudge-v1.0 semantics, R-parity statistics."""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

import numpy as np
from scipy.special import ndtri

from judges.mann_whitney_params import (
    EffectMeasure,
    EffectSizeParams,
    EffectThresholds,
    MannWhitneyParams,
)
from judges.wilcoxon import (
    WilcoxonInterval,
    wilcoxon_interval,
)
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
)
from kayenta_py.plugin import effective_points

DECISION_MARGIN = 1e-10
"""A CI end passes the bound ``tolerance * |estimate|`` only by more than this fraction of
``max(|min(x) - max(y)|, |max(x) - min(y)|)``, so that an exact tie (in exact arithmetic) is
never decided by rounding, which differs between units."""

EFFECT_SLACK = 1e-12
"""An effect size reaches a threshold when within this fraction of it (rounding of the means)."""



NON_POSITIVE_FALLBACK = "mean ratio undefined for non-positive data; effect size is CLES"


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
        metric's High or Low fails the canary. Thresholds left out are the
        measure's neutral value (meanRatio 1.0, cles 0.5).
    estimate : {"r", "kayenta"}
        How the location estimate is found: as R's ``wilcox.test`` (no
        continuity correction; default) or as Kayenta's port (with it).
    min_effective : float
        Effectively independent points each side needs for a conclusive
        judgement. The class's default is 0 (no such rule: Kayenta's judge);
        unset in a native config, it is 8 in the intervals of a live fixed-mode
        analysis (``kayenta_py.service.runner.LIVE_MIN_EFFECTIVE``) and 0 elsewhere; a
        Kayenta config's is 0 (parity).

    Notes
    -----
    Too few effectively independent points is inconclusive. The test assumes
    independent points; metric series are autocorrelated (a 10 s rate window
    sampled every second shares 90% of its requests with the next point), and
    15 such points carry the information of one or two, so the interval is far
    too narrow and a chance difference looks significant. When either side has
    fewer than ``min_effective`` effective points, ``n (1 - r) / (1 + r)`` with
    ``r`` the bias-corrected lag-1 autocorrelation pooled over both sides
    (:func:`kayenta_py.engine.stats.effective_points`, Bayley & Hammersley 1946), the
    judgement -- High, Low or Pass alike -- is reported as ``Pass`` flagged
    ``details["inconclusive"]`` (its reason names both counts) and the
    classification the interval alone gives is kept in ``details["indicated"]``:
    no regression is established, and the pipeline caps the canary's verdict at
    ``marginal`` (its score in the marginal band), so that a person decides and a
    live analysis does not fail fast on it. Samples too small for the interval
    ever to exclude "no change" (:func:`decidable`: 4 points a side or fewer at
    98%) are inconclusive the same way. Test: ``tests/test_fixed_effective_points.py``,
    ``tests/test_wrong_pass.py``.

    Identical samples, or one distinct value overall, pass. When both samples
    are constant but different, Kayenta adds Gaussian noise (sd 1e-5 times the
    constant) and runs the test; the outcome is the same for every noise draw,
    so we decide directly and deterministically: the estimate and both CI ends
    are the difference of the constants.

    Unit invariance: multiplying both samples by any factor (10^k, k in -6..6
    and beyond) never changes the classification, and multiplies the CI and
    estimate by that factor up to rounding (~1e-15 relative). The CI and
    estimate come from :func:`wilcoxon_interval` with
    ``root_tolerance="relative"``: Brent's zeroin runs on ``[0, 1]`` in the
    bracket's coordinate with tolerance 1e-8, i.e. ``1e-8 * (range(canary) +
    range(baseline))`` in the data's unit, instead of R's absolute 1e-4 (which
    is wider than the whole bracket for error ratios of ~1e-4, where zeroin
    stopped at once). No other step has an absolute constant: ties, identical
    and constant samples are exact equality (or within 1e-12 of the data's
    magnitude for a shifted tie); the bound ``tolerance * |estimate|`` is in
    the data's unit and a CI end must clear it by more than
    :data:`DECISION_MARGIN` (1e-10) of the bracket's magnitude, so that a tie
    in exact arithmetic is not decided by rounding; both effect sizes are ratios
    or ranks, compared with their thresholds to within 1e-12 relative.
    R parity holds where R's absolute tolerance 1e-4 is negligible against the
    data: the CI ends are then within 1e-4 of R's, and so is the estimate, or it
    is another point of the plateau where R's statistic is exactly 0 (R's point
    there depends on its tolerance and on rounding). Where Kayenta's decision
    depends on its absolute tolerance (data of magnitude ~1e-4), ours is the
    one Kayenta reaches on the same data expressed in a unit where 1e-4 is
    negligible.

    Non-positive data: with ``meanRatio``, when either side has a negative value
    the ratio of means says nothing about the direction of a change (-5 / -10 is
    0.5 for an increase), so that judgement uses CLES with its neutral thresholds
    (0.5) instead, whatever meanRatio thresholds were set, says so in the reason
    and sets ``details["effect_size_fallback"] = "cles"``. A side whose mean is 0
    on non-negative data (all zeros) keeps Kayenta's rule: the mean ratio is NaN
    and the CI alone decides.
    Tests: ``classifier`` conformance cases; ``tests/test_judges_common.py``;
    ``tests/test_unit_invariance.py``; ``tests/test_r_reference.py``.
    """

    name = "mann-whitney"
    version = "1.0"
    params_model = MannWhitneyParams

    confidence: float
    tolerance: float
    effect_size: EffectSizeParams
    estimate: Literal["r", "kayenta"]
    min_effective: float

    def _setup(self) -> None:
        self.min_effective = self.min_effective or 0.0  # unset outside live analyses: no such rule

    def compare(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
        """Classify with the Mann-Whitney CI, the tolerance and the effect size.

        Evidence too thin to decide is flagged ``details["inconclusive"]`` and never
        passes the canary: a side with fewer than ``min_effective`` effectively
        independent points (whatever the interval says: the classification it
        indicates is kept in ``details["indicated"]`` and the result is a Pass, so no
        regression is established), or a ``Pass`` on samples too small for the
        interval ever to exclude "no change" (``decidable``).
        """
        result = self._classify(pair, baseline, canary, baseline_stats, canary_stats)
        thin: str | None
        if result.classification is Classification.PASS and not decidable(
            baseline.size, canary.size, self.confidence
        ):
            thin = (
                f"{baseline.size} baseline and {canary.size} canary points: too few for a "
                f"{self.confidence:.0%} interval ever to exclude no change"
            )
        else:
            thin = self._too_few_effective(baseline, canary)
        if thin is None:
            return result
        if result.classification is Classification.PASS:
            return dataclasses.replace(
                result,
                reason=f"inconclusive ({thin}): {result.reason}",
                details={**result.details, "inconclusive": thin},
            )
        indicated = result.classification.value
        return dataclasses.replace(
            result,
            classification=Classification.PASS,
            critical=False,
            reason=f"inconclusive ({thin}); the interval alone would say {indicated}: {result.reason}",
            details={**result.details, "inconclusive": thin, "indicated": indicated},
        )

    def _too_few_effective(self, baseline: FloatArray, canary: FloatArray) -> str | None:
        """Why the sides have too few effectively independent points (None: enough, or no rule)."""
        if self.min_effective <= 0 or baseline.size == 0 or canary.size == 0:
            return None
        counts = effective_points(baseline, canary)  # one process under the null: pooled lag-1
        if min(counts) >= self.min_effective:
            return None
        return (
            f"{counts[0]:.1f} baseline and {counts[1]:.1f} canary effectively independent points "
            f"(of {baseline.size} and {canary.size} points, discounted for their autocorrelation); "
            f"at least {self.min_effective:g} a side are needed (min_effective)"
        )

    def _classify(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
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
        details: dict[str, Any] = {"confidence": self.confidence, "tolerance": self.tolerance}
        measure = EffectMeasure(self.effect_size.measure)
        es = self.effect_size.thresholds()
        ratio = mean_ratio(canary, baseline)
        fallback = measure is EffectMeasure.MEAN_RATIO and float(distinct[0]) < 0.0
        if fallback:
            measure = EffectMeasure.CLES
            es = EffectThresholds.neutral(measure)
            details["effect_size_fallback"] = measure.value
        effect = ratio if measure is EffectMeasure.MEAN_RATIO else cles(canary, baseline)
        if np.unique(baseline).size == 1 and np.unique(canary).size == 1:
            shift = float(canary[0] - baseline[0])
            interval = WilcoxonInterval(shift, shift, shift)
            details["constant_samples"] = True
        else:
            interval = wilcoxon_interval(
                canary, baseline, self.confidence, estimate=self.estimate, root_tolerance="relative"
            )
        bound = self.tolerance * abs(interval.estimate)
        # Scale-free strictness: the CI end must clear the bound by more than rounding.
        magnitude = max(abs(float(canary.min() - baseline.max())), abs(float(canary.max() - baseline.min())))
        margin = DECISION_MARGIN * magnitude
        effect_ok_high = math.isnan(effect) or _at_least(effect, es.allowed_increase)
        effect_ok_low = math.isnan(effect) or _at_most(effect, es.allowed_decrease)
        is_high = self.direction.allows_high() and interval.lower - bound > margin and effect_ok_high
        is_low = self.direction.allows_low() and -bound - interval.upper > margin and effect_ok_low
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
            critical = self.critical and (math.isnan(effect) or _at_least(effect, es.critical_increase))
        elif is_low:
            classification = Classification.LOW
            reason = (
                f"canary lower: {ci_text} lies below -{format_number(bound)} "
                f"{bound_text}; {effect_text} <= "
                f"{es.allowed_decrease:g}"
            )
            critical = self.critical and (math.isnan(effect) or _at_most(effect, es.critical_decrease))
        else:
            classification = Classification.PASS
            reason = (
                f"no significant {self._unwanted()}: {ci_text}, estimate "
                f"{format_number(interval.estimate)}; {effect_text}"
            )
        if fallback:
            reason += f" ({NON_POSITIVE_FALLBACK})"
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


def decidable(baseline_size: int, canary_size: int, confidence: float) -> bool:
    """Whether samples of these sizes can ever give a Mann-Whitney interval that excludes 0.

    The most extreme ranking (every canary value above every baseline value, no ties)
    gives z = (mn/2 - 1/2) / sqrt(mn(m + n + 1)/12) with the continuity correction;
    below the two-sided critical value no data can classify High or Low (4 points a
    side at 98%, 3 at 95%). Test: ``tests/test_wrong_pass.py``, ``tests/test_api.py``.
    """
    product = baseline_size * canary_size
    if product == 0:
        return False
    z = (product / 2.0 - 0.5) / math.sqrt(product * (baseline_size + canary_size + 1) / 12.0)
    return bool(z > float(ndtri(1.0 - (1.0 - confidence) / 2.0)))


def _at_least(effect: float, threshold: float) -> bool:
    """``effect >= threshold``, counting a difference within rounding as equal."""
    return effect >= threshold - EFFECT_SLACK * abs(threshold)


def _at_most(effect: float, threshold: float) -> bool:
    """``effect <= threshold``, counting a difference within rounding as equal."""
    return effect <= threshold + EFFECT_SLACK * abs(threshold)
