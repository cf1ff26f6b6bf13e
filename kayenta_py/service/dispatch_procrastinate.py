"""Procrastinate dispatch: analysis runs are PostgreSQL jobs shared by every replica.

Each analysis has at most one waiting job (``queueing_lock`` = its id), deferred to its next
due time (``schedule_at``), and its jobs run one at a time, in order (``lock`` = its id). Every
replica runs a procrastinate worker in a background thread (its own event loop), so whichever
replica is free takes a due job; the job calls the runner's ``_run``, which judges the due
intervals and defers the next job. Resuming every running analysis at each replica's start is
idempotent: a second deferral of an analysis that has a waiting job is refused by the queueing
lock, and a stored interval is never judged again (the store's unique key).

A replica that dies (kill -9, a lost node) stops its worker's heartbeat; after
``stalled_timeout`` seconds the others retry its running jobs (procrastinate's stalled-job
query on heartbeats), and a sweep defers a job for any running analysis left without one. A
replica stopped cleanly waits ``shutdown_timeout`` seconds for its running jobs, then hands
the rest back (retried at once by the others). Retries of a failing interval, with backoff,
are the runner's own (a job deferred ``backoff`` seconds ahead); the task itself never raises,
so procrastinate never has to retry a job whose next one is already queued.

The schema is applied at start when missing, under a PostgreSQL advisory lock (replicas that
start together do not race). Test: ``tests/test_replicas.py``; docs: ``docs/replicas.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import procrastinate
import psycopg
from apscheduler.schedulers.base import BaseScheduler
from procrastinate import exceptions as pexc
from procrastinate.jobs import Status
from procrastinate.schema import SchemaManager
from procrastinate.worker import Worker
from sqlalchemy.engine import make_url

from kayenta_py.model.redact import redact
from kayenta_py.service.dispatch import DispatchState, Run, RunningIds

if TYPE_CHECKING:
    from kayenta_py.service.settings import Settings

log = logging.getLogger(__name__)

TASK = "kayenta.analysis.run"
QUEUE = "kayenta-analyses"
SCHEMA_LOCK = 0x6B61_7965_6E74_61  # pg_advisory_lock key of the schema's creation ("kayenta")
SWEEP_MIN_S = 10.0  # the orphan sweep runs at most this often
ANALYZE_EVERY_S = 30.0  # how often the upkeep refreshes the jobs table's planner statistics
_ANALYZE = "ANALYZE procrastinate_jobs"


def libpq_url(database_url: str) -> str:
    """The libpq URL of a SQLAlchemy PostgreSQL URL (``postgresql+psycopg://`` -> ``postgresql://``)."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def ensure_schema(conninfo: str) -> bool:
    """Apply procrastinate's schema unless present; True if applied. Replicas serialize on a lock."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
        try:
            row = connection.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
            if row is not None and row[0] is not None:
                return False
            with connection.transaction():
                connection.execute(SchemaManager.get_schema())
            log.info("procrastinate schema applied")
            return True
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))


_DEPTH = """
SELECT count(*) FILTER (WHERE status = 'todo' AND scheduled_at > now()) AS scheduled,
       count(*) FILTER (WHERE status = 'todo' AND (scheduled_at IS NULL OR scheduled_at <= now())) AS due,
       count(*) FILTER (WHERE status = 'doing') AS running
  FROM procrastinate_jobs WHERE queue_name = %(queue)s AND status IN ('todo', 'doing')
"""
_PENDING = """
SELECT DISTINCT lock FROM procrastinate_jobs
 WHERE queue_name = %(queue)s AND status IN ('todo', 'doing') AND lock = ANY(%(ids)s)
"""
_MINE = "SELECT id FROM procrastinate_jobs WHERE worker_id = %(worker)s AND status = 'doing'"


class ProcrastinateDispatcher:
    """Analysis runs as procrastinate jobs, with a worker in this replica (see the module)."""

    engine = "procrastinate"

    def __init__(
        self,
        database_url: str,
        *,
        replica: str,
        concurrency: int = 8,
        poll_interval: float = 1.0,
        heartbeat: float = 5.0,
        stalled_timeout: float = 20.0,
        shutdown_timeout: float = 15.0,
        analyze_every: float = ANALYZE_EVERY_S,
    ) -> None:
        self.conninfo = libpq_url(database_url)
        self.analyze_every = analyze_every
        self.replica = replica
        self.concurrency = concurrency
        self.poll_interval = poll_interval
        self.heartbeat = heartbeat
        self.stalled_timeout = stalled_timeout
        self.shutdown_timeout = shutdown_timeout
        self._run: Run | None = None
        self._resume: Run | None = None
        self._running_ids: RunningIds | None = None
        self._sync: procrastinate.App | None = None  # defers and reads, from any thread
        self._app: procrastinate.App | None = None  # the worker's, on its own loop
        self._worker: Worker | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._checked = 0.0  # monotonic time of the worker's last good round trip
        self._problem: str | None = "not started"
        self._depth = {"scheduled": 0, "due": 0, "running": 0}

    @classmethod
    def from_settings(cls, settings: Settings) -> ProcrastinateDispatcher:
        return cls(
            settings.resolved_database_url,
            replica=settings.resolved_replica_id,
            concurrency=settings.dispatch_concurrency,
            poll_interval=settings.dispatch_poll_interval,
            heartbeat=settings.dispatch_heartbeat,
            stalled_timeout=settings.dispatch_stalled_timeout,
            shutdown_timeout=settings.dispatch_shutdown_timeout,
        )

    def bind(self, run: Run, scheduler: BaseScheduler, *, resume: Run, running: RunningIds) -> None:
        """``run``: a job's work; the sweep calls ``resume`` on each of ``running()`` without a job."""
        self._run, self._resume, self._running_ids = run, resume, running

    def _new_app(self, connector: Any) -> procrastinate.App:
        app = procrastinate.App(connector=connector)
        app.task(name=TASK, queue=QUEUE)(self._job)
        return app

    def _job(self, analysis_id: str) -> None:
        """A job: the runner's run of the analysis. Never raises (see the module)."""
        assert self._run is not None
        try:
            self._run(analysis_id)
        except Exception:  # a run that could not defer its next one: the sweep will
            log.exception("analysis %s: its run failed; the sweep schedules it again", analysis_id)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Apply the schema if missing, open the deferring pool, start the worker thread."""
        ensure_schema(self.conninfo)
        self._stopping.clear()
        self._sync = self._new_app(
            procrastinate.SyncPsycopgConnector(conninfo=self.conninfo, min_size=1, max_size=4)
        )
        self._sync.open()
        started = threading.Event()
        self._thread = threading.Thread(
            target=asyncio.run, args=(self._serve(started),), name="procrastinate-worker", daemon=True
        )
        self._thread.start()
        if not started.wait(timeout=30.0):
            log.warning("the procrastinate worker of replica %s is not up after 30 s", self.replica)
        log.info(
            "dispatch: procrastinate, replica %s, %d at once, heartbeat %g s, stalled after %g s",
            self.replica,
            self.concurrency,
            self.heartbeat,
            self.stalled_timeout,
        )

    async def _serve(self, started: threading.Event) -> None:
        """The worker thread: run the worker; after an error (the database lost), start it again."""
        self._loop = asyncio.get_running_loop()
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self._work(started)
                delay = 1.0
            except Exception as exc:
                self._problem = redact(f"worker: {type(exc).__name__}: {exc}"[:300])
                log.error("procrastinate worker of replica %s stopped: %s", self.replica, self._problem)
            for _ in range(int(delay * 10)):
                if self._stopping.is_set():
                    break
                await asyncio.sleep(0.1)
            delay = min(delay * 2, 30.0)

    async def _work(self, started: threading.Event) -> None:
        app = self._new_app(
            procrastinate.PsycopgConnector(
                conninfo=self.conninfo, min_size=1, max_size=self.concurrency + 3
            )
        )
        async with app.open_async():
            worker = Worker(
                app,
                queues=[QUEUE],
                name=self.replica,
                concurrency=self.concurrency,
                fetch_job_polling_interval=self.poll_interval,
                install_signal_handlers=False,
                update_heartbeat_interval=self.heartbeat,
                stalled_worker_timeout=self.stalled_timeout,
                delete_jobs="successful",
                shutdown_graceful_timeout=self.shutdown_timeout,
            )
            self._app, self._worker = app, worker
            if self._stopping.is_set():
                return
            upkeep = asyncio.create_task(self._upkeep(app, started), name="kayenta-upkeep")
            try:
                await worker.run()  # type: ignore[no-untyped-call]
            finally:
                self._worker = None
                upkeep.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await upkeep

    async def _upkeep(self, app: procrastinate.App, started: threading.Event) -> None:
        """Each heartbeat: retry stalled jobs of dead replicas, count the queue; sweep orphans.

        Every ``analyze_every`` seconds it also refreshes the jobs table's statistics. The table
        starts empty and fills in bursts faster than autovacuum analyzes it; planned as nearly
        empty, procrastinate's job fetch checks the lock of every due job before it takes one
        (measured: 0.57 s a fetch with 3,900 jobs due, 0.4 ms once analyzed), so an overloaded
        replica fell further behind (``bench/live_capacity.py``, docs/replicas.md).
        """
        swept = time.monotonic()
        analyzed = -math.inf
        while True:
            worker = self._worker
            if worker is not None and worker.worker_id is not None:
                try:
                    await self._recover(app)
                    row = await app.connector.execute_query_one_async(_DEPTH, queue=QUEUE)
                    self._depth = {key: int(row[key] or 0) for key in ("scheduled", "due", "running")}
                    self._checked, self._problem = time.monotonic(), None
                    started.set()
                    if time.monotonic() - analyzed >= self.analyze_every:
                        analyzed = time.monotonic()
                        await self._analyze(app)
                    if time.monotonic() - swept >= max(SWEEP_MIN_S, self.stalled_timeout):
                        swept = time.monotonic()
                        await asyncio.to_thread(self._sweep)
                except Exception as exc:
                    self._problem = redact(f"queue: {type(exc).__name__}: {exc}"[:300])
                    log.warning("replica %s: %s", self.replica, self._problem)
            await asyncio.sleep(min(self.heartbeat, 0.2) if not started.is_set() else self.heartbeat)

    async def _analyze(self, app: procrastinate.App) -> None:
        """Refresh the jobs table's planner statistics; a refusal is logged, not a lost queue."""
        try:
            await app.connector.execute_query_async(_ANALYZE)
        except Exception as exc:  # not its owner, say: fetches stay correct, only slower
            problem = redact(f"{type(exc).__name__}: {exc}")[:300]
            log.warning("replica %s: cannot analyze procrastinate_jobs (%s)", self.replica, problem)

    async def _recover(self, app: procrastinate.App) -> None:
        """Retry the running jobs of workers whose heartbeat stopped (dead replicas)."""
        manager = app.job_manager
        for job in await manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=self.stalled_timeout):
            assert job.id is not None
            if await self._requeue(app, job.id):
                log.warning(
                    "analysis %s: job %d of a replica without heartbeat for %g s is retried",
                    job.lock,
                    job.id,
                    self.stalled_timeout,
                )
        await manager.prune_stalled_workers(self.stalled_timeout)

    @staticmethod
    async def _requeue(app: procrastinate.App, job_id: int) -> bool:
        """Make a running job waiting again, now; if its next one is queued, end it. True if requeued."""
        manager = app.job_manager
        try:
            await manager.retry_job_by_id_async(job_id, retry_at=datetime.now(UTC))
            return True
        except pexc.UniqueViolation:  # the analysis' next job is waiting already: this one is done
            with contextlib.suppress(pexc.ConnectorException):
                await manager.finish_job_by_id_async(job_id, status=Status.FAILED, delete_job=False)
        except pexc.ConnectorException:  # another replica requeued it first
            pass
        return False

    def _sweep(self) -> None:
        """Schedule every running analysis that has no job (its last run could not defer one)."""
        if self._resume is None or self._running_ids is None or self._sync is None:
            return
        ids = list(self._running_ids())
        if not ids:
            return
        rows = self._sync.connector.get_sync_connector().execute_query_all(_PENDING, queue=QUEUE, ids=ids)
        pending = {row["lock"] for row in rows}
        for analysis_id in ids:
            if analysis_id not in pending:
                log.warning("analysis %s had no job; scheduling it", analysis_id)
                try:
                    self._resume(analysis_id)
                except Exception as exc:
                    log.error("analysis %s: cannot schedule it (%s)", analysis_id, redact(str(exc))[:300])

    def stop(self, graceful: bool = True) -> None:
        """Stop the worker: running jobs finish for ``shutdown_timeout`` s, the rest are handed back."""
        if self._thread is None:
            return
        self._stopping.set()
        loop, thread = self._loop, self._thread
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stop_worker)
        thread.join(timeout=(self.shutdown_timeout if graceful else 0.0) + 0.5)
        if thread.is_alive() and loop is not None:
            self._hand_back(loop)
        if self._sync is not None:
            with contextlib.suppress(Exception):
                self._sync.close()
            self._sync = None
        self._thread = None
        self._problem = "stopped"

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()  # type: ignore[no-untyped-call]

    def _hand_back(self, loop: asyncio.AbstractEventLoop) -> None:
        """Requeue this worker's running jobs now (the others take them); wait at most 5 s."""

        async def hand_back() -> int:
            app, worker = self._app, self._worker
            if app is None or worker is None or worker.worker_id is None:
                return 0
            rows = await app.connector.execute_query_all_async(_MINE, worker=worker.worker_id)
            return sum([await self._requeue(app, row["id"]) for row in rows])

        try:
            count = asyncio.run_coroutine_threadsafe(hand_back(), loop).result(timeout=5.0)
            log.warning("replica %s stopping: %d running analysis jobs handed back", self.replica, count)
        except Exception as exc:
            log.error("replica %s: jobs not handed back (%s); retried once stalled", self.replica, exc)

    # ------------------------------------------------------------ runs

    def schedule(self, analysis_id: str, when: float, *, source: str | None = None) -> None:
        """Defer the analysis' next job to ``when``; one already waiting stays (queueing lock)."""
        if self._sync is None:
            raise RuntimeError("the procrastinate dispatcher is not started")
        deferrer = self._sync.configure_task(
            TASK,
            lock=analysis_id,
            queueing_lock=analysis_id,
            schedule_at=datetime.fromtimestamp(when, UTC),
            queue=QUEUE,
        )
        with contextlib.suppress(pexc.AlreadyEnqueued):
            deferrer.defer(analysis_id=analysis_id)

    def cancel(self, analysis_id: str) -> None:
        """Delete the analysis' waiting job (a running one finishes and finds it ended)."""
        if self._sync is None:
            return
        manager = self._sync.job_manager
        for job in manager.list_jobs(queueing_lock=analysis_id, status="todo", queue=QUEUE):
            if job.id is not None:
                with contextlib.suppress(pexc.ConnectorException):
                    manager.cancel_job_by_id(job.id, delete_job=True)

    def state(self) -> DispatchState:
        thread = self._thread
        running = thread is not None and thread.is_alive() and not self._stopping.is_set()
        fresh = time.monotonic() - self._checked <= 3 * self.heartbeat + 5
        healthy = running and self._problem is None and fresh
        problem = None if healthy else (self._problem or "the worker has not reached its queue lately")
        return DispatchState(self.engine, running, healthy, problem)

    def queue_depth(self) -> dict[str, int]:
        """The queue's jobs now (the whole cluster's); the last count if the database does not answer."""
        if self._sync is not None:
            with contextlib.suppress(Exception):
                row = self._sync.connector.get_sync_connector().execute_query_one(_DEPTH, queue=QUEUE)
                self._depth = {key: int(row[key] or 0) for key in ("scheduled", "due", "running")}
        return dict(self._depth)

