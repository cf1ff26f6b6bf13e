"""The store: canary configs (versioned), analyses, intervals, verdicts and notifications.

SQLAlchemy 2 over SQLite (a file, WAL mode; the embedded default) or PostgreSQL
(by URL). The schema is created and upgraded by the Alembic migrations in
``kayenta_py/migrations``, applied on start. Times are stored as epoch seconds.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, sessionmaker

from kayenta_py._errors import KayentaError
from kayenta_py._model import CanaryResult, MetricSetPair


class StoreError(KayentaError):
    """A store operation was refused (a conflict, a missing record)."""


class OriginError(StoreError):
    """A config created through one API may not be changed through another (see ``origin``)."""


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
    """One judgement of an analysis: its window, raw metric pairs and per-metric results."""

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
    pairs: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    analysis: Mapped[AnalysisRecord] = relationship(back_populates="intervals")


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


RUNNING, COMPLETED, CANCELLED, FAILED = "running", "completed", "cancelled", "failed"
FINAL_STATUSES = frozenset({COMPLETED, CANCELLED, FAILED})
STATUSES = (RUNNING, COMPLETED, CANCELLED, FAILED)


def pairs_to_json(pairs: Sequence[MetricSetPair]) -> list[dict[str, Any]]:
    """Serialize raw metric pairs (NaN as null) so an interval can be judged again later."""

    def side(values: Any, timestamps: Any) -> dict[str, Any]:
        return {
            "values": [None if not math.isfinite(v) else float(v) for v in values.tolist()],
            "timestamps": None if timestamps is None else timestamps.tolist(),
        }

    return [
        {
            "name": p.name,
            "tags": dict(p.tags),
            "baseline": side(p.baseline.values, p.baseline.timestamps),
            "canary": side(p.canary.values, p.canary.timestamps),
        }
        for p in pairs
    ]


def pairs_from_json(document: Sequence[Mapping[str, Any]]) -> list[MetricSetPair]:
    """Rebuild metric pairs stored by :func:`pairs_to_json` (null back to NaN)."""
    from kayenta_py._model import MetricSet

    def side(name: str, tags: Mapping[str, str], raw: Mapping[str, Any]) -> MetricSet:
        values = np.array([math.nan if v is None else v for v in raw["values"]], dtype=np.float64)
        return MetricSet(name, values, tags, raw.get("timestamps"))

    return [
        MetricSetPair(
            p["name"],
            side(p["name"], p["tags"], p["baseline"]),
            side(p["name"], p["tags"], p["canary"]),
            p["tags"],
        )
        for p in document
    ]


class Store:
    """Persistence of configs, analyses, intervals, verdicts and notifications."""

    def __init__(self, url: str) -> None:
        self.url = url
        parsed = make_url(url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite and parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"pool_pre_ping": True}
        if self.is_sqlite:
            options["connect_args"] = {"check_same_thread": False, "timeout": 30}
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
        from kayenta_py._migrate import upgrade

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

    def update_config(
        self, name: str, body: Mapping[str, Any], *, only_origin: str | None = None
    ) -> ConfigVersionRecord:
        """Store a new version of an existing config (with ``only_origin``: only if that API made it)."""
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
        return record

    def get_analysis(self, analysis_id: str, *, with_intervals: bool = True) -> AnalysisRecord | None:
        """Return an analysis (with its intervals, oldest first) or None."""
        with self.session() as session:
            record = session.get(AnalysisRecord, analysis_id)
            if record is not None and with_intervals:
                _ = record.intervals  # load before the session closes
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
            rows = session.scalars(
                query.order_by(AnalysisRecord.created_ts.desc(), AnalysisRecord.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return list(rows), int(total)

    def find_analysis(self, kind: str, external_key: str) -> AnalysisRecord | None:
        """Return the newest analysis a client created under ``external_key``, or None."""
        with self.session() as session:
            return session.scalar(
                select(AnalysisRecord)
                .where(AnalysisRecord.kind == kind, AnalysisRecord.external_key == external_key)
                .order_by(AnalysisRecord.created_ts.desc())
                .limit(1)
            )

    def running_analyses(self) -> list[AnalysisRecord]:
        """Return every analysis still running (to resume after a restart)."""
        with self.session() as session:
            return list(session.scalars(select(AnalysisRecord).where(AnalysisRecord.status == RUNNING)))

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
                        pairs=pairs_to_json(pairs),
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
        """Return notifications not delivered yet, oldest first."""
        with self.session() as session:
            return list(
                session.scalars(
                    select(NotificationRecord)
                    .where(NotificationRecord.status == "pending")
                    .order_by(NotificationRecord.id)
                )
            )

    def mark_notification(self, notification_id: int, status: str, error: str | None = None) -> None:
        """Record a delivery attempt's outcome."""
        with self.session() as session:
            record = session.get(NotificationRecord, notification_id)
            if record is None:
                raise StoreError(f"no notification {notification_id}")
            record.status, record.last_error = status, error
            record.attempts += 1
            record.updated_ts = time.time()


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
