"""What the runner shares: metrics, options from settings, live configs, interval counts, JSON states."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kayenta_py.config.loader import load_config
from kayenta_py.config.model import CanaryConfig, MetricConfig, Mode
from kayenta_py.config.registry import Registry
from kayenta_py.engine.source import Scope
from kayenta_py.model.errors import KayentaError
from kayenta_py.model.formatting import format_score
from kayenta_py.model.types import CanaryResult
from kayenta_py.service.store.records import Analysis

log = logging.getLogger("kayenta_py.service.runner")  # the runner's own log

if TYPE_CHECKING:
    from kayenta_py.service.settings import Settings


@dataclass
class RunnerMetrics:
    """The runner's own Prometheus metrics (``replica``: this replica's id, a label of its counters)."""

    judgements: Counter
    judge_seconds: Histogram
    source_errors: Counter
    lateness: Histogram
    replica_judgements: Counter
    queue_depth: Gauge
    replica: str = ""

    @classmethod
    def create(cls, registry: CollectorRegistry, *, replica: str = "") -> RunnerMetrics:
        """Register the metrics in ``registry``."""
        return cls(
            Counter(
                "kayenta_judgements", "Interval judgements stored, by verdict", ["verdict"], registry=registry
            ),
            Histogram(
                "kayenta_judge_duration_seconds",
                "Time to fetch and judge one interval",
                registry=registry,
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
            ),
            Counter(
                "kayenta_source_errors", "Failed metric fetches, by source", ["source"], registry=registry
            ),
            Histogram(
                "kayenta_schedule_lateness_seconds",
                "Seconds from an interval's due time to the start of its judging, by replica",
                ["replica"],
                registry=registry,
                buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 900),
            ),
            Counter(
                "kayenta_replica_judgements",
                "Interval judgements stored by this replica, by replica and verdict",
                ["replica", "verdict"],
                registry=registry,
            ),
            Gauge(
                "kayenta_dispatch_queue_depth",
                "Pending analysis runs by state (scheduled: not due yet; due: late; running), by engine",
                ["engine", "state"],
                registry=registry,
            ),
            replica,
        )


@dataclass
class _Trouble:
    """Failed attempts of an analysis since it last stored an interval."""

    first_ts: float
    attempts: int = 0
    logged_trace: bool = False
    unrecorded: tuple[str, str] | None = None  # a failure (reason, error) the store could not take yet
    record_attempts: int = 0


def runner_options(settings: Settings) -> dict[str, Any]:
    """The runner's keyword arguments from the service settings."""
    return {
        "concurrency": settings.fetch_concurrency,
        "retry_limit": settings.source_retry_limit,
        "retry_backoff": settings.retry_backoff,
        "retry_max_delay": settings.retry_max_delay,
        "retry_max_seconds": settings.retry_max_seconds,
        "source_workers": settings.source_workers,
        "fetch_deadline": settings.fetch_deadline,
    }


def log_judged(analysis: Analysis, index: int, result: CanaryResult, seconds: float) -> None:
    """Log the one structured line of a judged interval (fixed and sequential mode alike)."""
    metrics = ",".join(f"{m.name.replace(' ', '_')}:{m.classification.value}" for m in result.metrics)
    score = format_score(result.score)
    log.info(
        "interval judged analysis=%s index=%d/%d mode=%s verdict=%s score=%s metrics=%s seconds=%.3f",
        analysis.id,
        index + 1,
        analysis.intervals_total,
        analysis.mode,
        result.verdict.value,
        score,
        metrics or "-",
        seconds,
    )


def scopes(analysis: Analysis) -> tuple[Scope, Scope]:
    """Return the analysis' baseline and canary scopes (the canary may have its own location and params)."""
    return (
        Scope(analysis.baseline_scope, analysis.location, analysis.scope_params),
        Scope(
            analysis.canary_scope,
            analysis.location if analysis.canary_location is None else analysis.canary_location,
            analysis.scope_params if analysis.canary_scope_params is None else analysis.canary_scope_params,
        ),
    )


