"""Checks of stored rows and URLs: readable analyses and notifications, origins, masked URLs, SQLite files."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy.engine import make_url

from kayenta_py.service.store.errors import (
    OriginError,
)
from kayenta_py.service.store.tables import (
    AnalysisRecord,
    ConfigRecord,
    NotificationRecord,
)

_SECRET_QUERY = ("password", "passwd", "secret", "token")


def _sqlite_file(database: str | None) -> Path | None:
    """Return the file of a SQLite database name (also a ``file:`` URI's), None for memory."""
    if not database or database == ":memory:" or "mode=memory" in database:
        return None
    if database.startswith("file:"):
        database = database[len("file:") :].partition("?")[0]
    return Path(database).expanduser()


def _payload_problem(record: NotificationRecord) -> str | None:
    return None if _is_object(record.payload) else "its payload is not an object"


def _is_object(value: object) -> bool:
    return isinstance(value, dict)


def _readable_ts(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return False
    try:
        datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        return False
    return True


def analysis_problem(record: AnalysisRecord) -> str | None:
    """Return why a loaded analysis (and its intervals, when loaded) cannot be served, or None."""
    for name in ("created_ts", "updated_ts", "start_ts"):
        if not _readable_ts(getattr(record, name)):
            return f"{name} {getattr(record, name)!r} is not a time"
    if record.completed_ts is not None and not _readable_ts(record.completed_ts):
        return f"completed_ts {record.completed_ts!r} is not a time"
    for name in ("lifetime_s", "interval_s", "step_s", "warmup_s"):
        value = getattr(record, name)
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            return f"{name} {value!r} is not a duration"
    if not isinstance(record.intervals_total, int) or record.intervals_total < 1:
        return f"intervals_total {record.intervals_total!r} is not a count"
    if not _readable_ts(record.due_ts(record.intervals_total - 1)):
        return "its last interval falls due outside the range of times"
    for name in ("config_body", "scope_params", "extra"):
        if not isinstance(getattr(record, name), dict):
            return f"{name} is not a JSON object"
    if record.state is not None and not _is_object(record.state):
        return "state is not a JSON object"
    thresholds = record.thresholds
    if not _is_object(thresholds) or not all(
        isinstance(thresholds.get(k), (int, float)) for k in ("pass", "marginal")
    ):
        return "thresholds lack numbers 'pass' and 'marginal'"
    if record.mode not in ("fixed", "sequential"):
        return f"mode {record.mode!r} is not 'fixed' or 'sequential'"
    for interval in record.__dict__.get("intervals") or ():
        for name in ("window_start_ts", "window_end_ts", "due_ts", "judged_ts"):
            if not _readable_ts(getattr(interval, name)):
                return f"interval {interval.index}: {name} {getattr(interval, name)!r} is not a time"
        if not _is_object(interval.result) or not isinstance(cast(Any, interval.stored_pairs), list):
            return f"interval {interval.index}: its result or pairs are not JSON of the stored shape"
    return None


def _check_origin(config: ConfigRecord, only_origin: str | None) -> None:
    if only_origin is not None and config.origin != only_origin:
        raise OriginError(f"config {config.name!r} was created through the {config.origin} API")


def masked_url(url: str) -> str:
    """Return a database URL fit for logs: its password, and query parameters like it, as ``***``."""
    try:
        parsed = make_url(url)
    except Exception:  # not a URL SQLAlchemy can read: show only its scheme
        return url.partition(":")[0] + ":***"
    query = {
        key: "***" if any(word in key.lower() for word in _SECRET_QUERY) else value
        for key, value in parsed.query.items()
    }
    rendered = parsed.set(query=query).render_as_string(hide_password=True)
    return rendered.replace("%2A%2A%2A", "***")


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


