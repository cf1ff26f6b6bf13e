"""Live analyses: APScheduler runs each analysis' intervals when they fall due.

The database is the source of truth. Interval ``i`` of an analysis falls due at
``start + warmup + (i + 1) * interval``; each run judges every due interval not
yet stored, in order, and schedules the next. On start every running analysis
is resumed, so an interval that fell due while the service was down is judged
once, late: stored intervals are never judged again (a unique key guarantees it)
and none is skipped.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from prometheus_client import CollectorRegistry, Counter, Histogram

from kayenta_py._config import CanaryConfig, load_config
from kayenta_py._errors import KayentaError
from kayenta_py._model import CanaryResult, Thresholds, Verdict
from kayenta_py._pipeline import judge_pairs, pair_metric_sets
from kayenta_py._registry import Registry
from kayenta_py._sequential import SequentialAnalysis, fetch_sequential_batch
from kayenta_py._source import MetricsSource, Scope, SourceError, fetch_metric_sets
from kayenta_py._store import CANCELLED, COMPLETED, FAILED, AnalysisRecord, Store

log = logging.getLogger(__name__)

SourceFactory = Callable[[str], MetricsSource]
"""Returns the metrics source called by the given name (raises KayentaError if unknown)."""


@dataclass
class RunnerMetrics:
    """The runner's own Prometheus metrics."""

    judgements: Counter
    judge_seconds: Histogram
    source_errors: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> RunnerMetrics:
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
        )


