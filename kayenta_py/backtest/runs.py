"""Backtests: judge labelled past canaries again under other judge parameters.

A backtest replays canaries whose truth is known (a label: ``regression`` or
``healthy``; for stored analyses, by default their past verdict) under a canary
config and judge parameter overrides, and counts verdicts against labels in a
confusion table: rows are the labels, columns the verdicts ``fail``, ``pass``
and ``marginal``. The false-fail rate is the share of healthy canaries that
failed; the missed-regression rate the share of regressions that did not fail.
A marginal verdict counts as *not failed* in both rates.

Canaries come from CSV directories (one subdirectory per canary holding
``baseline.csv``, ``canary.csv`` and an optional ``label`` file, or a
``labels.csv`` at the root), or from the service's store (every completed
analysis' last interval, whose raw metric pairs are kept for this).
:func:`generate_labelled_canaries` writes realistic labelled CSV canaries for
tests and notebooks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from kayenta_py.backtest.overrides import (
    apply_overrides,
    describe_params,
)
from kayenta_py.config.model import DEFAULT_JUDGE, CanaryConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.pipeline import judge, judge_pairs
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.types import MetricSet, MetricSetPair, Thresholds, Verdict

Label = Literal["regression", "healthy"]
Outcome = Literal["failed", "passed", "marginal"]
LABELS: tuple[Label, ...] = ("regression", "healthy")
OUTCOMES: tuple[Outcome, ...] = ("failed", "passed", "marginal")
LABELS_FILE = "labels.csv"
LABEL_FILE = "label"
MARGINAL_NOTE = "marginal verdicts count as not failed in both rates"

BacktestProgress = Callable[[int], None]
"""Called with the number of canaries judged since the previous call."""


# ---------------------------------------------------------------- canaries and results


@dataclass(frozen=True)
class LabelledCanary:
    """A past canary to judge again: its metric data, its label and where it came from.

    ``config`` and ``thresholds`` are what it was judged with (stored analyses),
    or None when the backtest's own config applies (CSV canaries). A stored analysis brings
    the ``pairs`` its last interval judged: under its own config they are judged again as they
    are; under another config (whose pairing rules may differ) their series are paired again.
    CSV canaries bring ``baseline`` and ``canary`` series, paired as :func:`judge` does.
    """

    def series(self) -> tuple[dict[str, list[MetricSet]], dict[str, list[MetricSet]]]:
        """Return the baseline's and the canary's series by metric (from the pairs, if any)."""
        if self.pairs is None:
            return _lists(self.baseline), _lists(self.canary)
        baseline: dict[str, list[MetricSet]] = {}
        canary: dict[str, list[MetricSet]] = {}
        for pair in self.pairs:
            baseline.setdefault(pair.name, []).append(pair.baseline)
            canary.setdefault(pair.name, []).append(pair.canary)
        return baseline, canary

    name: str
    label: Label
    baseline: Mapping[str, Sequence[MetricSet]]
    canary: Mapping[str, Sequence[MetricSet]]
    origin: str
    config: CanaryConfig | None = None
    thresholds: Thresholds | None = None
    past_verdict: str | None = None
    pairs: tuple[MetricSetPair, ...] | None = None


@dataclass(frozen=True)
class CanaryOutcome:
    """One canary's label and the verdict it gets under a setting."""

    name: str
    label: Label
    verdict: Verdict
    score: float | None

    @property
    def outcome(self) -> Outcome:
        """Return the confusion table's column: failed, passed or marginal."""
        if self.verdict is Verdict.FAIL:
            return "failed"
        if self.verdict is Verdict.MARGINAL:
            return "marginal"
        return "passed"


