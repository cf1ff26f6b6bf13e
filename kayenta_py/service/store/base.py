"""The store's connection: engine, sessions, migrations, health and room checks."""


from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    create_engine,
    event,
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from kayenta_py.model.redact import redact
from kayenta_py.service.store.checks import (
    _sqlite_file,
    _sqlite_pragmas,
    analysis_problem,
    masked_url,
)
from kayenta_py.service.store.tables import (
    AnalysisRecord,
    HeartbeatRecord,
)

log = logging.getLogger(__name__)

HEARTBEAT_PAD_BYTES = 8192  # a few pages: the heartbeat write needs real room
MIN_ROOM_BYTES = 1 << 20  # check_writable: room the SQLite file must have left to grow


class StoreBase:
    """A database connection with sessions; the readers and writers of the tables build on it."""


    def __init__(self, url: str, *, busy_timeout_s: float = 30.0) -> None:
        """Open the database at ``url``; a SQLite writer waits ``busy_timeout_s`` for a lock."""
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.sqlite_file = _sqlite_file(parsed.database) if self.is_sqlite else None
        if self.sqlite_file is not None and parsed.query.get("mode") != "ro":
            self.sqlite_file.parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False, "timeout": busy_timeout_s}
        self.engine: Engine = create_engine(url, **options)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __repr__(self) -> str:  # never show a password from the URL
        return f"Store({self.display_url!r})"

    @property
    def display_url(self) -> str:
        """Return the database URL with its password (also one given as a query parameter) masked."""
        return masked_url(self.url)

    def migrate(self) -> None:
        """Create or upgrade the schema to the newest Alembic revision."""
        from kayenta_py.service.store.migrate import upgrade

        upgrade(self.engine)

    def close(self) -> None:
        """Release every pooled connection."""
        self.engine.dispose()

    def ping(self) -> bool:
        """Return whether the database answers."""
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def check_writable(self) -> str | None:
        """Return None when a real write commits, else why not (read-only, full, unreachable).

        It rewrites the heartbeat row with a few pages of fresh bytes; on SQLite it also
        asks for room to grow: 1 MiB within ``max_page_count`` and on the disk.
        """
        try:
            with self.session() as session:
                values = {"ts": time.time(), "pad": os.urandom(HEARTBEAT_PAD_BYTES)}
                changed = session.execute(
                    update(HeartbeatRecord).where(HeartbeatRecord.id == 1).values(**values)
                )
                if not changed.rowcount:  # type: ignore[attr-defined]
                    session.add(HeartbeatRecord(id=1, **values))
                if self.is_sqlite:
                    return self._sqlite_room(session)
        except SQLAlchemyError as exc:
            return f"database write failed: {redact(str(getattr(exc, 'orig', None) or exc))}"
        return None

    def _sqlite_room(self, session: Session) -> str | None:
        def pragma(name: str) -> int:
            return int(session.execute(text(f"PRAGMA {name}")).scalar_one())

        page = pragma("page_size")
        pages = pragma("max_page_count") - pragma("page_count") + pragma("freelist_count")
        if pages * page < MIN_ROOM_BYTES:
            return f"database is full: room for {pages} more pages of {page} bytes (max_page_count)"
        if self.sqlite_file is not None:
            free = shutil.disk_usage(self.sqlite_file.resolve().parent).free
            if free < MIN_ROOM_BYTES:
                return f"disk almost full: {free} bytes free beside the database"
        return None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def _readable(self, query: Any) -> list[AnalysisRecord]:
        """Return the analyses ``query`` selects, less (logged) rows that cannot be read."""
        return self._read_skipping(query, AnalysisRecord, "analysis", analysis_problem)

    def _read_skipping(
        self, query: Any, model: Any, label: str, problem: Callable[[Any], str | None]
    ) -> list[Any]:
        """Return the rows of ``model`` that ``query`` selects, skipping (and logging) unreadable ones.

        A row that does not decode (bad JSON, a time out of range) fails the bulk read; then the
        rows are read one by one. ``problem`` names what is wrong with a row that decodes.
        """
        undecodable = (ValueError, TypeError, OverflowError)
        try:
            with self.session() as session:
                rows: list[Any] = list(session.scalars(query))
        except undecodable:
            with self.session() as session:
                ids = list(session.scalars(query.with_only_columns(model.id)))
            rows = []
            for row_id in ids:
                try:
                    with self.session() as session:
                        row = session.get(model, row_id)
                except undecodable as exc:
                    log.error("%s %s cannot be read, skipped: %s: %s", label, row_id, type(exc).__name__, exc)
                    continue
                if row is not None:
                    rows.append(row)
        readable = []
        for row in rows:
            reason = problem(row)
            if reason is None:
                readable.append(row)
            else:
                log.error("%s %s cannot be read, skipped: %s", label, row.id, reason)
        return readable
