"""Scoring beyond Kayenta's vectors: weights, muted and Error metrics, verdicts and reasons."""

from __future__ import annotations

import pytest

from kayenta_py import (
    Classification,
    MetricResult,
    SummaryStats,
    Thresholds,
    Verdict,
    score_results,
)
from kayenta_py.engine.scoring import verdict_reason

EMPTY = SummaryStats(0.0, 0.0, 0.0, 0.0, 0)


def result(name: str, group: str, label: str, *, critical: bool = False, muted: bool = False) -> MetricResult:
    return MetricResult(
        name=name,
        classification=Classification(label),
        reason=f"{name} is {label}",
        baseline=EMPTY,
        canary=EMPTY,
        judge="test",
        critical=critical,
        muted=muted,
        groups=(group,),
    )


def test_unweighted_groups_share_what_the_weights_leave() -> None:
    results = [result("a", "g1", "Pass"), result("b", "g2", "High"), result("c", "g3", "Pass")]
    score = score_results(results, {"g1": 50})
    weights = {g.name: g.weight for g in score.groups}
    assert weights == {"g1": 50, "g2": 25, "g3": 25}
    assert score.score == 75.0


def test_nodata_fail_metric_counts_against_its_group() -> None:
    score = score_results([result("a", "g", "Pass"), result("b", "g", "NodataFailMetric")], {})
    assert score.score == 50.0


def test_error_counts_as_a_failure_not_as_nothing() -> None:
    score = score_results([result("a", "g", "Pass"), result("b", "g", "Error")], {})
    assert score.score == 50.0


def test_muted_metrics_are_not_scored() -> None:
    score = score_results([result("a", "g", "Pass"), result("b", "g", "High", critical=True, muted=True)], {})
    assert score.score == 100.0 and score.reason is None


def test_critical_failure_names_the_metric() -> None:
    score = score_results([result("a", "g", "Pass"), result("err", "g", "High", critical=True)], {})
    assert score.score == 0.0
    assert score.reason is not None and "err" in score.reason


def test_rounding_to_two_decimals() -> None:
    score = score_results([result("a", "g", "Pass")] * 2 + [result("b", "g", "High")], {})
    assert score.score == 66.67


@pytest.mark.parametrize(
    ("score", "verdict"),
    [
        (100.0, Verdict.PASS),
        (95.0, Verdict.PASS),
        (94.99, Verdict.MARGINAL),
        (75.01, Verdict.MARGINAL),
        (75.0, Verdict.FAIL),
        (0.0, Verdict.FAIL),
    ],
)
def test_thresholds_classify_like_kayenta(score: float, verdict: Verdict) -> None:
    assert Thresholds(95, 75).classify(score) is verdict


def test_invalid_thresholds() -> None:
    with pytest.raises(ValueError, match=r"thresholds\.marginal: 80 is above thresholds\.pass"):
        Thresholds(70, 80)
    with pytest.raises(ValueError, match=r"thresholds\.pass: 120 is not between 0 and 100"):
        Thresholds(120, 75)


def test_reason_explains_the_verdict() -> None:
    results = [result("a", "g", "Pass"), result("lat", "g", "High")]
    score = score_results(results, {})
    text = verdict_reason(score, Thresholds().classify(score.score), Thresholds(), results)
    assert text.startswith("fail: score 50 <= marginal threshold 75")
    assert "lat High" in text
