"""Judge ``mean-inequality``: Kayenta's MeanInequalityClassifier."""

from __future__ import annotations

from kayenta_py import (
    Classification,
    FloatArray,
    Judge,
    MetricResult,
    MetricSetPair,
    SummaryStats,
    format_number,
    mean_ratio,
)


class MeanInequalityJudge(Judge):
    """High when the canary mean is above the baseline mean, Low when below.

    No statistics: a baseline for comparison and Kayenta parity only, never a
    sensible production judge (any difference fails). It takes only the common
    parameters. Test: ``mean_inequality_*`` conformance cases.
    """

    name = "mean-inequality"
    version = "1.0"

    def compare(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
        """Compare the two means."""
        b, c = baseline_stats.mean, canary_stats.mean
        ratio = mean_ratio(canary, baseline)
        text = f"canary mean {format_number(c)} vs baseline mean {format_number(b)}"
        if c > b and self.direction.allows_high():
            classification, reason = Classification.HIGH, f"canary higher: {text}"
        elif c < b and self.direction.allows_low():
            classification, reason = Classification.LOW, f"canary lower: {text}"
        else:
            classification, reason = Classification.PASS, f"no unwanted change: {text}"
        critical = self.critical and classification is not Classification.PASS
        return self.result(
            pair,
            classification,
            reason,
            baseline_stats,
            canary_stats,
            critical=critical,
            estimate=c - b,
            mean_ratio=ratio,
        )