@dataclass(frozen=True)
class Confusion:
    """Counts of verdicts (columns) per label (rows)."""

    counts: Mapping[Label, Mapping[Outcome, int]]

    @classmethod
    def of(cls, outcomes: Iterable[CanaryOutcome]) -> Confusion:
        """Count outcomes by label and verdict."""
        counts: dict[Label, dict[Outcome, int]] = {label: dict.fromkeys(OUTCOMES, 0) for label in LABELS}
        for item in outcomes:
            counts[item.label][item.outcome] += 1
        return cls(MappingProxyType({k: MappingProxyType(v) for k, v in counts.items()}))

    def total(self, label: Label) -> int:
        """Return how many canaries carry ``label``."""
        return sum(self.counts[label].values())

    @property
    def false_fail_rate(self) -> float | None:
        """Return the share of healthy canaries that failed (None without healthy canaries)."""
        total = self.total("healthy")
        return self.counts["healthy"]["failed"] / total if total else None

    @property
    def missed_regression_rate(self) -> float | None:
        """Return the share of regressions that did not fail (passed or marginal), or None."""
        total = self.total("regression")
        return (total - self.counts["regression"]["failed"]) / total if total else None

    def to_dict(self) -> dict[str, dict[str, int]]:
        """Return the counts as ``{label: {outcome: n}}``."""
        return {label: {outcome: row[outcome] for outcome in OUTCOMES} for label, row in self.counts.items()}


@dataclass(frozen=True)
class SettingResult:
    """The outcome of a backtest under one parameter setting."""

    params: Mapping[str, Any]
    outcomes: tuple[CanaryOutcome, ...]
    confusion: Confusion = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "confusion", Confusion.of(self.outcomes))

    @property
    def label(self) -> str:
        """Return the setting as ``key=value, ...`` (or a note that the config is used as is)."""
        return describe_params(self.params)

    def to_dict(self) -> dict[str, Any]:
        """Return the setting's result as a JSON-ready mapping."""
        return {
            "params": dict(self.params),
            "label": self.label,
            "confusion": self.confusion.to_dict(),
            "false_fail_rate": self.confusion.false_fail_rate,
            "missed_regression_rate": self.confusion.missed_regression_rate,
            "canaries": [
                {"name": o.name, "label": o.label, "verdict": o.verdict.value, "score": o.score}
                for o in self.outcomes
            ],
        }




# ---------------------------------------------------------------- judging


def backtest(
    canaries: Sequence[LabelledCanary],
    settings: Sequence[Mapping[str, Any]],
    *,
    config: CanaryConfig | None = None,
    thresholds: Thresholds | None = None,
    judge_type: str = DEFAULT_JUDGE,
    registry: Registry | None = None,
    progress: BacktestProgress | None = None,
) -> list[SettingResult]:
    """Judge every canary under every setting (dotted judge-parameter overrides).

    Each canary is judged with ``config`` (else the config it was judged with),
    with the setting applied to every ``judge_type`` metric, and with
    ``thresholds`` (else its own, else the config's).
    """
    registry = registry or default_registry()
    results = []
    for params in settings:
        adjusted: dict[int, CanaryConfig] = {}
        outcomes = []
        for item in canaries:
            base = config or item.config
            if base is None:
                raise KayentaError(f"canary {item.name}: no config to judge it with (give --config)")
            if id(base) not in adjusted:
                adjusted[id(base)] = apply_overrides(base, params, judge_type=judge_type, registry=registry)
            limits = thresholds or (None if config is not None else item.thresholds)
            try:
                if item.pairs is not None and config is None:  # its own config: the pairs it judged
                    result = judge_pairs(adjusted[id(base)], item.pairs, thresholds=limits, registry=registry)
                else:
                    baseline, canary = item.series()
                    result = judge(adjusted[id(base)], baseline, canary, thresholds=limits, registry=registry)
            except KayentaError as exc:
                raise KayentaError(f"{item.origin}: {exc}") from None
            outcomes.append(CanaryOutcome(item.name, item.label, result.verdict, result.score))
            if progress is not None:
                progress(1)
        results.append(SettingResult(MappingProxyType(dict(params)), tuple(outcomes)))
    return results


def _lists(series: Mapping[str, Sequence[MetricSet]]) -> dict[str, list[MetricSet]]:
    return {name: list(sets) for name, sets in series.items()}
