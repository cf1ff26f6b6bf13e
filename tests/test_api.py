"""The public Python API: input shapes, pairing, to_dict() and to_kayenta()."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

import kayenta_py
from kayenta_py import Classification, KayentaError, MetricSet, Verdict

CONFIG: dict[str, Any] = {
    "name": "api",
    "groups": {"latency": 70, "errors": 30},
    "metrics": [
        {"name": "latency", "kind": "latency"},
        {"name": "errors", "kind": "errors", "critical": False},
    ],
}


def sides(shift: float = 1.0) -> tuple[dict[str, Any], dict[str, Any]]:
    rng = np.random.default_rng(5)
    baseline = {"latency": rng.lognormal(0, 0.2, 80), "errors": rng.gamma(4, 0.001, 80)}
    canary = {"latency": rng.lognormal(0, 0.2, 80) * shift, "errors": rng.gamma(4, 0.001, 80)}
    return baseline, canary


def test_arrays_and_dataframes_give_the_same_result() -> None:
    baseline, canary = sides(shift=1.5)
    from_arrays = kayenta_py.judge(CONFIG, baseline, canary)
    from_frames = kayenta_py.judge(CONFIG, pd.DataFrame(baseline), pd.DataFrame(canary))
    assert from_arrays.to_dict() == from_frames.to_dict()
    assert from_arrays.verdict is Verdict.FAIL
    assert from_arrays.metric("latency").classification is Classification.HIGH
    assert from_arrays.score == 30.0  # latency group 0 x 70% + errors group 100 x 30%


def test_to_dict_has_every_documented_field() -> None:
    baseline, canary = sides()
    document = kayenta_py.judge(CONFIG, baseline, canary, thresholds={"pass": 90, "marginal": 50}).to_dict()
    json.dumps(document, allow_nan=False)
    assert {"verdict", "score", "reason", "thresholds", "groups", "metrics"} <= set(document)
    assert document["thresholds"] == {"pass": 90, "marginal": 50}
    assert [g["name"] for g in document["groups"]] == ["latency", "errors"]
    metric = document["metrics"][0]
    assert {
        "name",
        "classification",
        "reason",
        "critical",
        "groups",
        "ci",
        "estimate",
        "effect_size",
        "mean_ratio",
        "baseline",
        "canary",
        "details",
    } <= set(metric)
    assert len(metric["ci"]) == 2 and metric["ci"][0] <= metric["ci"][1]
    assert set(metric["canary"]) == {"min", "max", "mean", "std", "count"}


def test_to_kayenta_is_a_canary_judge_result() -> None:
    baseline, canary = sides(shift=1.5)
    result = kayenta_py.judge(CONFIG, baseline, canary).to_kayenta()
    assert result["judgeName"] == "kayenta-py"
    assert result["score"]["classification"] == "Fail"
    assert result["score"]["score"] == 30.0 and result["score"]["classificationReason"]
    latency = result["results"][0]
    assert latency["name"] == "latency" and latency["classification"] == "High"
    assert latency["classificationReason"] and latency["groups"] == ["latency"]
    assert latency["controlMetadata"]["stats"]["count"] == 80
    assert latency["experimentMetadata"]["stats"]["mean"] == pytest.approx(float(np.mean(canary["latency"])))
    assert latency["resultMetadata"]["ratio"] == pytest.approx(
        float(np.mean(canary["latency"]) / np.mean(baseline["latency"]))
    )
    assert latency["critical"] is False and latency["muted"] is False
    assert {g["name"] for g in result["groupScores"]} == {"latency", "errors"}


def test_a_configured_metric_without_data_is_nodata_never_dropped() -> None:
    baseline, canary = sides()
    del baseline["errors"], canary["errors"]
    result = kayenta_py.judge(CONFIG, baseline, canary)
    # A native metric must have data unless it opts out: the missing metric fails its group.
    assert result.metric("errors").classification is Classification.NODATA_FAIL_METRIC
    must_have = "no data for the baseline and canary, and the metric must have data"
    assert result.metric("errors").reason == must_have
    assert result.verdict is not kayenta_py.Verdict.PASS
    assert any("no metric 'errors'" in w for w in result.warnings)
    opted_out = {**CONFIG, "metrics": [{**m, "must_have_data": False} for m in CONFIG["metrics"]]}
    result = kayenta_py.judge(opted_out, baseline, canary)
    assert result.metric("errors").classification is Classification.NODATA
    assert result.metric("errors").reason == "no data for the baseline and canary"


def test_series_are_paired_by_tags_and_one_sided_series_kept() -> None:
    rng = np.random.default_rng(9)
    east = {"region": "east"}
    baseline = {"latency": [MetricSet("latency", rng.normal(10, 1, 50), east)]}
    canary = {
        "latency": [
            MetricSet("latency", rng.normal(10, 1, 50), east),
            MetricSet("latency", rng.normal(10, 1, 50), {"region": "west"}),
        ]
    }
    config = {"name": "t", "metrics": [{"name": "latency", "kind": "latency"}]}
    result = kayenta_py.judge(config, baseline, canary)
    by_region = {m.tags["region"]: m for m in result.metrics}
    assert by_region["east"].classification is Classification.PASS
    assert by_region["west"].classification is Classification.NODATA_FAIL_METRIC
    assert by_region["west"].label == "latency{region=west}"
    assert result.verdict is not kayenta_py.Verdict.PASS
    assert any('region="west"' in w and "no baseline series" in w for w in result.warnings)


def test_unconfigured_data_is_a_warning_and_bad_values_an_error() -> None:
    baseline, canary = sides()
    baseline["extra"] = [1.0, 2.0]
    result = kayenta_py.judge(CONFIG, baseline, canary)
    assert result.warnings == ("baseline data has metric 'extra', which the config does not name; ignored",)
    with pytest.raises(KayentaError, match="canary: metric 'latency': values are not numbers"):
        kayenta_py.judge(CONFIG, baseline, {"latency": ["fast", "slow"]})
    with pytest.raises(KayentaError, match=r"thresholds\.pas: unknown field; did you mean pass\?"):
        kayenta_py.judge(CONFIG, baseline, canary, thresholds={"pas": 90})


def test_a_crashing_judge_gives_an_error_result_not_a_pass() -> None:
    class Exploding(kayenta_py.Judge):
        name = "exploding"

        def compare(self, *args: Any) -> kayenta_py.MetricResult:
            raise RuntimeError("boom")

    registry = kayenta_py.Registry().load_entry_points()
    registry.register_judge(Exploding)
    config = kayenta_py.load_config(
        {"name": "t", "metrics": [{"name": "m", "judge": {"type": "exploding"}}]}, registry=registry
    )
    result = kayenta_py.judge(config, {"m": [1.0, 2.0]}, {"m": [1.0, 3.0]}, registry=registry)
    assert result.metric("m").classification is Classification.ERROR
    assert "boom" in result.metric("m").reason
    assert result.verdict is Verdict.FAIL


def test_inf_values_are_dropped_and_nan_ratio_is_null_in_json() -> None:
    config = {"name": "t", "metrics": [{"name": "m", "kind": "latency"}]}
    result = kayenta_py.judge(config, {"m": [0.0, 0.0, 0.0, math.inf]}, {"m": [5.0, 5.1, 5.2]})
    metric = result.metric("m")
    assert metric.baseline.count == 3
    assert math.isnan(metric.mean_ratio)
    assert metric.to_dict()["mean_ratio"] is None
    assert metric.details["dropped_infinite"] == {"baseline": 1, "canary": 0}
    assert "dropped infinite values: 1 from the baseline" in metric.reason


def test_summary_statistics_of_huge_values_do_not_overflow() -> None:
    stats = kayenta_py.summarize([1e300, 1.2e300, 0.8e300])
    assert stats.mean == pytest.approx(1e300) and stats.std == pytest.approx(0.2e300)
    assert kayenta_py.summarize([4.0]).std == 0.0


@pytest.mark.parametrize("points", [2, 3, 4])
def test_samples_too_small_to_decide_are_inconclusive_not_pass(points: int) -> None:
    """At 98% no Mann-Whitney interval on 4 or fewer points a side can be significant, so a
    doubled latency whose samples overlap passes. The metric says so; the canary ends marginal,
    its score in the marginal band (a client reading only the score agrees)."""
    rng = np.random.default_rng(points)
    errors = rng.gamma(4, 0.001, 80)
    baseline = {"latency": np.linspace(1.0, 5.0, points), "errors": errors}
    canary = {"latency": np.linspace(1.0, 5.0, points) * 2.0, "errors": errors}
    result = kayenta_py.judge(CONFIG, baseline, canary)
    latency = result.metric("latency")
    assert latency.classification is Classification.PASS
    assert "too few" in latency.details["inconclusive"]
    assert result.verdict is Verdict.MARGINAL
    assert result.score is not None and 75 < result.score < 95
    assert "inconclusive" in result.reason and "latency" in result.reason
    # Five points a side can decide: identical healthy samples pass without the flag.
    five = {"latency": np.linspace(1.0, 5.0, 5), "errors": errors}
    healthy = kayenta_py.judge(CONFIG, five, five)
    assert healthy.verdict is Verdict.PASS and "inconclusive" not in healthy.metric("latency").details