LIVE_MIN_EFFECTIVE = 8.0
"""Effectively independent points a side a live fixed-mode interval needs to be judged (native configs)."""


def live_fixed_config(config: CanaryConfig, registry: Registry) -> CanaryConfig:
    """Return ``config`` with the live rule: an interval on too few independent points is inconclusive.

    A native config's metric whose judge takes ``min_effective`` (``mann-whitney``) and leaves it unset gets
    ``LIVE_MIN_EFFECTIVE``: 15 points of a 10-s rate window sampled each second hold the
    information of one or two, so the interval is inconclusive (marginal) rather than a
    fail-fast. Kayenta configs keep Kayenta's behaviour. Test: ``tests/test_live_service.py``.
    """
    if config.format != "native":
        return config
    metrics = tuple(
        dataclasses.replace(m, judge_params={**m.judge_params, "min_effective": LIVE_MIN_EFFECTIVE})
        if _takes(m, "min_effective", registry) and m.judge_params.get("min_effective") is None
        else m
        for m in config.metrics
    )
    return dataclasses.replace(config, metrics=metrics)


class ParsedConfigs:
    """Each live analysis' config, parsed (and, fixed mode, given the live rule) once, not per interval.

    Safe because an analysis' stored config never changes: it is copied into the analysis when
    the analysis is created (a later version of a named config is a new body, for new analyses).
    Keyed by analysis id and mode; at most ``size`` entries, the least recently used dropped.
    """

    def __init__(self, registry: Registry, size: int = 10_000) -> None:
        self.registry = registry
        self.size = size
        self._parsed: OrderedDict[tuple[str, Mode], CanaryConfig] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, analysis: Analysis, mode: Mode) -> CanaryConfig:
        """Return the analysis' config parsed for ``mode`` (``fixed`` or ``sequential``)."""
        key = (analysis.id, mode)
        with self._lock:
            parsed = self._parsed.get(key)
            if parsed is not None:
                self._parsed.move_to_end(key)
                return parsed
        parsed = load_config(analysis.config_body, registry=self.registry, mode=mode)
        if mode == "fixed":
            parsed = live_fixed_config(parsed, self.registry)
        with self._lock:
            self._parsed[key] = parsed
            while len(self._parsed) > self.size:
                self._parsed.popitem(last=False)
        return parsed

    def forget(self, analysis_id: str) -> None:
        """Drop a finished analysis' configs."""
        with self._lock:
            self._parsed.pop((analysis_id, "fixed"), None)
            self._parsed.pop((analysis_id, "sequential"), None)


def interval_count(lifetime_s: float, interval_s: float) -> int:
    """Return how many intervals a lifetime holds (at least one)."""
    if interval_s <= 0:
        raise KayentaError("interval must be positive")
    return max(1, int(lifetime_s // interval_s + 1e-9))


_FLOAT_KEY = "__float__"  # {"__float__": "inf"}: a non-finite number in a JSON state


def json_state_encode(value: Any) -> Any:
    """Return ``value`` as strict JSON: non-finite floats (a histogram's ``+Inf`` bound) become markers.

    PostgreSQL's JSON type refuses ``Infinity`` and ``NaN`` (SQLite stores them as Python
    writes them); :func:`json_state_decode` turns the markers back into floats.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return {_FLOAT_KEY: repr(value)}
    if isinstance(value, dict):
        return {key: json_state_encode(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_state_encode(item) for item in value]
    return value


def json_state_decode(value: Any) -> Any:
    """Undo :func:`json_state_encode` (a state stored without markers comes back unchanged)."""
    if isinstance(value, dict):
        if len(value) == 1 and isinstance(value.get(_FLOAT_KEY), str):
            return float(value[_FLOAT_KEY])
        return {key: json_state_decode(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_state_decode(item) for item in value]
    return value


def _takes(metric: MetricConfig, parameter: str, registry: Registry) -> bool:
    """Whether ``metric``'s judge declares ``parameter`` in its params model."""
    model = getattr(registry.judge_class(metric.judge_type), "params_model", None)
    return model is not None and parameter in model.model_fields
