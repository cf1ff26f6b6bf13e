"""The store: canary configs (versioned), analyses, intervals, verdicts and notifications.

SQLAlchemy 2 over SQLite (a file, WAL mode; the embedded default) or PostgreSQL
(by URL). The schema is created and upgraded by the Alembic migrations in
``kayenta_py/service/store/migrations``, applied on start. Times are stored as epoch seconds.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from kayenta_py.model.errors import KayentaError
from kayenta_py.model.pairs_codec import (
    BrokenDeltaError,
    cumulative_document,
    encode_pairs,
    has_delta,
    pairs_to_json,
)
from kayenta_py.model.redact import redact
from kayenta_py.model.types import CanaryResult, MetricSetPair

log = logging.getLogger(__name__)


class StoreError(KayentaError):
    """A store operation was refused (a conflict, a missing record)."""


class OriginError(StoreError):
    """A config created through one API may not be changed through another (see ``origin``)."""


class WriteConflictError(StoreError):
    """Concurrent writes kept taking the key this write needed (HTTP 409: try again)."""


class UnreadableRecord(StoreError):  # noqa: N818 (the name the HTTP layer matches)
    """A stored row cannot be read (a corrupt JSON body, a time out of range): ``record_id`` names it."""

    def __init__(self, record_id: str, problem: str) -> None:
        super().__init__(f"analysis {record_id} cannot be read: {problem}")
        self.record_id, self.problem = record_id, problem


NATIVE, KAYENTA = "native", "kayenta"  # which API created a config


class Base(DeclarativeBase):
    """Declarative base of every table."""


class ConfigRecord(Base):
    """A named canary config; its bodies live in :class:`ConfigVersionRecord`."""

    __tablename__ = "canary_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    origin: Mapped[str] = mapped_column(String(20), default=NATIVE, server_default=NATIVE)
    created_ts: Mapped[float] = mapped_column(Float)
    deleted_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    versions: Mapped[list[ConfigVersionRecord]] = relationship(
        back_populates="config", order_by="ConfigVersionRecord.version", cascade="all, delete-orphan"
    )


class ConfigVersionRecord(Base):
    """One version of a canary config's body; older versions are kept as history."""

    __tablename__ = "canary_config_versions"
    __table_args__ = (UniqueConstraint("config_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    config_id: Mapped[int] = mapped_column(ForeignKey("canary_configs.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_ts: Mapped[float] = mapped_column(Float)
    config: Mapped[ConfigRecord] = relationship(back_populates="versions")

    @property
    def name(self) -> str:
        """Return the config's name."""
        return self.config.name

    @property
    def origin(self) -> str:
        """Return which API created the config (``native`` or ``kayenta``)."""
        return self.config.origin


class AnalysisRecord(Base):
    """A canary analysis: what to compare, its schedule, and its state and verdict."""

    __tablename__ = "analyses"
    # One analysis per client identity (a Flagger canary revision); NULL keys never collide.
    __table_args__ = (Index("uq_analyses_kind_external_key", "kind", "external_key", unique=True),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40), default="native")
    external_key: Mapped[str | None] = mapped_column(String(500), nullable=True, index=True)
    mode: Mapped[str] = mapped_column(String(20), default="fixed", server_default="fixed")
    state: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    config_name: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    config_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    config_body: Mapped[dict[str, Any]] = mapped_column(JSON)
    baseline_scope: Mapped[str] = mapped_column(String(500))
    canary_scope: Mapped[str] = mapped_column(String(500))
    location: Mapped[str] = mapped_column(String(200), default="")
    scope_params: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(200))
    start_ts: Mapped[float] = mapped_column(Float)
    lifetime_s: Mapped[float] = mapped_column(Float)
    interval_s: Mapped[float] = mapped_column(Float)
    warmup_s: Mapped[float] = mapped_column(Float, default=0.0)
    lookback_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    step_s: Mapped[float] = mapped_column(Float)
    thresholds: Mapped[dict[str, float]] = mapped_column(JSON)
    fail_fast: Mapped[bool] = mapped_column(Boolean, default=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    verdict: Mapped[str] = mapped_column(String(20), default="pending")
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    intervals_total: Mapped[int] = mapped_column(Integer)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_ts: Mapped[float] = mapped_column(Float, index=True)
    updated_ts: Mapped[float] = mapped_column(Float)
    completed_ts: Mapped[float | None] = mapped_column(Float, nullable=True)
    intervals: Mapped[list[IntervalRecord]] = relationship(
        back_populates="analysis", order_by="IntervalRecord.index", cascade="all, delete-orphan"
    )

    @property
    def complete(self) -> bool:
        """Return whether the analysis has ended (its verdict is final)."""
        return self.status in FINAL_STATUSES

    def due_ts(self, index: int) -> float:
        """Return when interval ``index`` (0-based) falls due: start + warmup + (index + 1) * interval."""
        return self.start_ts + self.warmup_s + (index + 1) * self.interval_s

    def window(self, index: int) -> tuple[float, float]:
        """Return the metric window of interval ``index``: cumulative, the lookback before it, or
        (sequential mode) the new points since the previous interval."""
        end = self.due_ts(index)
        if self.mode == "sequential":  # only the new points: from the previous interval's end
            return (self.due_ts(index - 1) if index else self.start_ts + self.warmup_s), end
        start = self.start_ts + self.warmup_s if self.lookback_s is None else end - self.lookback_s
        return start, end


class IntervalRecord(Base):
    """One judgement of an analysis: its window, raw metric pairs and per-metric results.

    ``stored_pairs`` (column ``pairs``) holds, per metric pair, either every point the
    interval judged or, when the previous interval's points are a verified prefix of
    them, only the new points (an entry with a ``delta`` marker); ``pairs`` rebuilds
    the full pairs from the intervals before it.
    """

    __tablename__ = "intervals"
    __table_args__ = (UniqueConstraint("analysis_id", "index"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    window_start_ts: Mapped[float] = mapped_column(Float)
    window_end_ts: Mapped[float] = mapped_column(Float)
    due_ts: Mapped[float] = mapped_column(Float)
    judged_ts: Mapped[float] = mapped_column(Float)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    verdict: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(Text)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    stored_pairs: Mapped[list[dict[str, Any]]] = mapped_column("pairs", JSON)
    pairs_digest: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    analysis: Mapped[AnalysisRecord] = relationship(back_populates="intervals")

    @property
    def pairs(self) -> list[dict[str, Any]]:
        """Return every metric pair this interval judged, as :func:`pairs_to_json` wrote them."""
        document = self.stored_pairs
        if not has_delta(document):
            return document
        chain = self.__dict__.get("_chain")
        if chain is None:
            try:
                chain = self.analysis.intervals
            except Exception:  # detached without its analysis: the earlier intervals are not at hand
                raise UnreadableRecord(
                    self.analysis_id, f"interval {self.index} holds deltas; load it with Store.get_analysis"
                ) from None
        earlier = [(i.index, i.stored_pairs) for i in chain if i.index <= self.index]
        try:
            return cumulative_document(earlier)
        except BrokenDeltaError as exc:
            raise UnreadableRecord(self.analysis_id, str(exc)) from None

    @pairs.setter
    def pairs(self, document: list[dict[str, Any]]) -> None:
        self.stored_pairs = document


class VerdictRecord(Base):
    """A verdict an analysis published (each change is kept, for audit)."""

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    verdict: Mapped[str] = mapped_column(String(20))
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    complete: Mapped[bool] = mapped_column(Boolean)
    reason: Mapped[str] = mapped_column(Text)
    created_ts: Mapped[float] = mapped_column(Float)


class NotificationRecord(Base):
    """A notification to deliver (Slack message, digest), with its delivery state."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[str | None] = mapped_column(
        ForeignKey("analyses.id", ondelete="CASCADE"), nullable=True, index=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    channel: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_ts: Mapped[float] = mapped_column(Float)
    updated_ts: Mapped[float] = mapped_column(Float)


class HeartbeatRecord(Base):
    """One row that :meth:`Store.check_writable` rewrites to prove the database takes writes."""

    __tablename__ = "heartbeat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float)
    pad: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


RUNNING, COMPLETED, CANCELLED, FAILED = "running", "completed", "cancelled", "failed"
FINAL_STATUSES = frozenset({COMPLETED, CANCELLED, FAILED})
STATUSES = (RUNNING, COMPLETED, CANCELLED, FAILED)


CONFIG_WRITE_ATTEMPTS = 8  # tries of a config write that races another one


class Store:
    """Persistence of configs, analyses, intervals, verdicts and notifications."""

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

    # ------------------------------------------------------------ configs

    def create_config(
        self, name: str, body: Mapping[str, Any], *, origin: str = NATIVE, only_origin: str | None = None
    ) -> ConfigVersionRecord:
        """Store a new config as version 1; a live config of that name is a conflict.

        A deleted config of that name is created again, its history continuing; with
        ``only_origin``, only when it was created through that API (else :class:`OriginError`).
        """
        now = time.time()

        def write() -> ConfigVersionRecord:
            with self.session() as session:
                config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
                if config is not None and config.deleted_ts is None:
                    raise StoreError(f"config {name!r} already exists; PUT a new version instead")
                if config is None:
                    config = ConfigRecord(name=name, origin=origin, created_ts=now)
                    session.add(config)
                    session.flush()
                    version = 1
                else:  # re-created after deletion: its history continues
                    _check_origin(config, only_origin)
                    config.deleted_ts = None
                    config.origin = origin
                    version = self._latest_version(session, config.id) + 1
                record = ConfigVersionRecord(
                    config_id=config.id, version=version, body=dict(body), created_ts=now
                )
                session.add(record)
                session.flush()
                record.config = config
                return record

        return self._retrying(write, name)

    def update_config(
        self, name: str, body: Mapping[str, Any], *, only_origin: str | None = None
    ) -> ConfigVersionRecord:
        """Store a new version of an existing config (with ``only_origin``: only if that API made it)."""

        def write() -> ConfigVersionRecord:
            with self.session() as session:
                config = self._live_config(session, name)
                _check_origin(config, only_origin)
                record = ConfigVersionRecord(
                    config_id=config.id,
                    version=self._latest_version(session, config.id) + 1,
                    body=dict(body),
                    created_ts=time.time(),
                )
                session.add(record)
                session.flush()
                record.config = config
                return record

        return self._retrying(write, name)

    @staticmethod
    def _retrying(write: Callable[[], ConfigVersionRecord], name: str) -> ConfigVersionRecord:
        """Run a config write again when a concurrent one took its name or version (unique keys).

        The next attempt reads the other write's result: a create then finds the name taken
        (a conflict), an update takes the next version.
        """
        for _attempt in range(CONFIG_WRITE_ATTEMPTS):
            try:
                return write()
            except IntegrityError:
                time.sleep(0.01 * (1 + _attempt))  # let the other write commit
        raise WriteConflictError(
            f"config {name!r}: {CONFIG_WRITE_ATTEMPTS} concurrent writes in a row; try again"
        )

    def config_origin(self, name: str) -> str | None:
        """Return which API created the config ``name`` (live or deleted), or None if none ever existed."""
        with self.session() as session:
            return session.scalar(select(ConfigRecord.origin).where(ConfigRecord.name == name))

    def config_versions(self, name: str) -> list[int]:
        """Return the stored version numbers of a config, oldest first."""
        with self.session() as session:
            return list(
                session.scalars(
                    select(ConfigVersionRecord.version)
                    .join(ConfigRecord)
                    .where(ConfigRecord.name == name)
                    .order_by(ConfigVersionRecord.version)
                )
            )

    def get_config(self, name: str, version: int | None = None) -> ConfigVersionRecord | None:
        """Return a config's latest (or given) version, or None."""
        with self.session() as session:
            config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
            if config is None or (config.deleted_ts is not None and version is None):
                return None
            query = select(ConfigVersionRecord).where(ConfigVersionRecord.config_id == config.id)
            if version is None:
                query = query.order_by(ConfigVersionRecord.version.desc()).limit(1)
            else:
                query = query.where(ConfigVersionRecord.version == version)
            record = session.scalar(query)
            if record is not None:
                record.config = config
            return record

    def config_history(self, name: str) -> list[ConfigVersionRecord]:
        """Return every version of a config, oldest first."""
        with self.session() as session:
            config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
            if config is None:
                return []
            records = list(
                session.scalars(
                    select(ConfigVersionRecord)
                    .where(ConfigVersionRecord.config_id == config.id)
                    .order_by(ConfigVersionRecord.version)
                )
            )
            for record in records:
                record.config = config
            return records

    def list_configs(self) -> list[ConfigVersionRecord]:
        """Return the latest version of every live config, by name."""
        with self.session() as session:
            configs = session.scalars(
                select(ConfigRecord).where(ConfigRecord.deleted_ts.is_(None)).order_by(ConfigRecord.name)
            ).all()
            out = []
            for config in configs:
                record = session.scalar(
                    select(ConfigVersionRecord)
                    .where(ConfigVersionRecord.config_id == config.id)
                    .order_by(ConfigVersionRecord.version.desc())
                    .limit(1)
                )
                if record is not None:
                    record.config = config
                    out.append(record)
            return out

    def delete_config(self, name: str, *, only_origin: str | None = None) -> None:
        """Delete a config; its history is kept for the analyses that used it."""
        with self.session() as session:
            config = self._live_config(session, name)
            _check_origin(config, only_origin)
            config.deleted_ts = time.time()

    @staticmethod
    def _live_config(session: Session, name: str) -> ConfigRecord:
        config = session.scalar(select(ConfigRecord).where(ConfigRecord.name == name))
        if config is None or config.deleted_ts is not None:
            raise StoreError(f"no config {name!r}")
        return config

    @staticmethod
    def _latest_version(session: Session, config_id: int) -> int:
        latest = session.scalar(
            select(func.max(ConfigVersionRecord.version)).where(ConfigVersionRecord.config_id == config_id)
        )
        return int(latest or 0)

    # ------------------------------------------------------------ analyses

    def create_analysis(self, **fields: Any) -> AnalysisRecord:
        """Store a new running analysis; ``fields`` are :class:`AnalysisRecord` columns."""
        now = time.time()
        record = AnalysisRecord(
            id=fields.pop("id", None) or uuid.uuid4().hex,
            status=RUNNING,
            verdict="pending",
            reason="waiting for the first interval",
            created_ts=now,
            updated_ts=now,
            **fields,
        )
        try:
            with self.session() as session:
                session.add(record)
                session.add(
                    VerdictRecord(
                        analysis_id=record.id,
                        verdict="pending",
                        score=None,
                        complete=False,
                        reason=record.reason,
                        created_ts=now,
                    )
                )
        except IntegrityError:  # the same client key created concurrently: that analysis is the one
            key = fields.get("external_key")
            existing = None if key is None else self.find_analysis(fields.get("kind", "native"), key)
            if existing is None:
                raise
            return existing
        return record

    def get_analysis(self, analysis_id: str, *, with_intervals: bool = True) -> AnalysisRecord | None:
        """Return an analysis (with its intervals, oldest first) or None.

        Raises :class:`UnreadableRecord` when its row (or an interval's) cannot be read.
        """
        try:
            with self.session() as session:
                record = session.get(AnalysisRecord, analysis_id)
                if record is not None and with_intervals:
                    for interval in record.intervals:  # loaded before the session closes
                        interval.__dict__["_chain"] = record.intervals
        except (ValueError, TypeError, OverflowError) as exc:  # a body that does not decode
            raise UnreadableRecord(analysis_id, f"{type(exc).__name__}: {exc}") from None
        if record is not None:
            problem = analysis_problem(record)
            if problem is not None:
                raise UnreadableRecord(analysis_id, problem)
        return record

    def list_analyses(
        self,
        *,
        status: str | None = None,
        config: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[AnalysisRecord], int]:
        """Return a page of analyses, newest first, and the total matching."""
        query = select(AnalysisRecord)
        if status is not None:
            query = query.where(AnalysisRecord.status == status)
        if config is not None:
            query = query.where(AnalysisRecord.config_name == config)
        if kind is not None:
            query = query.where(AnalysisRecord.kind == kind)
        with self.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(AnalysisRecord.created_ts.desc(), AnalysisRecord.id).limit(limit).offset(offset)
        return self._readable(page), int(total)

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

    def find_analysis(self, kind: str, external_key: str) -> AnalysisRecord | None:
        """Return the newest analysis a client created under ``external_key``, or None."""
        with self.session() as session:
            analysis_id = session.scalar(
                select(AnalysisRecord.id)
                .where(AnalysisRecord.kind == kind, AnalysisRecord.external_key == external_key)
                .order_by(AnalysisRecord.created_ts.desc())
                .limit(1)
            )
        return None if analysis_id is None else self.get_analysis(analysis_id, with_intervals=False)

    def running_analyses(self) -> list[AnalysisRecord]:
        """Return every analysis still running (to resume after a restart), less unreadable rows."""
        return self._readable(select(AnalysisRecord).where(AnalysisRecord.status == RUNNING))

    def judged_indices(self, analysis_id: str) -> set[int]:
        """Return the indices of the intervals already judged."""
        with self.session() as session:
            return set(
                session.scalars(select(IntervalRecord.index).where(IntervalRecord.analysis_id == analysis_id))
            )

    def record_interval(
        self,
        analysis_id: str,
        index: int,
        window: tuple[float, float],
        due_ts: float,
        result: CanaryResult,
        pairs: Sequence[MetricSetPair],
        *,
        final: tuple[str, str, float | None, str] | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store one interval's judgement, exactly once; optionally finish the analysis with it.

        ``final`` is (status, verdict, score, reason); ``state`` replaces the
        sequential judges' state in the same transaction. Returns False (and changes
        nothing) when that interval was already stored, or the analysis is no
        longer running (cancelled meanwhile).
        """
        now = time.time()
        try:
            with self.session() as session:
                analysis = session.get(AnalysisRecord, analysis_id, with_for_update=not self.is_sqlite)
                if analysis is None or analysis.status != RUNNING:
                    return False
                previous = session.execute(  # one small row: where its window starts, its digest
                    select(IntervalRecord.window_start_ts, IntervalRecord.pairs_digest).where(
                        IntervalRecord.analysis_id == analysis_id, IntervalRecord.index == index - 1
                    )
                ).first()
                base = previous[1] if previous is not None and previous[0] == window[0] else None
                stored, digest = encode_pairs(pairs_to_json(pairs), index, base)
                session.add(
                    IntervalRecord(
                        analysis_id=analysis_id,
                        index=index,
                        window_start_ts=window[0],
                        window_end_ts=window[1],
                        due_ts=due_ts,
                        judged_ts=now,
                        score=result.score,
                        verdict=result.verdict.value,
                        reason=result.reason,
                        result={**result.to_dict(), "kayenta": result.to_kayenta()},
                        stored_pairs=stored,
                        pairs_digest=digest,
                    )
                )
                session.flush()
                if state is not None:
                    analysis.state = dict(state)
                if final is not None:
                    status, verdict, score, reason = final
                    analysis.status, analysis.completed_ts = status, now
                else:
                    verdict, score, reason = (
                        "pending",
                        result.score,
                        f"interval {index + 1} of {analysis.intervals_total}: {result.reason}",
                    )
                self._publish(session, analysis, verdict, score, reason, now)
            return True
        except IntegrityError:
            return False

    def finish_analysis(
        self,
        analysis_id: str,
        status: str,
        verdict: str,
        score: float | None,
        reason: str,
        *,
        error: str | None = None,
    ) -> AnalysisRecord | None:
        """End a running analysis (cancelled, failed, or completed without a new interval)."""
        now = time.time()
        with self.session() as session:
            analysis = session.get(AnalysisRecord, analysis_id, with_for_update=not self.is_sqlite)
            if analysis is None:
                return None
            if analysis.status == RUNNING:
                analysis.status, analysis.completed_ts, analysis.error = status, now, error
                self._publish(session, analysis, verdict, score, reason, now)
            return analysis

    @staticmethod
    def _publish(
        session: Session, analysis: AnalysisRecord, verdict: str, score: float | None, reason: str, now: float
    ) -> None:
        analysis.verdict, analysis.score, analysis.reason, analysis.updated_ts = verdict, score, reason, now
        session.add(
            VerdictRecord(
                analysis_id=analysis.id,
                verdict=verdict,
                score=score,
                complete=analysis.complete,
                reason=reason,
                created_ts=now,
            )
        )

    def verdict_history(self, analysis_id: str) -> list[VerdictRecord]:
        """Return the verdicts an analysis published, oldest first."""
        with self.session() as session:
            return list(
                session.scalars(
                    select(VerdictRecord)
                    .where(VerdictRecord.analysis_id == analysis_id)
                    .order_by(VerdictRecord.id)
                )
            )

    # ------------------------------------------------------------ notifications

    def add_notification(
        self, kind: str, channel: str, payload: Mapping[str, Any], *, analysis_id: str | None = None
    ) -> NotificationRecord:
        """Queue a notification for delivery."""
        now = time.time()
        record = NotificationRecord(
            analysis_id=analysis_id,
            kind=kind,
            channel=channel,
            status="pending",
            attempts=0,
            payload=dict(payload),
            created_ts=now,
            updated_ts=now,
        )
        with self.session() as session:
            session.add(record)
        return record

    def pending_notifications(self) -> list[NotificationRecord]:
        """Return notifications not delivered yet, oldest first, less (logged) rows that cannot be read."""
        query = (
            select(NotificationRecord)
            .where(NotificationRecord.status == "pending")
            .order_by(NotificationRecord.id)
        )
        return self._read_skipping(query, NotificationRecord, "notification", _payload_problem)

    def release_stale_notifications(self, older_than_s: float, *, now: float | None = None) -> int:
        """Put back to ``pending`` the notifications left ``sending`` for more than ``older_than_s``.

        Such a message was being posted by a process that stopped (a kill); that counts as a
        failed attempt, so a message that kills its poster is not retried for ever. Returns how
        many were released.
        """
        moment = time.time() if now is None else now
        with self.session() as session:
            released = session.execute(
                update(NotificationRecord)
                .where(NotificationRecord.status == "sending")
                .where(NotificationRecord.updated_ts < moment - older_than_s)
                .values(
                    status="pending",
                    attempts=NotificationRecord.attempts + 1,
                    last_error="interrupted while sending (the process posting it stopped)",
                )
            )
            return int(released.rowcount)  # type: ignore[attr-defined]

    def mark_notification(self, notification_id: int, status: str, error: str | None = None) -> None:
        """Record a delivery attempt's outcome."""
        with self.session() as session:
            record = session.get(NotificationRecord, notification_id)
            if record is None:
                raise StoreError(f"no notification {notification_id}")
            record.status, record.last_error = status, error
            record.attempts += 1
            record.updated_ts = time.time()


HEARTBEAT_PAD_BYTES = 8192  # a few pages: the heartbeat write needs real room
MIN_ROOM_BYTES = 1 << 20  # check_writable: room the SQLite file must have left to grow


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


_BUSY_SQLSTATES = frozenset({"55P03", "40P01", "40001"})  # lock not available, deadlock, serialization
# read-only transaction, disk full, out of memory, too many connections, shutting down, cannot connect now
_UNAVAILABLE_SQLSTATES = frozenset({"25006", "53100", "53200", "53300", "57P01", "57P02", "57P03"})
_SQLITE_BUSY = (5, 6)  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_UNAVAILABLE = (8, 10, 13, 14)  # SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL, SQLITE_CANTOPEN
_SQLITE_UNAVAILABLE_TEXT = ("disk is full", "disk i/o error", "readonly database", "unable to open database")


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


def _check_origin(config: ConfigRecord, only_origin: str | None) -> None:
    if only_origin is not None and config.origin != only_origin:
        raise OriginError(f"config {config.name!r} was created through the {config.origin} API")


_SECRET_QUERY = ("password", "passwd", "secret", "token")


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
