"""The procrastinate dispatcher keeps its jobs table's planner statistics fresh (issue 15, capacity).

The jobs table starts empty and fills in bursts (thousands of analyses created at once); planned
as nearly empty, procrastinate's job fetch checked the lock of every due job before taking one
(0.57 s a fetch with 3,900 due, 0.4 ms once analyzed), so an overloaded replica fell further
behind. The dispatcher's upkeep analyzes the table every ``analyze_every`` seconds. A real
PostgreSQL and a real procrastinate worker; the jobs are deferred an hour ahead (none runs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import fresh_postgres_database

from kayenta_py.service.dispatch_procrastinate import ProcrastinateDispatcher, libpq_url


@pytest.fixture
def database() -> Iterator[str]:
    yield from fresh_postgres_database()


def statistics(conninfo: str) -> tuple[float, int]:
    """The planner's row estimate of the jobs table and how often it was analyzed."""
    with psycopg.connect(conninfo, autocommit=True) as connection:
        row = connection.execute(
            "SELECT c.reltuples, s.analyze_count + s.autoanalyze_count FROM pg_class c "
            "JOIN pg_stat_user_tables s ON s.relid = c.oid WHERE c.relname = 'procrastinate_jobs'"
        ).fetchone()
    assert row is not None
    return float(row[0]), int(row[1])


def test_the_upkeep_analyzes_the_jobs_table_as_it_fills(database: str) -> None:
    dispatcher = ProcrastinateDispatcher(
        database, replica="stats", heartbeat=0.2, stalled_timeout=5.0, analyze_every=0.5
    )
    dispatcher.bind(lambda analysis_id: None, None, resume=lambda analysis_id: None, running=lambda: [])
    dispatcher.start()
    try:
        conninfo = libpq_url(database)
        later = time.time() + 3600
        for index in range(300):
            dispatcher.schedule(f"analysis-{index}", later)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            estimate, analyzed = statistics(conninfo)
            if estimate >= 300:
                break
            time.sleep(0.2)
        assert analyzed >= 1 and estimate >= 300, (estimate, analyzed)  # the burst is in the plan's view
        assert dispatcher.state().healthy, dispatcher.state()
    finally:
        dispatcher.stop(graceful=False)
