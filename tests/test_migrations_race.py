"""Replicas migrating one empty PostgreSQL at once: every one succeeds, the schema is applied once.

Three stores (three engines, as three replicas would have) run ``Store.migrate`` together on a
fresh database, released by a barrier; the Alembic environment takes a PostgreSQL advisory lock
around the upgrade (``kayenta_py/service/store/migrations/env.py``), so they take turns instead
of racing on ``CREATE TABLE`` and the version row.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fresh_postgres_database
from sqlalchemy import create_engine, inspect, text

from kayenta_py.service.store.repository import Store

REPLICAS = 3

# One replica's start: import everything, connect, wait for the go file, then migrate.
MIGRATE = """
import sys, time
from pathlib import Path
from kayenta_py.service.store.repository import Store
store = Store(sys.argv[1])
assert store.ping()
go = Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
store.migrate()
store.close()
print("migrated")
"""


@pytest.fixture
def empty_postgres() -> Iterator[str]:
    yield from fresh_postgres_database()


def test_three_replicas_migrating_an_empty_database_together_all_succeed(
    empty_postgres: str, tmp_path: Path
) -> None:
    # Processes, as replicas are (Alembic's context is one per process): released together.
    go = tmp_path / "go"
    replicas = [
        subprocess.Popen(
            [sys.executable, "-c", MIGRATE, empty_postgres, str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(REPLICAS)
    ]
    try:
        time.sleep(0.5)  # not a timing assertion: the three are connected, waiting on the file
        go.touch()
        outputs = [replica.communicate(timeout=120)[0] for replica in replicas]
    finally:
        for replica in replicas:
            if replica.poll() is None:
                replica.kill()
                replica.wait()
    assert [replica.returncode for replica in replicas] == [0] * REPLICAS, outputs
    assert all(output.strip().endswith("migrated") for output in outputs), outputs
    engine = create_engine(empty_postgres)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            tables = set(inspect(connection).get_table_names())
    finally:
        engine.dispose()
    assert len(versions) == 1, versions  # one head, written once
    assert {"analyses", "intervals", "verdicts", "outbox_events", "notifications"} <= tables
    # The schema they left is whole: a fourth start applies nothing and works.
    late = Store(empty_postgres)
    try:
        late.migrate()
        assert late.ping()
    finally:
        late.close()
