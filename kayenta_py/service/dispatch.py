"""Dispatch: when and where an analysis' next run happens (the runner says what a run does).

The runner asks its :class:`Dispatcher` to run an analysis at a time (``schedule``) or no
more (``cancel``); the dispatcher calls the runner's bound ``run(analysis_id)`` then, in some
thread of some process. Two dispatchers:

- :class:`EmbeddedDispatcher`: APScheduler in this process, one date job per analysis on a
  pool per metrics source (one process; a restart resumes every running analysis). The
  default with SQLite.
- ``ProcrastinateDispatcher`` (:mod:`kayenta_py.service.dispatch_procrastinate`): each
  analysis' next run is a procrastinate job in PostgreSQL, locked and queue-locked by the
  analysis id, run by a worker inside every replica; a dead replica's running jobs are
  retried by the others. The default with PostgreSQL (setting ``dispatch``).

Test: ``tests/test_runner_bounded.py`` (embedded), ``tests/test_replicas.py`` (procrastinate).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from apscheduler.executors.pool import ThreadPoolExecutor as JobThreadPool
from apscheduler.schedulers.base import BaseScheduler

if TYPE_CHECKING:
    from kayenta_py.service.settings import Settings

Run = Callable[[str], None]
"""Judges an analysis' due intervals and schedules its next run (the runner's ``_run``)."""
RunningIds = Callable[[], list[str]]
"""Returns the ids of the running analyses in the store."""

ENGINES = ("auto", "embedded", "procrastinate")


@dataclass(frozen=True)
class DispatchState:
    """What readiness and metrics show of a dispatcher."""

    engine: str
    running: bool  # started and not stopped
    healthy: bool  # it can start runs now (its worker runs and reaches its queue)
    problem: str | None = None  # why it is not healthy


class Dispatcher(Protocol):
    """Runs an analysis' next run at a given time, in order, one at a time per analysis."""

    engine: str

    def bind(self, run: Run, scheduler: BaseScheduler, *, resume: Run, running: RunningIds) -> None:
        """Before :meth:`start`: ``run`` is a due run's work, ``scheduler`` the process' APScheduler;
        ``resume`` schedules an analysis by its stored intervals, ``running`` lists running ones."""

    def start(self) -> None:
        """Start taking and running jobs (the bound scheduler is already running)."""

    def stop(self, graceful: bool = True) -> None:
        """Stop running jobs; ``graceful``: let running ones finish (or hand them back), briefly."""

    def schedule(self, analysis_id: str, when: float, *, source: str | None = None) -> None:
        """Run the analysis at ``when`` (epoch seconds); replaces its pending run (one per analysis)."""

    def cancel(self, analysis_id: str) -> None:
        """Drop the analysis' pending run, if any (a running one finishes)."""

    def state(self) -> DispatchState:
        """Return whether it runs and is healthy."""

    def queue_depth(self) -> dict[str, int]:
        """Return pending runs by state: ``scheduled`` (not due yet), ``due`` (late), ``running``."""


class EmbeddedDispatcher:
    """APScheduler in this process: one date job per analysis, on its source's pool of threads.

    Each source's analyses run on that source's own pool of ``source_workers`` threads, so a
    slow source delays only its own analyses. Pending runs live in memory: after a restart the
    runner resumes every running analysis from the database.
    """

    engine = "embedded"

    def __init__(self, source_workers: int = 4) -> None:
        self.source_workers = source_workers
        self._run: Run | None = None
        self._scheduler: BaseScheduler | None = None
        self._executors: set[str] = set()
        self._executors_lock = threading.Lock()
        self._stopped = False

    def bind(self, run: Run, scheduler: BaseScheduler, *, resume: Run, running: RunningIds) -> None:
        self._run, self._scheduler = run, scheduler

    @property
    def scheduler(self) -> BaseScheduler:
        if self._scheduler is None:
            raise RuntimeError("the dispatcher is not bound to a runner")
        return self._scheduler

    def start(self) -> None:
        self._stopped = False

    def stop(self, graceful: bool = True) -> None:
        """Nothing of its own to stop: the runner shuts its scheduler down (a running interval is
        judged again after a restart if it was not stored)."""
        self._stopped = True

    def schedule(self, analysis_id: str, when: float, *, source: str | None = None) -> None:
        """Add (or replace) the analysis' date job (no store access: works when the store is down)."""
        assert self._run is not None, "bind() first"
        self.scheduler.add_job(
            self._run,
            "date",
            run_date=datetime.fromtimestamp(when, UTC),
            args=[analysis_id],
            id=analysis_id,
            replace_existing=True,
            executor=self._executor(source),
        )

    def cancel(self, analysis_id: str) -> None:
        if self.scheduler.get_job(analysis_id) is not None:
            self.scheduler.remove_job(analysis_id)

    def _executor(self, source: str | None) -> str:
        """The scheduler executor of ``source``'s analyses, added on first use."""
        if source is None:
            return "default"
        alias = f"source:{source}"
        with self._executors_lock:
            if alias not in self._executors:
                self.scheduler.add_executor(JobThreadPool(self.source_workers), alias)
                self._executors.add(alias)
        return alias

    def state(self) -> DispatchState:
        running = self._scheduler is not None and bool(self._scheduler.running) and not self._stopped
        return DispatchState(self.engine, running, running, None if running else "the scheduler is stopped")

    def queue_depth(self) -> dict[str, int]:
        depth = {"scheduled": 0, "due": 0, "running": 0}
        if self._scheduler is None or not self._scheduler.running:
            return depth
        now = datetime.now(UTC)
        for job in self._scheduler.get_jobs():
            if job.func != self._run:  # a notifier's job, not an analysis run
                continue
            due = job.next_run_time is not None and job.next_run_time <= now
            depth["due" if due else "scheduled"] += 1
        return depth


def choose_engine(settings: Settings) -> str:
    """Return ``embedded`` or ``procrastinate`` for the settings' ``dispatch`` and database URL."""
    postgres = settings.resolved_database_url.startswith("postgresql")
    if settings.dispatch == "auto":
        return "procrastinate" if postgres else "embedded"
    return settings.dispatch


def build_dispatcher(settings: Settings) -> Dispatcher:
    """Return the dispatcher the settings choose (:func:`choose_engine`)."""
    if choose_engine(settings) == "procrastinate":
        from kayenta_py.service.dispatch_procrastinate import ProcrastinateDispatcher

        return ProcrastinateDispatcher.from_settings(settings)
    return EmbeddedDispatcher(settings.source_workers)

