"""kayenta_py.testing: every built-in plugin keeps its contract, and the checks catch broken plugins.

Every judge the installed entry points declare must have parameters in :data:`JUDGE_PARAMS`, so a new
built-in judge cannot escape the checks.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import kayenta_py
from judges import SequentialHistogramJudge, SequentialRankJudge
from kayenta_py.plugin import (
    Assessment,
    Classification,
    FloatArray,
    Judge,
    KayentaError,
    MetricConfig,
    MetricResult,
    MetricSet,
    MetricSetPair,
    Registry,
    Scope,
    SequentialJudge,
    SummaryStats,
)
from kayenta_py.testing import check_judge, check_sequential_judge, check_source
from metrics_sources import CsvSource, DemoSource

REGISTRY = Registry().load_entry_points()

JUDGE_PARAMS: dict[str, list[dict[str, Any]]] = {
    "mann-whitney": [{}, {"direction": "increase"}, {"direction": "decrease"}, {"confidence": 0.95}],
    "mean-inequality": [{}, {"direction": "increase"}, {"direction": "decrease"}],
    "threshold": [
        {"max_increase": "+10%", "max_decrease": "10%"},
        {"direction": "increase", "max_increase": "+10%"},
        {"direction": "increase", "upper": 150.0, "aggregate": "p99"},
        {"direction": "decrease", "max_decrease": 20.0, "aggregate": "median"},
    ],
    "sequential-count": [{}],
    "sequential-histogram": [{}, {"buckets": [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, math.inf]}],
    "sequential-rank": [{}, {"direction": "decrease"}],
}
"""Judge name -> the parameter sets it is checked with."""

CASES = [(name, params) for name in REGISTRY.judge_names() for params in JUDGE_PARAMS.get(name, [{}])]
T0 = 1_790_000_000.0


def test_every_registered_judge_has_parameters_here() -> None:
    assert set(REGISTRY.judge_names()) <= set(JUDGE_PARAMS), "add the new judge to JUDGE_PARAMS"


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{p}" for n, p in CASES])
def test_built_in_judges_keep_the_contract(name: str, params: dict[str, Any]) -> None:
    cls = REGISTRY.judge_class(name)
    if getattr(cls, "sequential", False):
        check_sequential_judge(cls, **params)
    else:
        check_judge(cls, **params)


def metric(name: str = "p99-latency", kind: str = "latency") -> MetricConfig:
    config = kayenta_py.load_config({"name": "contracts", "metrics": [{"name": name, "kind": kind}]})
    return config.metric(name)


@pytest.mark.parametrize(("name", "kind"), [("p99-latency", "latency"), ("error-ratio", "errors")])
@pytest.mark.parametrize("scope", ["baseline", "canary-regressed"])
def test_demo_source_keeps_the_contract(name: str, kind: str, scope: str) -> None:
    check_source(DemoSource(), metric(name, kind), Scope(scope), T0, T0 + 1800.0, 60.0)


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(("start", "end"), [(T0 + 120.0, T0 + 600.0), (None, None)])
def test_csv_source_keeps_the_contract(tmp_path: Path, start: float | None, end: float | None) -> None:
    wide = ["timestamp,p99-latency,cpu"] + [
        f"{T0 + 60 * i:.0f},{0.2 + 0.01 * i},{'' if i == 3 else 0.5}" for i in range(20)
    ]
    long = ["timestamp,metric,value,region"] + [
        f"{T0 + 60 * i:.0f},p99-latency,{0.3 + 0.01 * i},{region}"
        for i in range(20)
        for region in ("eu", "us")
    ]
    files = {"baseline": write_csv(tmp_path / "b.csv", wide), "canary": write_csv(tmp_path / "c.csv", long)}
    source = CsvSource(files=files)
    for scope in files:
        check_source(source, metric(), Scope(scope), start, end, 60.0)


def fails_only_for(reason: str, check: Callable[[], None]) -> None:
    """Run ``check``; an AssertionError for a reason other than ``reason`` is an error (not the known one)."""
    try:
        check()
    except AssertionError as exc:
        if reason not in str(exc):
            raise RuntimeError(f"failed for another reason: {exc}") from exc
        raise


def test_sequential_histogram_with_direction_decrease_keeps_the_contract() -> None:
    """It once ignored direction (always testing for a slower canary): a 3x faster canary passed."""
    check_sequential_judge(SequentialHistogramJudge, direction="decrease")
    check_sequential_judge(SequentialHistogramJudge, direction="either")


def test_csv_source_with_an_infinite_cell_keeps_the_contract(tmp_path: Path) -> None:
    """An infinite value is data (an overflowing quantile); judges drop it, the source keeps it."""
    path = write_csv(tmp_path / "b.csv", ["timestamp,p99-latency", f"{T0:.0f},0.2", f"{T0 + 60:.0f},+Inf"])
    check_source(CsvSource(files={"baseline": path}), metric(), Scope("baseline"), None, None, None)


# ---------------------------------------------------------------- broken plugins are caught


class MeanJudge(Judge):
    """A minimal correct judge: High/Low past 10% of the baseline mean, in the allowed direction."""

    name = "test-mean"

    def compare(
        self,
        pair: MetricSetPair,
        baseline: FloatArray,
        canary: FloatArray,
        baseline_stats: SummaryStats,
        canary_stats: SummaryStats,
    ) -> MetricResult:
        ratio = canary_stats.mean / baseline_stats.mean if baseline_stats.mean else 1.0
        if ratio > 1.1 and self.direction.allows_high():
            found = Classification.HIGH
        elif ratio < 0.9 and self.direction.allows_low():
            found = Classification.LOW
        else:
            found = Classification.PASS
        return self.result(pair, found, f"mean ratio {ratio:.3g}", baseline_stats, canary_stats)


class PassOnEmpty(MeanJudge):
    name = "test-pass-on-empty"

    def no_data(self, pair: MetricSetPair, baseline: SummaryStats, canary: SummaryStats) -> MetricResult:
        return self.result(pair, Classification.PASS, "nothing to see", baseline, canary)


class RaisesOnConstants(MeanJudge):
    name = "test-raises"

    def compare(
        self, pair: MetricSetPair, baseline: FloatArray, canary: FloatArray, *stats: Any
    ) -> MetricResult:
        spread = float(np.std(baseline))
        if spread == 0.0:
            raise ZeroDivisionError("float division by zero")
        return super().compare(pair, baseline, canary, *stats)


class IgnoresDirection(MeanJudge):
    name = "test-ignores-direction"

    def compare(
        self, pair: MetricSetPair, baseline: FloatArray, canary: FloatArray, *stats: Any
    ) -> MetricResult:
        result = super().compare(pair, baseline, canary, *stats)
        low = float(np.mean(canary)) < 0.9 * float(np.mean(baseline))
        return result if not low else self.result(pair, Classification.LOW, "lower", *stats)


class WrongName(MeanJudge):
    name = "test-wrong-name"

    def judge(self, pair: MetricSetPair) -> MetricResult:
        result = super().judge(pair)
        return MetricResult(
            "another-metric", result.classification, result.reason, result.baseline, result.canary, "x"
        )


def test_the_minimal_judge_keeps_the_contract() -> None:
    check_judge(MeanJudge)
    check_judge(MeanJudge, direction="increase")


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (PassOnEmpty, {}, r"an empty baseline: classified Pass"),
        (RaisesOnConstants, {}, r"equal constants: judge\(pair\) raised ZeroDivisionError"),
        (
            IgnoresDirection,
            {"direction": "increase"},
            r"a large decrease: classified Low with direction increase",
        ),
        (WrongName, {}, r"identical samples: judge\(pair\) returned .*not a MetricResult of metric"),
        (SequentialRankJudge, {}, r"not a kayenta_py.plugin.Judge subclass"),
    ],
)
def test_check_judge_catches_a_broken_judge(cls: type[Judge], params: dict[str, Any], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_judge(cls, **params)


def test_check_judge_names_the_plugin_and_a_critical_metric_without_data() -> None:
    class NotCritical(MeanJudge):
        name = "test-not-critical"

        def no_data(self, pair: MetricSetPair, baseline: SummaryStats, canary: SummaryStats) -> MetricResult:
            return dataclasses.replace(super().no_data(pair, baseline, canary), critical=False)

    with pytest.raises(AssertionError, match=r"'test-not-critical'.*an empty baseline, critical=True"):
        check_judge(NotCritical)


class SetState(SequentialRankJudge):
    name = "test-set-state"

    def new_state(self, alpha: float) -> dict[str, Any]:
        return {**super().new_state(alpha), "seen": set()}


class NanState(SequentialRankJudge):
    name = "test-nan-state"

    def new_state(self, alpha: float) -> dict[str, Any]:
        return {**super().new_state(alpha), "last": math.nan}


class IntKeys(SequentialRankJudge):
    """Keeps a count under an int key: JSON turns it into "1", and the resumed state forgets it."""

    name = "test-int-keys"

    def update(self, state: dict[str, Any], baseline: Any, canary: Any) -> dict[str, Any]:
        state = super().update(state, baseline, canary)
        counts = state.setdefault("counts", {})
        counts[1] = counts.get(1, 0) + len(baseline)
        return state

    def assess(self, state: Mapping[str, Any]) -> Assessment:
        found = super().assess(state)
        return Assessment(**{**vars(found), "observations": int(state.get("counts", {}).get(1, 0))})


class AlwaysFails(SequentialRankJudge):
    name = "test-always-fails"

    def assess(self, state: Mapping[str, Any]) -> Assessment:
        found = super().assess(state)
        return Assessment(**{**vars(found), "p_regression": 0.01 if state["n"] else 1.0})


class MatrixShape(SequentialRankJudge):
    name = "test-matrix"
    batch_shape = "matrix"  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (SetState, r"'test-set-state'.*new_state: json.dumps\(state\) \(strict\) raised TypeError"),
        (NanState, r"json.dumps\(state\) \(strict\) raised ValueError"),
        (IntKeys, r"a state passed through JSON assesses otherwise"),
        (AlwaysFails, r"A/A streams: 5 of 5 failed"),
        (MatrixShape, r"batch_shape 'matrix' is none of the engine's"),
    ],
)
def test_check_sequential_judge_catches_a_broken_judge(cls: type[SequentialJudge], message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_sequential_judge(cls)


def _sets(
    source: DemoSource, metric: MetricConfig, scope: Scope | str, start: Any, end: Any, step: Any
) -> list[MetricSet]:
    return DemoSource.fetch(source, metric, scope, start, end, step)


class LateDemo(DemoSource):
    """Returns its points ten steps late: timestamps past the window's end."""

    def fetch(
        self, metric: MetricConfig, scope: Any, start: Any = None, end: Any = None, step: Any = None
    ) -> Any:
        sets = _sets(self, metric, scope, start, end, step)
        return [MetricSet(s.name, s.values, s.tags, np.asarray(s.timestamps) + 10 * step) for s in sets]


