"""The judging pipeline: pair metric sets, judge each pair, score, decide the verdict."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig, MetricConfig
from kayenta_py.config.registry import Registry, default_registry, did_you_mean
from kayenta_py.engine.scoring import inconclusive_reason, score_results, verdict_reason
from kayenta_py.engine.source import MetricsSource, Progress, Scope, fetch_metric_sets
from kayenta_py.engine.stats import summarize
from kayenta_py.model.errors import FieldError, KayentaError
from kayenta_py.model.types import (
    CanaryResult,
    Classification,
    MetricResult,
    MetricSet,
    MetricSetPair,
    Thresholds,
    Verdict,
    tag_key,
)

log = logging.getLogger(__name__)

MetricData = Mapping[str, Any]
"""Metric name to an array-like of values, a MetricSet, or a sequence of MetricSets (one per tag set)."""


@dataclasses.dataclass(frozen=True)
class Judgement:
    """What the engine gives back: the result and the pairs it judged (for reports and stores)."""

    result: CanaryResult
    pairs: tuple[MetricSetPair, ...]


def judge(
    config: CanaryConfig | Mapping[str, Any] | str | Path,
    baseline: MetricData | Any,
    canary: MetricData | Any,
    *,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    registry: Registry | None = None,
    baseline_scope: Scope | str | None = None,
    canary_scope: Scope | str | None = None,
) -> CanaryResult:
    """Judge a canary against its baseline with a config; the result of :func:`evaluate`."""
    return evaluate(
        config,
        baseline,
        canary,
        thresholds=thresholds,
        registry=registry,
        baseline_scope=baseline_scope,
        canary_scope=canary_scope,
    ).result


def evaluate(
    config: CanaryConfig | Mapping[str, Any] | str | Path,
    baseline: MetricData | Any,
    canary: MetricData | Any,
    *,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    registry: Registry | None = None,
    baseline_scope: Scope | str | None = None,
    canary_scope: Scope | str | None = None,
) -> Judgement:
    """Judge a canary against its baseline with a config; return the result and the pairs judged.

    ``baseline`` and ``canary`` map each metric name to its values (an
    array-like, a :class:`MetricSet`, or several MetricSets with different
    tags), or are wide pandas DataFrames with one column per metric. Series
    are paired by metric and tags (see :func:`pair_metric_sets`; labels whose
    value is a side's own ``baseline_scope`` / ``canary_scope`` do not key the
    pairing); a series on one side only is paired with an empty one (judged as
    missing data, never dropped). A config metric with no data on a side is
    judged as missing data too, with a warning naming the near match in the data.
    """
    registry = registry or default_registry()
    if not isinstance(config, CanaryConfig):
        config = load_config(config, registry=registry)
    baseline_sets = normalize_metric_data(baseline, "baseline")
    canary_sets = normalize_metric_data(canary, "canary")
    warnings = list(config.warnings)
    configured = [m.name for m in config.metrics]
    for side, sets in (("baseline", baseline_sets), ("canary", canary_sets)):
        for name in sets:
            if name not in configured:
                warnings.append(
                    f"{side} data has metric {name!r}, which the config does not name; ignored"
                    f"{did_you_mean(name, configured)}"
                )
        for name in configured:
            if name not in sets:
                warnings.append(
                    f"{side} data has no metric {name!r}; judged as missing data"
                    f"{did_you_mean(name, [n for n in sets if n not in configured])}"
                )
    scopes = None
    if baseline_scope is not None or canary_scope is not None:
        scopes = (_as_scope(baseline_scope), _as_scope(canary_scope))
    pairs = tuple(pair_metric_sets(config, baseline_sets, canary_sets, scopes=scopes))
    result = judge_pairs(config, pairs, thresholds=thresholds, registry=registry, warnings=warnings)
    return Judgement(result, pairs)


def _as_scope(scope: Scope | str | None) -> Scope:
    return scope if isinstance(scope, Scope) else Scope(scope or "")


def judge_pairs(
    config: CanaryConfig,
    pairs: Iterable[MetricSetPair],
    *,
    thresholds: Thresholds | Mapping[str, float] | None = None,
    registry: Registry | None = None,
    warnings: Sequence[str] = (),
) -> CanaryResult:
    """Judge already-paired metric sets and score them.

    Pairing warnings (a series without a partner) join the result's warnings and its reason.
    """
    registry = registry or default_registry()
    pairs = list(pairs)
    unpaired = list(dict.fromkeys(p.warning for p in pairs if p.warning))
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
    verdict = score.verdict(limits)
    reason = verdict_reason(score, verdict, limits, results)
    summary = score.score
    thin = [r for r in results if not r.muted and r.details.get("inconclusive")]
    if thin and verdict is Verdict.PASS:
        # Evidence too thin to decide is never a pass: a person decides, and a client reading
        # only the score (Argo's kayenta provider) sees a marginal one.
        verdict = Verdict.MARGINAL
        summary = min(summary, limits.marginal_score())
        reason = inconclusive_reason([f"{r.label}: {r.details['inconclusive']}" for r in thin])
    if unpaired:
        reason += "; warning: " + "; ".join(unpaired)
    return CanaryResult(
        verdict=verdict,
        score=summary,
        reason=reason,
        thresholds=limits,
        metrics=tuple(results),
        groups=score.groups,
        warnings=(*warnings, *unpaired),
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
    return default.overridden(given)


def normalize_metric_data(data: MetricData | Any, side: str) -> dict[str, list[MetricSet]]:
    """Return metric name to its metric sets, from any of the accepted input shapes."""
    if hasattr(data, "columns") and hasattr(data, "__getitem__"):  # a pandas DataFrame
        data = {str(column): data[column].to_numpy(dtype=float) for column in data.columns}
    if not isinstance(data, Mapping):
        raise FieldError(
            side, f"expected a mapping of metric name to values or a DataFrame, got {type(data).__name__}"
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
                raise FieldError(side, f"metric {name!r}: values are not numbers ({exc})") from None
    return out


def pair_metric_sets(
    config: CanaryConfig,
    baseline: Mapping[str, Sequence[MetricSet]],
    canary: Mapping[str, Sequence[MetricSet]],
    *,
    scopes: tuple[Scope, Scope] | None = None,
) -> list[MetricSetPair]:
    """Pair each configured metric's baseline and canary series; a missing side becomes empty.

    Series pair by their labels, except labels whose value is the side's own scope or
    location (``version="v1"`` against ``version="v2"`` for scopes v1 and v2), which
    cannot match across sides; a metric's ``pair_on`` names the only labels that key
    the pairing, its ``pair_ignoring`` labels that do not (PromQL's ``on`` and
    ``ignoring``). When each side returns one series, they pair whatever their labels.
    A series left without a partner is paired with an empty side (judged as missing
    data, never dropped) and the pair carries a warning naming it.
    """
    pairs = []
    for metric in config.metrics:
        sides = [
            _keyed(metric, sets.get(metric.name, ()), scope)
            for sets, scope in zip((baseline, canary), scopes or (None, None), strict=True)
        ]
        (base_by_key, base_notes), (canary_by_key, canary_notes) = sides
        notes = base_notes + canary_notes
        if len(base_by_key) == 1 and len(canary_by_key) == 1:
            (base_key, base_set), (canary_key, canary_set) = *base_by_key.items(), *canary_by_key.items()
            tags = dict(set(base_key) & set(canary_key))
            pairs.append(MetricSetPair(metric.name, base_set, canary_set, tags, _note(notes)))
            continue
        keys = list(base_by_key) + [k for k in canary_by_key if k not in base_by_key]
        if not keys:
            empty = MetricSet.empty(metric.name)
            pairs.append(MetricSetPair(metric.name, empty, empty))
            continue
        several = len(base_by_key) + len(canary_by_key) > 1
        for position, key in enumerate(keys):
            tags = dict(key)
            found_b, found_c = base_by_key.get(key), canary_by_key.get(key)
            note = list(notes) if position == 0 else []  # series dropped as duplicates: said once
            if several and (found_b is None) != (found_c is None):
                lacking = "canary" if found_c is None else "baseline"
                note.append(
                    f"metric {metric.name!r}: series {_labels(tags)} has no {lacking} series with the same "
                    f"labels (baseline {_label_list(base_by_key)}, canary {_label_list(canary_by_key)}); "
                    "judged as missing data. Set pair_on or pair_ignoring to pair them"
                )
            pairs.append(
                MetricSetPair(
                    metric.name,
                    found_b or MetricSet.empty(metric.name, tags),
                    found_c or MetricSet.empty(metric.name, tags),
                    tags,
                    _note(note),
                )
            )
    return pairs


PairKey = tuple[tuple[str, str], ...]


def _keyed(
    metric: MetricConfig, sets: Sequence[MetricSet], scope: Scope | None
) -> tuple[dict[PairKey, MetricSet], list[str]]:
    """Key one side's series for pairing; two series with one key keep the first, with a note."""
    own = {v for v in (scope.scope, scope.location) if v} if scope is not None else set()
    out: dict[PairKey, MetricSet] = {}
    notes = []
    for metric_set in sets:
        if metric.pair_on is not None:
            kept = {k: v for k, v in metric_set.tags.items() if k in metric.pair_on}
        else:
            kept = {
                k: v for k, v in metric_set.tags.items() if k not in metric.pair_ignoring and v not in own
            }
        key = tag_key(kept)
        if key in out:
            notes.append(
                f"metric {metric.name!r}: series {_labels(metric_set.tags)} pairs on the same labels as "
                f"{_labels(out[key].tags)}; only the first is judged (name distinguishing labels in pair_on)"
            )
            continue
        out[key] = metric_set
    return out, notes


