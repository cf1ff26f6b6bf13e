"""Canary configuration: strict native YAML/JSON and Kayenta canary-config JSON, one model."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from kayenta_py.config.registry import Registry, default_registry, did_you_mean
from kayenta_py.model.preprocessing import NanStrategy, Outliers
from kayenta_py.model.types import Direction, Thresholds


class MetricKind(StrEnum):
    """What a metric measures; each kind brings defaults (see :data:`KIND_DEFAULTS`)."""

    ERRORS = "errors"
    LATENCY = "latency"
    SATURATION = "saturation"
    BUSINESS = "business"
    CUSTOM = "custom"


@dataclass(frozen=True)
class KindDefaults:
    """Defaults a metric kind gives: direction (None: the user must say) and criticality."""

    direction: Direction | None
    critical: bool


KIND_DEFAULTS: Mapping[MetricKind, KindDefaults] = MappingProxyType(
    {
        MetricKind.ERRORS: KindDefaults(Direction.INCREASE, critical=True),
        MetricKind.LATENCY: KindDefaults(Direction.INCREASE, critical=False),
        MetricKind.SATURATION: KindDefaults(Direction.INCREASE, critical=False),
        MetricKind.BUSINESS: KindDefaults(None, critical=False),
        MetricKind.CUSTOM: KindDefaults(Direction.EITHER, critical=False),
    }
)

DEFAULT_JUDGE = "mann-whitney"
# In sequential mode a metric without a judge gets its kind's sequential judge
# (``sequential_default_judge``): counts with a traffic query, histograms from ``_bucket`` series.
SEQUENTIAL_DEFAULT_JUDGE: Mapping[MetricKind, str] = MappingProxyType(
    {
        MetricKind.ERRORS: "sequential-count",
        MetricKind.LATENCY: "sequential-rank",
        MetricKind.SATURATION: "sequential-rank",
        MetricKind.BUSINESS: "sequential-rank",
        MetricKind.CUSTOM: "sequential-rank",
    }
)
# A Prometheus histogram's bucket series (``http_request_duration_seconds_bucket``).
_BUCKET_SERIES = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*_bucket\b")
# A percentile computed per step (``histogram_quantile(0.99, ...)``, ``quantile_over_time``).
_PER_STEP_PERCENTILE = re.compile(r"\b(histogram_quantile|quantile_over_time|quantile)\s*\(")


def sequential_default_judge(kind: MetricKind, query: str | None, traffic_query: str | None) -> str:
    """The sequential judge of a metric that names none.

    Errors are counts (``sequential-count``, batches of events and requests), unless the
    metric queries a source without a ``traffic_query``: that query gives a ratio, judged
    as a series (``sequential-rank``). A latency metric
    whose query reads a histogram's ``_bucket`` series but computes no percentile is
    judged from its bucket counts (``sequential-histogram``): per-step percentiles of
    arms with unequal traffic are biased (README, "Latency").
    """
    if kind is MetricKind.ERRORS and query and not traffic_query:
        return "sequential-rank"
    if (
        kind is MetricKind.LATENCY
        and query
        and _BUCKET_SERIES.search(query)
        and not _PER_STEP_PERCENTILE.search(query)
    ):
        return "sequential-histogram"
    return SEQUENTIAL_DEFAULT_JUDGE[kind]


def per_step_percentile_warning(path: str, kind: MetricKind, query: str | None) -> str | None:
    """A warning when a latency query computes a percentile per step (biased under unequal traffic)."""
    if kind is not MetricKind.LATENCY or not query or not _PER_STEP_PERCENTILE.search(query):
        return None
    return (
        f"{path}.query: a percentile computed per step is biased low on the arm with less traffic "
        "(a 10% canary's p99 hides regressions); query the histogram's buckets, "
        "sum by (le) (increase(..._bucket[step])), to judge them with sequential-histogram"
    )


Mode = Literal["fixed", "sequential"]
KAYENTA_JUDGE_NAMES = {"NetflixACAJudge-v1.0": "mann-whitney"}


@dataclass(frozen=True)
class MetricConfig:
    """One metric of a canary config, every default resolved."""

    name: str
    kind: MetricKind
    groups: tuple[str, ...]
    direction: Direction
    critical: bool
    must_have_data: bool = False
    muted: bool = False
    nan_strategy: NanStrategy = NanStrategy.REMOVE
    outliers: Outliers | None = None
    judge_type: str = DEFAULT_JUDGE
    judge_params: Mapping[str, Any] = field(default_factory=dict)
    query: str | None = None
    traffic_query: str | None = None
    kayenta_query: Mapping[str, Any] | None = None
    filter_template: str | None = None
    scope_name: str = "default"
    pair_on: tuple[str, ...] | None = None
    pair_ignoring: tuple[str, ...] = ()

    def build_judge(self, registry: Registry | None = None) -> Any:
        """Return this metric's judge, configured (a Judge, or a sequential judge)."""
        cls = (registry or default_registry()).judge_class(self.judge_type)
        return cls(
            direction=self.direction,
            critical=self.critical,
            must_have_data=self.must_have_data,
            nan_strategy=self.nan_strategy,
            outliers=self.outliers,
            **self.judge_params,
        )


@dataclass(frozen=True)
class CanaryConfig:
    """A validated canary config: metrics, group weights, score thresholds."""

    name: str
    metrics: tuple[MetricConfig, ...]
    group_weights: Mapping[str, float] = field(default_factory=dict)
    thresholds: Thresholds = field(default_factory=Thresholds)
    description: str = ""
    source: str | None = None
    templates: Mapping[str, str] = field(default_factory=dict)
    mode: Mode = "fixed"
    # Whether the config (or the caller) chose the mode; live native analyses default to sequential.
    mode_stated: bool = True
    format: Literal["native", "kayenta"] = "native"
    warnings: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def metric(self, name: str) -> MetricConfig:
        """Return the metric called ``name``."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"no metric {name!r}{did_you_mean(name, [m.name for m in self.metrics])}")


# ---------------------------------------------------------------- loading


def effective_group_weight(weights: Mapping[str, float], groups: Iterable[str], group: str) -> float:
    """Return a group's weight: its own, or an equal share of what the given weights leave of 100.

    ``groups`` are the scored groups; those without a weight share the rest equally.
    """
    if group in weights:
        return float(weights[group])
    unweighted = [g for g in dict.fromkeys(groups) if g not in weights]
    return (100.0 - sum(weights.values())) / len(unweighted) if unweighted else 0.0