class AnalysisRunner:
    """Schedules and runs the intervals of live analyses."""

    def __init__(
        self,
        store: Store,
        sources: SourceFactory,
        *,
        registry: Registry,
        metrics: RunnerMetrics,
        concurrency: int = 8,
        retry_limit: int = 3,
        on_finish: Callable[[AnalysisRecord], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.sources = sources
        self.registry = registry
        self.metrics = metrics
        self.concurrency = concurrency
        self.retry_limit = retry_limit
        self.on_finish = on_finish
        self.clock = clock
        self._failures: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )

    def start(self) -> int:
        """Start the scheduler and resume every running analysis; return how many were resumed."""
        self.scheduler.start()
        running = self.store.running_analyses()
        for analysis in running:
            self.schedule(analysis.id)
        if running:
            log.info("resumed %d running analyses", len(running))
        return len(running)

    def shutdown(self) -> None:
        """Stop scheduling; an interval being judged finishes or is judged again after a restart."""
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def schedule(self, analysis_id: str, *, delay: float = 0.0) -> None:
        """Schedule the analysis' next run at its next due interval (now if one is overdue)."""
        analysis = self.store.get_analysis(analysis_id, with_intervals=False)
        if analysis is None or analysis.complete:
            return
        judged = self.store.judged_indices(analysis_id)
        pending = [i for i in range(analysis.intervals_total) if i not in judged]
        if not pending:  # every interval stored but not finished: finish from the last one
            self._run(analysis_id)
            return
        when = max(self.clock() + delay, analysis.due_ts(pending[0]))
        self.scheduler.add_job(
            self._run,
            "date",
            run_date=datetime.fromtimestamp(when, UTC),
            args=[analysis_id],
            id=analysis_id,
            replace_existing=True,
        )

    def cancel(self, analysis_id: str, reason: str = "cancelled") -> AnalysisRecord | None:
        """Cancel a running analysis: no further interval is judged."""
        with self._lock:
            record = self.store.finish_analysis(
                analysis_id,
                CANCELLED,
                Verdict.FAIL.value,
                None,
                f"{reason}: the analysis was stopped before its end, so it has no passing verdict",
            )
        if self.scheduler.get_job(analysis_id) is not None:
            self.scheduler.remove_job(analysis_id)
        if record is not None:
            self._notify(analysis_id)
        return record

    def _run(self, analysis_id: str) -> None:
        """Judge every due, unjudged interval in order, then schedule the next one."""
        try:
            if self._judge_due_intervals(analysis_id):
                self.schedule(analysis_id)
        except Exception:  # keep the scheduler alive; the analysis is retried shortly
            log.exception("analysis %s: unexpected error; retrying in 5 s", analysis_id)
            self.schedule(analysis_id, delay=5.0)

    def _judge_due_intervals(self, analysis_id: str) -> bool:
        """Return True when the analysis goes on (more intervals to judge)."""
        analysis = self.store.get_analysis(analysis_id, with_intervals=True)
        if analysis is None or analysis.complete:
            return False
        judged = {interval.index: interval for interval in analysis.intervals}
        last = analysis.intervals_total - 1
        if len(judged) == analysis.intervals_total:
            final = judged[last]
            self._finish(analysis, COMPLETED, final.verdict, final.score, final.reason)
            return False
        for index in range(analysis.intervals_total):
            if index in judged:
                continue
            if analysis.due_ts(index) > self.clock():
                return True
            outcome = self._judge_interval(analysis, index)
            if outcome is None:  # the source failed; its retry is already scheduled, with a delay
                return False
            if outcome:
                return False
        return False

    def _judge_sequential(self, analysis: AnalysisRecord, index: int) -> bool | None:
        """Sequential mode: fold the new points into the persisted state; decide when it can."""
        window = analysis.window(index)
        began = time.perf_counter()
        try:
            config = load_config(analysis.config_body, registry=self.registry, mode="sequential")
            sequential = SequentialAnalysis(
                config,
                analysis.extra.get("alpha", 0.05),
                family=analysis.extra.get("family", "bonferroni"),
                registry=self.registry,
                thresholds=Thresholds(analysis.thresholds["pass"], analysis.thresholds["marginal"]),
            ).restore(json_state_decode(analysis.state or {}))
            batch = fetch_sequential_batch(
                config,
                self.sources(analysis.source),
                *scopes(analysis),
                start=window[0],
                end=window[1],
                step=analysis.step_s,
                after=window[0] if index else None,
                concurrency=self.concurrency,
                registry=self.registry,
            )
        except SourceError as exc:
            return self._source_failed(analysis, index, exc)
        except KayentaError as exc:
            self._finish(
                analysis, FAILED, Verdict.FAIL.value, None, f"analysis failed: {exc}", error=str(exc)
            )
            return True
        result = sequential.update(batch.baseline, batch.canary)
        last = index == analysis.intervals_total - 1
        if result.verdict is Verdict.PENDING and last:
            result = sequential.finish()
        if batch.warnings:  # series that could not pair: said in the warnings and the reason
            result = dataclasses.replace(
                result,
                warnings=(*result.warnings, *batch.warnings),
                reason=f"{result.reason}; warning: {'; '.join(batch.warnings)}",
            )
        self.metrics.judge_seconds.observe(time.perf_counter() - began)
        final = None
        if result.verdict is not Verdict.PENDING:
            where = "final interval" if last else "decided early at interval"
            final = (
                COMPLETED,
                result.verdict.value,
                result.score,
                f"{where} {index + 1} of {analysis.intervals_total}: {result.reason}",
            )
        with self._lock:
            stored = self.store.record_interval(
                analysis.id,
                index,
                window,
                analysis.due_ts(index),
                result,
                batch.pairs,
                final=final,
                state=json_state_encode(sequential.to_state()),
            )
        self._failures.pop((analysis.id, index), None)
        if not stored:
            return True
        self.metrics.judgements.labels(result.verdict.value).inc()
        if final is not None:
            self._notify(analysis.id)
            return True
        return False

    def _judge_interval(self, analysis: AnalysisRecord, index: int) -> bool | None:
        """Fetch, judge and store one interval; True if it ended the analysis, None on a source error."""
        if analysis.mode == "sequential":
            return self._judge_sequential(analysis, index)
        window = analysis.window(index)
        began = time.perf_counter()
        try:
            # The mode is the analysis' (a config may state another one that the request overrode).
            loaded = load_config(analysis.config_body, registry=self.registry, mode="fixed")
            config = live_fixed_config(loaded)
            thresholds = Thresholds(analysis.thresholds["pass"], analysis.thresholds["marginal"])
            source = self.sources(analysis.source)
            data = fetch_metric_sets(
                config,
                source,
                *scopes(analysis),
                start=window[0],
                end=window[1],
                step=analysis.step_s,
                concurrency=self.concurrency,
            )
        except SourceError as exc:
            return self._source_failed(analysis, index, exc)
        except KayentaError as exc:  # a config or source that cannot work: fail now, clearly
            self._finish(
                analysis, FAILED, Verdict.FAIL.value, None, f"analysis failed: {exc}", error=str(exc)
            )
            return True
        pairs = pair_metric_sets(config, data.baseline, data.canary, scopes=scopes(analysis))
        result = judge_pairs(config, pairs, thresholds=thresholds, registry=self.registry)
        self.metrics.judge_seconds.observe(time.perf_counter() - began)
        final = self._final(analysis, index, result)
        with self._lock:
            stored = self.store.record_interval(
                analysis.id, index, window, analysis.due_ts(index), result, pairs, final=final
            )
        self._failures.pop((analysis.id, index), None)
        if not stored:  # cancelled meanwhile, or judged by another replica
            return True
        self.metrics.judgements.labels(result.verdict.value).inc()
        log.info(
            "analysis %s interval %d/%d: %s (score %s)",
            analysis.id,
            index + 1,
            analysis.intervals_total,
            result.verdict.value,
            result.score,
        )
        if final is not None:
            self._notify(analysis.id)
            return True
        return False

    @staticmethod
    def _final(
        analysis: AnalysisRecord, index: int, result: CanaryResult
    ) -> tuple[str, str, float | None, str] | None:
        """Return the final (status, verdict, score, reason) if this interval ends the analysis."""
        if index == analysis.intervals_total - 1:
            return (
                COMPLETED,
                result.verdict.value,
                result.score,
                (f"final interval {index + 1} of {analysis.intervals_total}: {result.reason}"),
            )
        if analysis.fail_fast and result.verdict is Verdict.FAIL:
            return (
                COMPLETED,
                Verdict.FAIL.value,
                result.score,
                (f"failed fast at interval {index + 1} of {analysis.intervals_total}: {result.reason}"),
            )
        return None

    def _source_failed(self, analysis: AnalysisRecord, index: int, exc: SourceError) -> bool | None:
        self.metrics.source_errors.labels(analysis.source).inc()
        key = (analysis.id, index)
        self._failures[key] = self._failures.get(key, 0) + 1
        attempts = self._failures[key]
        if attempts >= self.retry_limit:
            self._failures.pop(key, None)
            reason = f"metrics source failed {attempts} times at interval {index + 1}: {exc}"
            self._finish(analysis, FAILED, Verdict.FAIL.value, None, reason, error=str(exc))
            return True
        delay = min(30.0, max(2.0, analysis.interval_s / 4))
        log.warning(
            "analysis %s interval %d: %s; retry %d in %.0f s", analysis.id, index + 1, exc, attempts, delay
        )
        self.schedule(analysis.id, delay=delay)
        return None

    def _finish(
        self,
        analysis: AnalysisRecord,
        status: str,
        verdict: str,
        score: float | None,
        reason: str,
        *,
        error: str | None = None,
    ) -> None:
        with self._lock:
            self.store.finish_analysis(analysis.id, status, verdict, score, reason, error=error)
        self._notify(analysis.id)

    def _notify(self, analysis_id: str) -> None:
        if self.on_finish is None:
            return
        record = self.store.get_analysis(analysis_id, with_intervals=False)
        if record is not None and record.complete:
            try:
                self.on_finish(record)
            except Exception:  # a notification must never change or delay a verdict
                log.exception("analysis %s: on_finish hook failed", analysis_id)


def scopes(analysis: AnalysisRecord) -> tuple[Scope, Scope]:
    """Return the analysis' baseline and canary scopes (the canary may have its own location and params)."""
    return (
        Scope(analysis.baseline_scope, analysis.location, analysis.scope_params),
        Scope(
            analysis.canary_scope,
            analysis.extra.get("canary_location", analysis.location),
            analysis.extra.get("canary_scope_params", analysis.scope_params),
        ),
    )


LIVE_MIN_EFFECTIVE = 8.0
"""Effectively independent points a side a live fixed-mode interval needs to be judged (native configs)."""


def live_fixed_config(config: CanaryConfig) -> CanaryConfig:
    """Return ``config`` with the live rule: an interval on too few independent points is inconclusive.

    A native config's ``mann-whitney`` metric that leaves ``min_effective`` unset gets
    ``LIVE_MIN_EFFECTIVE``: 15 points of a 10-s rate window sampled each second hold the
    information of one or two, so the interval is inconclusive (marginal) rather than a
    fail-fast. Kayenta configs keep Kayenta's behaviour. Test: ``tests/test_live_service.py``.
    """
    if config.format != "native":
        return config
    metrics = tuple(
        dataclasses.replace(m, judge_params={**m.judge_params, "min_effective": LIVE_MIN_EFFECTIVE})
        if m.judge_type == "mann-whitney" and m.judge_params.get("min_effective") is None
        else m
        for m in config.metrics
    )
    return dataclasses.replace(config, metrics=metrics)


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