def _labels(tags: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(tags.items())) + "}"


def _label_list(by_key: Mapping[PairKey, MetricSet]) -> str:
    return ", ".join(_labels(dict(k)) for k in by_key) or "none"


def _note(notes: Sequence[str]) -> str | None:
    return "; ".join(notes) or None


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
    baseline_offset: float = 0.0,
) -> CanaryResult:
    """Fetch one window for both scopes from ``source`` and judge it: :func:`evaluate_window`'s result."""
    return evaluate_window(
        config,
        source,
        baseline,
        canary,
        start=start,
        end=end,
        step=step,
        thresholds=thresholds,
        concurrency=concurrency,
        progress=progress,
        registry=registry,
        baseline_offset=baseline_offset,
    ).result


def evaluate_window(
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
    baseline_offset: float = 0.0,
) -> Judgement:
    """Fetch one retrospective window for both scopes from ``source``, judge it, return result and pairs.

    The baseline comes from the window [start, end] shifted by ``baseline_offset`` seconds
    (negative: earlier; see :func:`fetch_metric_sets`).

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
        baseline_offset=baseline_offset,
    )
    pairs = tuple(pair_metric_sets(config, data.baseline, data.canary, scopes=(baseline, canary)))
    result = judge_pairs(config, pairs, thresholds=thresholds, registry=registry, warnings=config.warnings)
    return Judgement(result, pairs)
