"""The public API for plugin authors: what a judge or a metrics source is written against.

Judges subclass :class:`Judge` (one fixed-horizon comparison per metric) or :class:`SequentialJudge`
(anytime-valid: a JSON state updated batch by batch, see :class:`Assessment`); metrics sources
implement :class:`MetricsSource`. Both register through entry points (``kayenta_py.judges``,
``kayenta_py.metrics_sources``), exactly as the built-in ones in ``judges/`` and ``metrics_sources/``
do; :mod:`kayenta_py.testing` holds the checks a plugin runs on itself. Everything here is also
importable from :mod:`kayenta_py`; the names below are the ones kept stable for plugins.
"""

from __future__ import annotations

from kayenta_py.config.model import MetricConfig, MetricKind
from kayenta_py.config.registry import Registry, did_you_mean
from kayenta_py.engine.judge import Judge
from kayenta_py.engine.sequential_judge import Assessment, BatchShape, SequentialJudge, clip_p
from kayenta_py.engine.source import MetricsSource, Scope, SourceError
from kayenta_py.engine.stats import (
    AR1_MAX,
    ar1_upper_bound,
    cles,
    effective_points,
    mean_ratio,
    percentile,
    summarize,
)
from kayenta_py.engine.zeroin import zeroin
from kayenta_py.model.errors import ConfigError, FieldError, InputError, KayentaError
from kayenta_py.model.formatting import format_number
from kayenta_py.model.redact import redact_url
from kayenta_py.model.types import (
    Classification,
    Direction,
    FloatArray,
    MetricResult,
    MetricSet,
    MetricSetPair,
    SummaryStats,
    Verdict,
)
from kayenta_py.synthetic import Effects, TrafficModel, traffic_cycle

__all__ = [
    "AR1_MAX",
    "Assessment",
    "BatchShape",
    "Classification",
    "ConfigError",
    "Direction",
    "Effects",
    "FieldError",
    "FloatArray",
    "InputError",
    "Judge",
    "KayentaError",
    "MetricConfig",
    "MetricKind",
    "MetricResult",
    "MetricSet",
    "MetricSetPair",
    "MetricsSource",
    "Registry",
    "Scope",
    "SequentialJudge",
    "SourceError",
    "SummaryStats",
    "TrafficModel",
    "Verdict",
    "ar1_upper_bound",
    "cles",
    "clip_p",
    "did_you_mean",
    "effective_points",
    "format_number",
    "mean_ratio",
    "percentile",
    "redact_url",
    "summarize",
    "traffic_cycle",
    "zeroin",
]
