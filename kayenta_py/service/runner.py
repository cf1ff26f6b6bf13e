"""Live analyses: a dispatcher runs each analysis' intervals when they fall due.

The database is the source of truth. Interval ``i`` of an analysis falls due at
``start + warmup + (i + 1) * interval``; each run judges every due interval not
yet stored, in order, and schedules the next. On start every running analysis
is resumed, so an interval that fell due while the service was down is judged
once, late: stored intervals are never judged again (a unique key guarantees it)
and none is skipped. Where and when a run happens is the dispatcher's
(:mod:`kayenta_py.service.dispatch`: APScheduler in this process, or procrastinate jobs shared
by replicas on PostgreSQL); what a run does is the same with both.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import UTC

from apscheduler.schedulers.background import BackgroundScheduler

from kayenta_py.config.registry import Registry
from kayenta_py.engine.source import MetricsSource, SourceError
from kayenta_py.model.errors import FieldError, KayentaError
from kayenta_py.model.redact import redact
from kayenta_py.model.types import CanaryResult, Verdict
from kayenta_py.service.dispatch import Dispatcher, EmbeddedDispatcher
from kayenta_py.service.judging import judge_fixed, judge_sequential
from kayenta_py.service.runner_support import (
    ParsedConfigs,
    RunnerMetrics,
    _Trouble,
    log_judged,
)
from kayenta_py.service.store.errors import is_busy_error, is_unavailable_error
from kayenta_py.service.store.records import CANCELLED, COMPLETED, FAILED, Analysis
from kayenta_py.service.store.repository import Store

log = logging.getLogger(__name__)

SourceFactory = Callable[[str], MetricsSource]
"""Returns the metrics source called by the given name (raises KayentaError if unknown)."""


class AnalysisRunner:
    """Schedules and runs the intervals of live analyses.

    Each source's analyses run on that source's own pool of ``source_workers`` threads, so a
    slow source delays only its own analyses (other sources and the notifier keep theirs), and
    an interval's fetch is cut off after ``fetch_deadline`` seconds. A permanent error (a
    refusal such as HTTP 400, a config that cannot work, an invalid step) fails the analysis at
    once; a transient one (connection, timeout, 429, 5xx, an unexpected error such as a busy or
    full database) is tried again after ``retry_backoff`` seconds, doubling up to
    ``retry_max_delay``, and fails the analysis after ``retry_limit`` attempts or
    ``retry_max_seconds``, naming the last error. Test: ``tests/test_runner_bounded.py``.

    Runs are dispatched by ``dispatcher`` (default :class:`EmbeddedDispatcher`); :attr:`scheduler`
    is the process' APScheduler, running with every dispatcher (notifiers' jobs live there).
    """

    def __init__(
        self,
        store: Store,
        sources: SourceFactory,
        *,
        registry: Registry,
        metrics: RunnerMetrics,
        concurrency: int = 8,
        retry_limit: int = 3,
        retry_backoff: float = 2.0,
        retry_max_delay: float = 60.0,
        retry_max_seconds: float = 600.0,
        source_workers: int = 4,
        fetch_deadline: float = 120.0,
        on_finish: Callable[[Analysis], None] | None = None,
        clock: Callable[[], float] = time.time,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        if retry_limit < 1 or source_workers < 1:
            raise KayentaError("retry_limit and source_workers must be at least 1")
        for name, value in (
            ("retry_backoff", retry_backoff),
            ("retry_max_delay", retry_max_delay),
            ("retry_max_seconds", retry_max_seconds),
            ("fetch_deadline", fetch_deadline),
        ):
            if not (math.isfinite(value) and value > 0):
                raise KayentaError(f"{name} must be a positive number of seconds, got {value!r}")
        self.store = store
        self.sources = sources
        self.registry = registry
        self.metrics = metrics
        self.concurrency = concurrency
        self.retry_limit = retry_limit
        self.retry_backoff = retry_backoff
        self.retry_max_delay = retry_max_delay
        self.retry_max_seconds = retry_max_seconds
        self.source_workers = source_workers
        self.fetch_deadline = fetch_deadline
        self.on_finish = on_finish
        self.clock = clock
        self._trouble: dict[str, _Trouble] = {}
        self._source_of: dict[str, str] = {}
        self.configs = ParsedConfigs(registry)  # each analysis' config parsed once, not per interval
        self._lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.dispatcher: Dispatcher = dispatcher or EmbeddedDispatcher(source_workers)
        self.dispatcher.bind(
            self._run,
            self.scheduler,
            resume=self.schedule,
            running=lambda: [analysis.id for analysis in self.store.running_analyses()],
        )

    def start(self) -> int:
        """Start the scheduler and dispatcher, resume every running analysis; return how many.

        On replicas each one resumes them all: the dispatcher keeps one pending run per analysis
        (procrastinate's queueing lock), and a stored interval is never judged again.
        """
        self.scheduler.start()
        self.dispatcher.start()
        running = self.store.running_analyses()
        for analysis in running:
            self.schedule(analysis.id)
        if running:
            log.info("resumed %d running analyses", len(running))
        return len(running)

    def shutdown(self) -> None:
        """Stop dispatching; an interval being judged finishes, is handed back, or is judged again."""
        self.dispatcher.stop(graceful=True)
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)

    def update_metrics(self) -> None:
        """Refresh the dispatch queue-depth gauge (called when /metrics is scraped)."""
        engine = self.dispatcher.engine
        for state, depth in self.dispatcher.queue_depth().items():
            self.metrics.queue_depth.labels(engine, state).set(depth)

    def schedule(self, analysis_id: str, *, delay: float = 0.0) -> None:
        """Schedule the analysis' next run at its next due interval (now if one is overdue)."""
        analysis = self.store.get_analysis(analysis_id, with_intervals=False)
        if analysis is None or analysis.complete:
            return
        self._source_of[analysis_id] = analysis.source
        judged = self.store.judged_indices(analysis_id)
        pending = [i for i in range(analysis.intervals_total) if i not in judged]
        if not pending:  # every interval stored but not finished: finish from the last one
            self._run(analysis_id)
            return
        self._at(analysis_id, max(self.clock() + delay, analysis.due_ts(pending[0])))

    def _at(self, analysis_id: str, when: float) -> None:
        """Have the dispatcher run the analysis at ``when`` (on its source's pool, embedded)."""
        self.dispatcher.schedule(analysis_id, when, source=self._source_of.get(analysis_id))

    def cancel(self, analysis_id: str, reason: str = "cancelled") -> Analysis | None:
        """Cancel a running analysis: no further interval is judged (a finished one is left as it is)."""
        self._finish(
            analysis_id,
            CANCELLED,
            Verdict.FAIL.value,
            None,
            f"{reason}: the analysis was stopped before its end, so it has no passing verdict",
        )
        self.dispatcher.cancel(analysis_id)
        return self.store.get_analysis(analysis_id, with_intervals=False)

    def _run(self, analysis_id: str) -> None:
        """Judge every due, unjudged interval in order, then schedule the next one."""
        trouble = self._trouble.get(analysis_id)
        if trouble is not None and trouble.unrecorded is not None:
            self._fail(analysis_id, *trouble.unrecorded)  # the store could not take the failure yet
            return
        try:
            following = self._judge_due_intervals(analysis_id)
            if following is not None:  # the next interval's due time: no need to read it all again
                self._at(analysis_id, max(self.clock(), following))
        except Exception as exc:  # keep the scheduler alive; the error decides: fail now or retry
            self._on_error(analysis_id, None, exc)

    def _judge_due_intervals(self, analysis_id: str) -> float | None:
        """Return when the next interval falls due if the analysis goes on, else None.

        It reads the analysis row and the stored intervals' indices only (no pairs, no results).
        """
        analysis = self.store.get_analysis(analysis_id, with_intervals=False)
        if analysis is None or analysis.complete:
            self.configs.forget(analysis_id)
            return None
        judged = self.store.judged_indices(analysis_id)
        if len(judged) == analysis.intervals_total:  # all stored, not finished: finish from the last
            final = self.store.interval_outcomes(analysis_id)[-1]
            self._finish(analysis.id, COMPLETED, final.verdict, final.score, final.reason)
            return None
        for index in range(analysis.intervals_total):
            if index in judged:
                continue
            if analysis.due_ts(index) > self.clock():
                return analysis.due_ts(index)
            try:
                ended = self._judge_interval(analysis, index)
            except Exception as exc:
                self._on_error(analysis_id, index, exc)
                return None
            self._trouble.pop(analysis_id, None)
            if ended:
                self.configs.forget(analysis_id)
                return None
            if analysis.mode == "sequential":  # catching up: the next one folds into the state just stored
                fresh = self.store.get_analysis(analysis_id, with_intervals=False)
                if fresh is None or fresh.complete:
                    return None
                analysis = fresh
        return None

    def _on_error(self, analysis_id: str, index: int | None, exc: Exception) -> None:
        """Fail the analysis at once on a permanent error; retry a transient one with backoff, bounded."""
        at = "" if index is None else f" at interval {index + 1}"
        if isinstance(exc, SourceError):
            self.metrics.source_errors.labels(self._source_of.get(analysis_id, "unknown")).inc()
            what, text, transient = "metrics source", str(exc), exc.transient
        elif isinstance(exc, KayentaError):  # a config, query or step that cannot work
            what, text, transient = "analysis", str(exc), False
        elif is_busy_error(exc) or is_unavailable_error(exc):  # the store, not the analysis: wait for it
            what, text, transient = "database", f"{type(exc).__name__}: {exc}"[:500], True
        else:  # a judge or store that raised: perhaps a bug
            what, text, transient = "internal error", f"{type(exc).__name__}: {exc}"[:500], True
        text = redact(text)
        if not transient:
            self._fail(analysis_id, f"{what} failed{at}: {text}", text)
            return
        trouble = self._trouble.setdefault(analysis_id, _Trouble(self.clock()))
        trouble.attempts += 1
        elapsed = self.clock() - trouble.first_ts
        counted = what != "database"  # a busy or full store is waited for up to retry_max_seconds
        if (counted and trouble.attempts >= self.retry_limit) or elapsed >= self.retry_max_seconds:
            reason = f"{what} failed {trouble.attempts} times{at} over {elapsed:.0f} s; last error: {text}"
            self._fail(analysis_id, reason, text)
            return
        delay = self._backoff(trouble.attempts)
        if what == "internal error" and not trouble.logged_trace:  # the trace once, then one line a try
            trouble.logged_trace = True
            log.error("analysis %s%s: unexpected error", analysis_id, at, exc_info=exc)
        log.warning(
            "analysis %s%s: %s: %s; attempt %d of %d, next in %.0f s",
            analysis_id,
            at,
            what,
            text,
            trouble.attempts,
            self.retry_limit,
            delay,
        )
        self._at(analysis_id, self.clock() + delay)

    def _backoff(self, attempt: int) -> float:
        return float(min(self.retry_max_delay, self.retry_backoff * 2 ** min(attempt - 1, 30)))

    def _fail(self, analysis_id: str, reason: str, error: str) -> None:
        """Store the analysis as failed; if the store cannot take it (disk full), try again with backoff."""
        reason, error = redact(reason), redact(error)
        try:
            if self._finish(analysis_id, FAILED, Verdict.FAIL.value, None, reason, error=error):
                log.warning("analysis %s failed: %s", analysis_id, reason)
        except Exception as exc:
            trouble = self._trouble.setdefault(analysis_id, _Trouble(self.clock()))
            trouble.unrecorded = (reason, error)
            trouble.record_attempts += 1
            delay = self._backoff(trouble.record_attempts)
            log.error(
                "analysis %s: cannot store its failure (%s); trying again in %.0f s",
                analysis_id,
                redact(f"{type(exc).__name__}: {exc}"[:300]),
                delay,
            )
            self._at(analysis_id, self.clock() + delay)
            return
        self._trouble.pop(analysis_id, None)

    def _judge_interval(self, analysis: Analysis, index: int) -> bool:
        """Fetch, judge and store one interval; True if it ended the analysis (errors are raised)."""
        step = analysis.step_s
        if not (isinstance(step, int | float) and math.isfinite(step) and step > 0):
            raise FieldError("step", f"{step!r} is not a positive, finite number of seconds")
        judge = judge_sequential if analysis.mode == "sequential" else judge_fixed
        lateness = max(0.0, self.clock() - analysis.due_ts(index))
        self.metrics.lateness.labels(self.metrics.replica).observe(lateness)
        began = time.perf_counter()
        judged = judge(
            analysis,
            index,
            self.sources(analysis.source),
            registry=self.registry,
            concurrency=self.concurrency,
            deadline=self.fetch_deadline,
            configs=self.configs,
        )
        self.metrics.judge_seconds.observe(time.perf_counter() - began)
        with self._lock:
            stored = self.store.record_interval(
                analysis.id,
                index,
                judged.window,
                analysis.due_ts(index),
                judged.result,
                judged.pairs,
                final=judged.final,
                state=judged.state,
            )
        return self._judged(analysis, index, judged.result, stored, judged.final is not None, began)

    def _judged(
        self,
        analysis: Analysis,
        index: int,
        result: CanaryResult,
        stored: bool,
        final: bool,
        began: float,
    ) -> bool:
        """After an interval's store: count, log one line, notify if it ended; True if the analysis ended."""
        if not stored:  # cancelled meanwhile, or judged by another replica
            return True
        self.metrics.judgements.labels(result.verdict.value).inc()
        self.metrics.replica_judgements.labels(self.metrics.replica, result.verdict.value).inc()
        log_judged(analysis, index, result, time.perf_counter() - began)
        if final:
            self._notify(analysis.id)
        return final

    def _finish(
        self,
        analysis_id: str,
        status: str,
        verdict: str,
        score: float | None,
        reason: str,
        *,
        error: str | None = None,
    ) -> bool:
        """End a running analysis and notify; True if it ended now (a finished one is left unchanged)."""
        with self._lock:
            before = self.store.get_analysis(analysis_id, with_intervals=False)
            if before is None or before.complete:
                return False
            record = self.store.finish_analysis(analysis_id, status, verdict, score, reason, error=error)
        self._trouble.pop(analysis_id, None)
        if record is None or record.status != status:
            return False
        self._notify(analysis_id)
        return True

    def _notify(self, analysis_id: str) -> None:
        if self.on_finish is None:
            return
        record = self.store.get_analysis(analysis_id, with_intervals=False)
        if record is not None and record.complete:
            try:
                self.on_finish(record)
            except Exception:  # a notification must never change or delay a verdict
                log.exception("analysis %s: on_finish hook failed", analysis_id)


