"""Alembic environment: runs migrations on the engine kayenta-py hands over.

On PostgreSQL the migrations run under a transaction-scoped advisory lock: replicas starting
together on an empty database take turns, and each one after the first finds the schema at the
newest revision (the version is read once the lock is held) and applies nothing.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from kayenta_py.service.store.tables import Base

MIGRATION_LOCK = 0x6B61_7965_6E74_6D  # pg_advisory_xact_lock key of the store's migrations

engine = context.config.attributes["engine"]
with engine.begin() as connection:
    if connection.dialect.name == "postgresql":  # held until this transaction commits
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
