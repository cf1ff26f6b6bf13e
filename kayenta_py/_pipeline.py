"""The judging pipeline: pair metric sets, judge each pair, score, decide the verdict."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kayenta_py._config import CanaryConfig, load_config
from kayenta_py._errors import KayentaError
from kayenta_py._model import (
    CanaryResult,
    Classification,
    MetricResult,
    MetricSet,
    MetricSetPair,
    Thresholds,
    tag_key,
)
from kayenta_py._registry import Registry, default_registry
from kayenta_py._scoring import score_results, verdict_reason
from kayenta_py._source import MetricsSource, Progress, Scope, fetch_metric_sets
from kayenta_py._stats import summarize

log = logging.getLogger(__name__)

MetricData = Mapping[str, Any]
"""Metric name to an array-like of values, a MetricSet, or a sequence of MetricSets (one per tag set)."""


def judge(
    config: CanaryConfig | Mapping[str, Any] | str | Path,
    baseline: MetricData | Any,
    canary: MetricData | Any,
    *,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    registry: Registry | None = None,
) -> CanaryResult:
    """Judge a canary against its baseline with a config.

    ``baseline`` and ``canary`` map each metric name to its values (an
    array-like, a :class:`MetricSet`, or several MetricSets with different
    tags), or are wide pandas DataFrames with one column per metric. Series
    are paired by metric and tags; a series on one side only is paired with
    an empty one (judged as missing data, never dropped). A config metric with
    no data on either side is judged as missing data too.
    """
    registry = registry or default_registry()
    if not isinstance(config, CanaryConfig):
        config = load_config(config, registry=registry)
    baseline_sets = normalize_metric_data(baseline, "baseline")
    canary_sets = normalize_metric_data(canary, "canary")
    warnings = list(config.warnings)
    configured = {m.name for m in config.metrics}
    for side, sets in (("baseline", baseline_sets), ("canary", canary_sets)):
        for name in sets:
            if name not in configured:
                warnings.append(f"{side} data has metric {name!r}, which the config does not name; ignored")
    pairs = pair_metric_sets(config, baseline_sets, canary_sets)
    return judge_pairs(config, pairs, thresholds=thresholds, registry=registry, warnings=warnings)


def judge_pairs(
    config: CanaryConfig,
    pairs: Iterable[MetricSetPair],
    *,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    registry: Registry | None = None,
    warnings: Sequence[str] = (),
) -> CanaryResult:
    """Judge already-paired metric sets and score them."""
    registry = registry or default_registry()
    limits = _thresholds(thresholds, config.thresholds)
    metrics = {m.name: m for m in config.metrics}
    judges = {m.name: m.build_judge(registry) for m in config.metrics}
    results = []
    for pair in pairs:
        metric = metrics.get(pair.name)
        if metric is None:
            raise KayentaError(f"metric {pair.name!r} is not in config {config.name!r}")
        result = _judge_one(judges[pair.name], pair)
        results.append(dataclasses.replace(result, groups=metric.groups, muted=metric.muted))
    score = score_results(results, config.group_weights)
    verdict = limits.classify(score.score)
    return CanaryResult(
        verdict=verdict,
        score=score.score,
        reason=verdict_reason(score, verdict, limits, results),
        thresholds=limits,
        metrics=tuple(results),
        groups=score.groups,
        warnings=tuple(warnings),
    )


def _judge_one(judge: Any, pair: MetricSetPair) -> MetricResult:
    """Run one judge; a judge that crashes gives an Error result, never a pass."""
    try:
        result: MetricResult = judge.judge(pair)
    except Exception as exc:  # a broken judge must not take the other metrics down
        log.exception("judge %s failed on metric %s", judge, pair.name)
        return MetricResult(
            name=pair.name,
            classification=Classification.ERROR,
            reason=f"the judge failed: {type(exc).__name__}: {exc}",
            baseline=summarize(pair.baseline.values[np.isfinite(pair.baseline.values)]),
            canary=summarize(pair.canary.values[np.isfinite(pair.canary.values)]),
            judge=getattr(judge, "full_name", type(judge).__name__),
            critical=bool(getattr(judge, "critical", False)),
            critical_metric=bool(getattr(judge, "critical", False)),
            tags=pair.tags,
        )
    return result


def _thresholds(given: Thresholds | Mapping[str, float] | None, default: Thresholds) -> Thresholds:
    if given is None:
        return default
    if isinstance(given, Thresholds):
        return given
    unknown = set(given) - {"pass", "marginal"}
    if unknown:
        raise KayentaError(f"thresholds: unknown key(s) {sorted(unknown)}; use 'pass' and 'marginal'")
    try:
        return Thresholds(
            float(given.get("pass", default.pass_)), float(given.get("marginal", default.marginal))
        )
    except ValueError as exc:
        raise KayentaError(str(exc)) from None


def normalize_metric_data(data: MetricData | Any, side: str) -> dict[str, list[MetricSet]]:
    """Return metric name to its metric sets, from any of the accepted input shapes."""
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a pandas DataFrame
        data = {str(column): data[column].to_numpy(dtype=float) for column in data.columns}
    if not isinstance(data, Mapping):
        raise KayentaError(
            f"{side}: expected a mapping of metric name to values or a DataFrame, got {type(data).__name__}"
        )
    out: dict[str, list[MetricSet]] = {}
    for name, value in data.items():
        name = str(name)
        if isinstance(value, MetricSet):
            out[name] = [value]
        elif isinstance(value, Sequence) and value and all(isinstance(v, MetricSet) for v in value):
            out[name] = list(value)
        else:
            try:
                out[name] = [MetricSet(name, np.asarray(value, dtype=np.float64))]
            except (TypeError, ValueError) as exc:
                raise KayentaError(f"{side}: metric {name!r}: values are not numbers ({exc})") from None
    return out


def pair_metric_sets(
    config: CanaryConfig,
    baseline: Mapping[str, Sequence[MetricSet]],
    canary: Mapping[str, Sequence[MetricSet]],
) -> list[MetricSetPair]:
    """Pair each configured metric's series by tags; a missing side becomes empty."""
    pairs = []
    for metric in config.metrics:
        base_by_tags = {tag_key(s.tags): s for s in baseline.get(metric.name, ())}
        canary_by_tags = {tag_key(s.tags): s for s in canary.get(metric.name, ())}
        keys = list(base_by_tags) + [k for k in canary_by_tags if k not in base_by_tags]
        if not keys:
            keys = [()]
        for key in keys:
            tags = dict(key)
            pairs.append(
                MetricSetPair(
                    metric.name,
                    base_by_tags.get(key) or MetricSet.empty(metric.name, tags),
                    canary_by_tags.get(key) or MetricSet.empty(metric.name, tags),
                    tags,
                )
            )
    return pairs


def analyze(
    config: CanaryConfig | Mapping[str, Any] | str | Path,
    source: MetricsSource,
    baseline: Scope,
    canary: Scope,
    *,
    start: float,
    end: float,
    step: float = 60.0,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    concurrency: int = 8,
    progress: Progress | None = None,
    registry: Registry | None = None,
) -> CanaryResult:
    """Fetch one retrospective window for both scopes from ``source``, then judge it.

    Raises
    ------
    SourceError
        When the source fails for any metric; a canary is never judged on partial data.
    """
    registry = registry or default_registry()
    if not isinstance(config, CanaryConfig):
        config = load_config(config, registry=registry)
    if end <= start:
        raise KayentaError(f"the window ends ({end}) before it starts ({start})")
    if step <= 0:
        raise KayentaError(f"step must be positive, got {step}")
    data = fetch_metric_sets(
        config,
        source,
        baseline,
        canary,
        start=start,
        end=end,
        step=step,
        concurrency=concurrency,
        progress=progress,
    )
    pairs = pair_metric_sets(config, data.baseline, data.canary)
    return judge_pairs(config, pairs, thresholds=thresholds, registry=registry, warnings=config.warnings)
