"""Pairing baseline and canary series: scope labels, one series per side, pair_on / pair_ignoring.

A natural query such as ``rate(cpu{version="${scope}"}[2m])`` returns series labelled
with the side's own scope; they must pair, and a series that cannot pair must say so.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kayenta_py import Classification, MetricSet, Scope, Verdict, judge, load_config, pair_metric_sets

CONFIG: dict[str, Any] = {
    "name": "pairing",
    "metrics": [{"name": "cpu", "kind": "saturation", "query": 'rate(cpu{version="${scope}"}[2m])'}],
}


def series(values: Any, **tags: str) -> MetricSet:
    return MetricSet("cpu", np.asarray(values, dtype=float), tags)


def healthy_and_regressed(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0.4, 0.02, 60), rng.normal(0.95, 0.02, 60)


def test_series_labelled_with_their_own_scope_pair_and_a_regression_fails() -> None:
    base, worse = healthy_and_regressed()
    result = judge(
        CONFIG,
        {"cpu": [series(base, version="v1", pod="a")]},
        {"cpu": [series(worse, version="v2", pod="a")]},
        baseline_scope="v1",
        canary_scope="v2",
    )
    assert result.verdict is Verdict.FAIL
    cpu = result.metric("cpu")
    assert cpu.classification is Classification.HIGH
    assert cpu.tags == {"pod": "a"}  # the scope label does not key the pair
    assert result.warnings == ()


def test_one_series_per_side_pairs_whatever_its_labels() -> None:
    base, worse = healthy_and_regressed(2)
    result = judge(CONFIG, {"cpu": [series(base, version="v1")]}, {"cpu": [series(worse, version="v2")]})
    assert result.metric("cpu").classification is Classification.HIGH
    assert result.verdict is Verdict.FAIL


def test_several_series_pair_by_labels_without_the_scope_value() -> None:
    config = load_config(CONFIG)
    rng = np.random.default_rng(3)
    baseline = {"cpu": [series(rng.normal(0.4, 0.02, 30), version="v1", pod=p) for p in "ab"]}
    canary = {"cpu": [series(rng.normal(0.4, 0.02, 30), version="v2", pod=p) for p in "ab"]}
    pairs = pair_metric_sets(config, baseline, canary, scopes=(Scope("v1"), Scope("v2")))
    assert sorted(p.tags["pod"] for p in pairs) == ["a", "b"]
    assert all(len(p.baseline) and len(p.canary) and p.warning is None for p in pairs)
    # The location is the side's own too (both sides may share it: dropping it on both is consistent).
    located = pair_metric_sets(
        config,
        {"cpu": [series(np.ones(3), region="eu", pod=p) for p in "ab"]},
        {"cpu": [series(np.ones(3), region="us", pod=p) for p in "ab"]},
        scopes=(Scope("v1", "eu"), Scope("v2", "us")),
    )
    assert sorted(p.tags["pod"] for p in located) == ["a", "b"]


def test_series_that_cannot_pair_are_warned_about_and_never_pass() -> None:
    rng = np.random.default_rng(4)
    baseline = {"cpu": [series(rng.normal(0.4, 0.02, 30), pod=p) for p in "ab"]}
    canary = {"cpu": [series(rng.normal(0.4, 0.02, 30), pod=p) for p in "cd"]}
    result = judge(CONFIG, baseline, canary)
    assert result.verdict is not Verdict.PASS
    assert {m.classification for m in result.metrics} == {Classification.NODATA_FAIL_METRIC}
    assert len(result.warnings) == 4
    assert all("has no" in w and "pair_on" in w for w in result.warnings)
    assert 'pod="c"' in result.reason and "warning:" in result.reason


@pytest.mark.parametrize(
    ("option", "expected"),
    [({"pair_on": ["pod"]}, ["a", "b"]), ({"pair_ignoring": ["instance"]}, ["a", "b"])],
)
def test_pair_on_and_pair_ignoring_choose_the_labels(option: dict[str, Any], expected: list[str]) -> None:
    config = load_config({"metrics": [{"name": "cpu", "kind": "saturation", **option}]})
    baseline = {"cpu": [series(np.ones(3), pod=p, instance=f"10.0.0.{i}") for i, p in enumerate("ab")]}
    canary = {"cpu": [series(np.ones(3), pod=p, instance=f"10.0.1.{i}") for i, p in enumerate("ab")]}
    pairs = pair_metric_sets(config, baseline, canary)
    assert sorted(p.tags["pod"] for p in pairs) == expected
    assert all(p.warning is None and len(p.baseline) and len(p.canary) for p in pairs)


def test_pair_on_with_colliding_series_keeps_the_first_and_says_so() -> None:
    config = load_config({"metrics": [{"name": "cpu", "kind": "saturation", "pair_on": []}]})
    baseline = {"cpu": [series(np.ones(3), pod=p) for p in "ab"]}
    canary = {"cpu": [series(np.ones(3), pod="a")]}
    (pair,) = pair_metric_sets(config, baseline, canary)
    assert pair.warning is not None and "only the first is judged" in pair.warning


def test_pair_on_and_pair_ignoring_together_are_refused() -> None:
    with pytest.raises(Exception, match=r"metrics\[0\]\.pair_ignoring"):
        load_config({"metrics": [{"name": "cpu", "pair_on": ["pod"], "pair_ignoring": ["x"]}]})
