"""Kayenta's weighted-sum scoring: group scores, summary score, verdict and its reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kayenta_py.config.model import effective_group_weight
from kayenta_py.model.formatting import format_number
from kayenta_py.model.types import Classification, GroupScore, MetricResult, Thresholds, Verdict

NODATA_THRESHOLD = 50.0  # percent of results

# Classifications in a group score's denominator. Kayenta leaves Error out; we count
# it as a failure, since a metric that could not be judged must never help a pass.
_DENOMINATOR = (
    Classification.PASS,
    Classification.HIGH,
    Classification.LOW,
    Classification.NODATA_FAIL_METRIC,
    Classification.ERROR,
)


@dataclass(frozen=True)
class Score:
    """A summary score with its group scores and, when forced to 0, why.

    A forced 0 (a critical failure, missing data) fails the canary whatever the thresholds.
    """

    score: float
    groups: tuple[GroupScore, ...]
    reason: str | None

    def verdict(self, thresholds: Thresholds) -> Verdict:
        """Return the verdict: fail when the score was forced to 0, else by the thresholds."""
        if self.reason is not None:
            return Verdict.FAIL
        return thresholds.classify(self.score)


def score_results(results: Sequence[MetricResult], group_weights: Mapping[str, float]) -> Score:
    """Score metric results as Kayenta's WeightedSumScorer does.

    Notes
    -----
    A group scores 100 * Pass / (Pass + High + Low + NodataFailMetric), and 0
    with ``no_data`` when nothing in it counts (only Nodata); such a group
    counts as 100 in the summary. Groups without a weight share equally what
    the configured weights leave of 100. A critical result that is not Pass,
    or Nodata on 50% or more of the results, makes the summary 0. Muted
    metrics are reported but not scored. The summary is rounded to 2 decimals.
    Test: ``scorer`` conformance cases; ``tests/test_scoring.py``.
    """
    scored = [r for r in results if not r.muted]
    labels: dict[str, list[Classification]] = {}
    for result in scored:
        for group in result.groups:
            labels.setdefault(group, []).append(result.classification)
    groups = []
    for name, classes in labels.items():
        counts = Counter(c.value for c in classes)
        denominator = sum(counts[c.value] for c in _DENOMINATOR)
        no_data = denominator == 0
        value = 100.0 * counts[Classification.PASS.value] / denominator if denominator else 0.0
        weight = effective_group_weight(group_weights, labels, name)
        groups.append(GroupScore(name, value, no_data, weight, dict(counts)))

    critical = [r for r in scored if r.critical and r.classification is not Classification.PASS]
    if critical:
        names = ", ".join(r.label for r in critical)
        return Score(0.0, tuple(groups), f"critical metric failed ({names}): {critical[0].reason}")
    nodata = sum(1 for r in scored if r.classification is Classification.NODATA)
    if scored and 100.0 * nodata / len(scored) >= NODATA_THRESHOLD:
        return Score(
            0.0,
            tuple(groups),
            f"{nodata} of {len(scored)} metrics returned no data ({NODATA_THRESHOLD:g}% or more)",
        )
    if not scored:
        return Score(0.0, tuple(groups), "no metric was scored (all are muted or none were given)")
    total = sum((100.0 if g.no_data else g.score) * g.weight / 100.0 for g in groups)
    return Score(round(total, 2), tuple(groups), None)


def inconclusive_reason(lacking: Sequence[str]) -> str:
    """Explain a marginal verdict of thin evidence: each metric with what it lacked."""
    return (
        "marginal: inconclusive, a person decides; no regression established, but the evidence is too "
        f"thin for a pass in {'; '.join(lacking)}"
    )


def verdict_reason(
    score: Score, verdict: Verdict, thresholds: Thresholds, results: Sequence[MetricResult]
) -> str:
    """Explain a verdict in one sentence: the score against the thresholds and what failed."""
    if score.reason is not None:
        head = f"{verdict.value}: score {format_number(score.score)} because {score.reason}"
    elif verdict is Verdict.PASS:
        head = f"pass: score {format_number(score.score)} >= pass threshold {thresholds.pass_:g}"
    elif verdict is Verdict.MARGINAL:
        head = (
            f"marginal: score {format_number(score.score)} is below the pass threshold "
            f"{thresholds.pass_:g} and above the marginal threshold {thresholds.marginal:g}"
        )
    else:
        head = f"fail: score {format_number(score.score)} <= marginal threshold {thresholds.marginal:g}"
    failing = [
        f"{r.label} {r.classification.value}"
        for r in results
        if not r.muted and r.classification is not Classification.PASS
    ]
    if failing:
        shown = ", ".join(failing[:10]) + (f" and {len(failing) - 10} more" if len(failing) > 10 else "")
        head += f"; not passing: {shown}"
    return head