class ChokesOnQuotes(DemoSource):
    def fetch(
        self, metric: MetricConfig, scope: Any, start: Any = None, end: Any = None, step: Any = None
    ) -> Any:
        if '"' in str(scope):
            raise ValueError("unbalanced quotes in query")
        return _sets(self, metric, scope, start, end, step)


class Drifting(DemoSource):
    def __init__(self) -> None:
        self.calls = 0

    def fetch(
        self, metric: MetricConfig, scope: Any, start: Any = None, end: Any = None, step: Any = None
    ) -> Any:
        self.calls += 1
        sets = _sets(self, metric, scope, start, end, step)
        return [MetricSet(s.name, s.values * self.calls, s.tags, s.timestamps) for s in sets]


class NoSource:
    def query(self, text: str) -> list[MetricSet]:
        return []


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (LateDemo(), r"LateDemo.*timestamp\(s\) outside \["),
        (
            ChokesOnQuotes(),
            r"a hostile scope value: fetch raised ValueError.*expected data or a KayentaError",
        ),
        (Drifting(), r"fetching again: the same fetch returned other data"),
        (NoSource(), r"not a kayenta_py.plugin.MetricsSource"),
    ],
)
def test_check_source_catches_a_broken_source(source: Any, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_source(source, metric(), Scope("baseline"), T0, T0 + 1800.0, 60.0)


def test_check_source_accepts_a_refusal_of_a_hostile_scope() -> None:
    class Strict(DemoSource):
        def fetch(
            self, metric: MetricConfig, scope: Any, start: Any = None, end: Any = None, step: Any = None
        ) -> Any:
            if any(c in scope.scope + scope.location + "".join(scope.params.values()) for c in '"{}\\\n'):
                raise KayentaError("scope values may not hold quotes, braces, backslashes or newlines")
            return _sets(self, metric, scope, start, end, step)

    check_source(Strict(), metric(), Scope("baseline"), T0, T0 + 1800.0, 60.0)
