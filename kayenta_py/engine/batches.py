"""Batches of a sequential analysis: each interval's new points, fetched and aligned by time."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, cast, get_args

import numpy as np
import numpy.typing as npt

from kayenta_py.config.model import CanaryConfig, MetricConfig
from kayenta_py.config.registry import Registry, default_registry
from kayenta_py.engine.pipeline import pair_metric_sets
from kayenta_py.engine.sequential_judge import BatchShape
from kayenta_py.engine.source import FetchedData, MetricsSource, Scope, fetch_metric_sets
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.types import (
    MetricSet,
    MetricSetPair,
)

TRAFFIC_SUFFIX = "#traffic"


@dataclass(frozen=True)
class SequentialBatch:
    """One window's data shaped for each metric's sequential judge, and the raw pairs behind it."""

    baseline: dict[str, Any]
    canary: dict[str, Any]
    pairs: list[MetricSetPair]
    warnings: list[str]


def fetch_sequential_batch(
    config: CanaryConfig,
    source: MetricsSource,
    baseline: Scope,
    canary: Scope,
    *,
    start: float,
    end: float,
    step: float,
    after: float | None = None,
    concurrency: int = 8,
    registry: Registry | None = None,
    deadline: float | None = None,
    baseline_offset: float = 0.0,
) -> SequentialBatch:
    """Fetch the newest window from ``source`` and shape it as batches for :meth:`SequentialAnalysis.update`.

    Each metric's judge declares its :data:`BatchShape` (``batch_shape``): ``counts`` fetch
    the ``query`` (events per step) and the ``traffic_query`` (requests per step), summed over
    series; ``histogram`` fetch bucket series labelled ``le``; ``values`` one series per side.
    The engine names no judge, so a third-party sequential judge is shaped alike. Baseline
    and canary are aligned on common timestamps; points at or before ``after`` (the previous
    window's end) are dropped, so no point counts twice.
    ``deadline`` bounds the whole fetch (see :func:`fetch_metric_sets`).

    With a ``baseline_offset`` (seconds; negative: earlier) the baseline is fetched over the
    window shifted by it, and points pair by their time relative to each window's start: a
    baseline point at ``t`` pairs with the canary point nearest ``t - baseline_offset`` on
    the canary's step grid. Points that find no partner are not judged (no pairs, no evidence).
    """
    registry = registry or default_registry()
    fetched: list[MetricConfig] = []
    shapes = {metric.name: batch_shape(metric, registry) for metric in config.metrics}
    check_traffic_queries(config, registry)
    for metric in config.metrics:
        fetched.append(metric)
        if shapes[metric.name] == "counts":
            fetched.append(replace(metric, name=f"{metric.name}{TRAFFIC_SUFFIX}", query=metric.traffic_query))
    data = fetch_metric_sets(
        replace(config, metrics=tuple(fetched)),
        source,
        baseline,
        canary,
        start=start,
        end=end,
        step=step,
        concurrency=concurrency,
        deadline=deadline,
        baseline_offset=baseline_offset,
    )
    every = replace(config, metrics=tuple(fetched))
    stored = pairs = pair_metric_sets(every, data.baseline, data.canary, scopes=(baseline, canary))
    if baseline_offset:  # both sides on the canary's step grid: pairing by time relative to each window
        data = FetchedData(
            {n: [_relative(m, baseline_offset, start, step) for m in ms] for n, ms in data.baseline.items()},
            {n: [_relative(m, 0.0, start, step) for m in ms] for n, ms in data.canary.items()},
        )
        pairs = pair_metric_sets(every, data.baseline, data.canary, scopes=(baseline, canary))
    batches_b: dict[str, Any] = {}
    batches_c: dict[str, Any] = {}
    warnings: list[str] = []
    for metric in config.metrics:
        sides = (data.baseline.get(metric.name, []), data.canary.get(metric.name, []))
        if shapes[metric.name] == "counts":
            traffic = (
                data.baseline.get(metric.name + TRAFFIC_SUFFIX, []),
                data.canary.get(metric.name + TRAFFIC_SUFFIX, []),
            )
            counts_b, counts_c = _summed(sides[0], traffic[0]), _summed(sides[1], traffic[1])
            times = _common(list(counts_b), list(counts_c), after)
            batches_b[metric.name] = (_at(counts_b[0], times), _at(counts_b[1], times))
            batches_c[metric.name] = (_at(counts_c[0], times), _at(counts_c[1], times))
        elif shapes[metric.name] == "histogram":
            given = metric.judge_params.get("buckets")
            columns_b = _histogram(sides[0], metric.name)
            columns_c = _histogram(sides[1], metric.name)
            bounds = [float(x) for x in given] if given else sorted(columns_b)
            times = _common([columns_b[b] for b in bounds if b in columns_b], list(columns_c.values()), after)
            batches_b[metric.name] = {b: _at(columns_b[b], times) for b in bounds if b in columns_b}
            batches_c[metric.name] = {b: _at(column, times) for b, column in columns_c.items()}
        else:
            mine = [p for p in pairs if p.name == metric.name]
            warnings.extend(dict.fromkeys(p.warning for p in mine if p.warning))
            paired = [p for p in mine if len(p.baseline) and len(p.canary)]
            if len(paired) > 1:
                warnings.append(
                    f"metric {metric.name!r}: {len(paired)} pairs of series; only the first "
                    f"({paired[0].tags or 'no labels'}) is judged (name the labels to keep in pair_on)"
                )
            series_b = _by_time(paired[0].baseline) if paired else {}
            series_c = _by_time(paired[0].canary) if paired else {}
            times = _common([series_b], [series_c], after)
            batches_b[metric.name] = _at(series_b, times)
            batches_c[metric.name] = _at(series_c, times)
    return SequentialBatch(batches_b, batches_c, stored, warnings)  # stored: each side's own times


def check_traffic_queries(config: CanaryConfig, registry: Registry) -> None:
    """Refuse a metric whose judge counts events against traffic but that has no ``traffic_query``.

    A live analysis fetches both from its source; the service checks this when the analysis is
    created, so that the config is refused then, not at its first interval.
    """
    for metric in config.metrics:
        if batch_shape(metric, registry) == "counts" and not metric.traffic_query:
            raise KayentaError(
                f"metric {metric.name!r}: {metric.judge_type} counts events against the requests of each "
                "step: it needs a traffic_query (or name a judge of series, such as sequential-rank)"
            )


def batch_shape(metric: MetricConfig, registry: Registry) -> BatchShape:
    """Return the batch shape ``metric``'s judge declares (``values`` for a judge that declares none)."""
    shape = getattr(registry.judge_class(metric.judge_type), "batch_shape", "values")
    if shape not in get_args(BatchShape):
        raise KayentaError(
            f"metric {metric.name!r}: judge {metric.judge_type} declares batch_shape {shape!r} "
            f"(the engine shapes {', '.join(get_args(BatchShape))})"
        )
    return cast(BatchShape, shape)


def _relative(metric_set: MetricSet, offset: float, origin: float, step: float) -> MetricSet:
    """Return ``metric_set`` with its points moved onto the canary's step grid, ``offset`` seconds on.

    A point at ``t`` lands at ``origin + k * step`` nearest ``t - offset``; a second point landing
    on the same place is dropped (it could not pair twice).
    """
    if metric_set.timestamps is None or not len(metric_set):
        return metric_set
    slots = origin + np.round((metric_set.timestamps - offset - origin) / step) * step
    _, first = np.unique(slots, return_index=True)
    keep = np.sort(first)
    return replace(metric_set, values=metric_set.values[keep], timestamps=slots[keep])


def _by_time(metric_set: MetricSet) -> dict[float, float]:
    stamps = metric_set.timestamps if metric_set.timestamps is not None else np.arange(metric_set.values.size)
    return {float(t): float(v) for t, v in zip(stamps.tolist(), metric_set.values.tolist(), strict=True)}


def _summed(
    events: list[MetricSet], traffic: list[MetricSet]
) -> tuple[dict[float, float], dict[float, float]]:
    """Events and traffic per timestamp, summed over series (NaN counts as 0 events, missing traffic)."""
    out_events: dict[float, float] = {}
    out_traffic: dict[float, float] = {}
    for metric_set in events:
        for t, v in _by_time(metric_set).items():
            out_events[t] = out_events.get(t, 0.0) + (v if math.isfinite(v) else 0.0)
    for metric_set in traffic:
        for t, v in _by_time(metric_set).items():
            if math.isfinite(v):
                out_traffic[t] = out_traffic.get(t, 0.0) + v
    return {t: out_events.get(t, 0.0) for t in out_traffic}, out_traffic


def _histogram(sets: list[MetricSet], name: str) -> dict[float, dict[float, float]]:
    """Bucket counts by bound (``le``) and timestamp, summed over series, from series labelled ``le``."""
    by_bound: dict[float, dict[float, float]] = {}
    for metric_set in sets:
        le = metric_set.tags.get("le")
        if le is None:
            raise KayentaError(f"metric {name!r}: a histogram series has no 'le' label")
        try:
            bound = math.inf if le in ("+Inf", "Inf", "inf") else float(le)
        except ValueError:
            raise KayentaError(f"metric {name!r}: le={le!r} is not a bucket bound") from None
        series = by_bound.setdefault(bound, {})
        for t, v in _by_time(metric_set).items():
            series[t] = series.get(t, 0.0) + v
    return by_bound


def _common(
    baseline: list[dict[float, float]], canary: list[dict[float, float]], after: float | None
) -> list[float]:
    if not baseline or not canary:
        return []
    times = set(baseline[0])
    for series in (*baseline[1:], *canary):
        times &= set(series)
    return sorted(t for t in times if after is None or t > after)


def _at(series: dict[float, float], times: list[float]) -> npt.NDArray[np.float64]:
    return np.array([series[t] for t in times], dtype=np.float64)
