"""The store's errors, and how database errors are told apart (busy, unavailable)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from kayenta_py.model.errors import StoreError

_BUSY_SQLSTATES = frozenset({"55P03", "40P01", "40001"})  # lock not available, deadlock, serialization
# read-only transaction, disk full, out of memory, too many connections, shutting down, cannot connect now
_UNAVAILABLE_SQLSTATES = frozenset({"25006", "53100", "53200", "53300", "57P01", "57P02", "57P03"})
_SQLITE_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_UNAVAILABLE = (8, 10, 13, 14)  # SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
_SQLITE_UNAVAILABLE_TEXT = ("disk is full", "disk i/o error", "readonly database", "unable to open database")


class OriginError(StoreError):
    """A config created through one API may not be changed through another (see ``origin``)."""


class WriteConflictError(StoreError):
    """Concurrent writes kept taking the key this write needed (HTTP 409: try again)."""


class UnreadableRecord(StoreError):  # noqa: N818 (the name the HTTP layer matches)
    """A stored row cannot be read (a corrupt JSON body, a time out of range): ``record_id`` names it."""

    def __init__(self, record_id: str, problem: str) -> None:
        super().__init__(f"analysis {record_id} cannot be read: {problem}")
        self.record_id, self.problem = record_id, problem


def _database_causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what caused it (a SQLAlchemy error's DBAPI error, chained exceptions)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__


def _sqlite_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else int(code) & 0xFF


def is_busy_error(exc: BaseException) -> bool:
    """Return whether ``exc`` (or what caused it) says the database is busy or locked: retry later.

    True for SQLite's ``database is locked`` / ``busy`` and PostgreSQL's lock-not-available,
    deadlock and serialization failures; the HTTP layer answers those 503 with Retry-After.
    """
    for cause in _database_causes(exc):
        if isinstance(cause, sqlite3.OperationalError):
            message = str(cause).lower()
            if _sqlite_code(cause) in _SQLITE_BUSY or "is locked" in message or "busy" in message:
                return True
        if getattr(cause, "sqlstate", None) in _BUSY_SQLSTATES:
            return True
    return False


def is_unavailable_error(exc: BaseException) -> bool:
    """Return whether ``exc`` says the store cannot write now: disk full, read-only, I/O error, shutdown.

    Not the request's fault and usually temporary: the HTTP layer answers 503 with Retry-After,
    and the runner retries for ``retry_max_seconds`` rather than a count.
    """
    for cause in _database_causes(exc):
        if isinstance(cause, sqlite3.Error):
            message = str(cause).lower()
            if _sqlite_code(cause) in _SQLITE_UNAVAILABLE:
                return True
            if any(text in message for text in _SQLITE_UNAVAILABLE_TEXT):
                return True
        if getattr(cause, "sqlstate", None) in _UNAVAILABLE_SQLSTATES:
            return True
    return False


