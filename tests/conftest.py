"""Shared fixtures: databases for the store (SQLite file, and the machine's real PostgreSQL)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from kayenta_py.service.store.repository import Store

# The PostgreSQL of this kind of machine: 127.0.0.1:5432, trust auth, user postgres, database test.
POSTGRES_ADMIN_URL = os.environ.get(
    "KAYENTA_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _postgres_available() -> str | None:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return str(exc).splitlines()[0]


def fresh_postgres_database() -> Iterator[str]:
    """Create an empty PostgreSQL database, yield its URL, drop it afterwards."""
    problem = _postgres_available()
    if problem is not None:
        message = f"PostgreSQL at {make_url(POSTGRES_ADMIN_URL).render_as_string()} unreachable: {problem}"
        if os.environ.get("CI"):
            pytest.fail(message + " (the test command starts it with pg_ctlcluster)")
        pytest.skip(message)
    name = f"kayenta_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                {"name": name},
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh, empty database: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('db') / 'kayenta.db'}"
    else:
        yield from fresh_postgres_database()


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A migrated store on a fresh database (SQLite, then PostgreSQL)."""
    instance = Store(database_url)
    instance.migrate()
    try:
        yield instance
    finally:
        instance.close()
