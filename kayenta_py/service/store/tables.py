"""The store's tables (SQLAlchemy ORM): configs, analyses, intervals, verdicts, the outbox, heartbeats."""

from __future__ import annotations

from typing import Any

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
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from kayenta_py.model.pairs_codec import has_delta
from kayenta_py.service.store.records import (
    CANCELLED,
    COMPLETED,
    FAILED,
    FINAL_STATUSES,
    RUNNING,
    Schedule,
    full_pairs,
)

NATIVE, KAYENTA = "native", "kayenta"  # which API created a config

STATUSES = (RUNNING, COMPLETED, CANCELLED, FAILED)
__all__ = ["CANCELLED", "COMPLETED", "FAILED", "FINAL_STATUSES", "RUNNING", "STATUSES"]


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


class AnalysisRecord(Schedule, Base):
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
        chain = self.__dict__.get("_chain")
        if chain is None and has_delta(self.stored_pairs):
            try:
                chain = self.analysis.intervals
            except Exception:  # detached without its analysis: the earlier intervals are not at hand
                chain = None
        earlier = None if chain is None else [(i.index, i.stored_pairs) for i in chain]
        return full_pairs(self.analysis_id, self.index, self.stored_pairs, earlier)

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


class OutboxEventRecord(Base):
    """What a notifier must hear of (an analysis finished), written in the transaction of the verdict.

    One row per (analysis, kind, consumer): ``consumer`` names the notifier (its entry-point
    name) that expands the event into its messages; ``status`` is ``pending`` until it did.
    """

    __tablename__ = "outbox_events"
    __table_args__ = (UniqueConstraint("analysis_id", "kind", "consumer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    analysis_id: Mapped[str] = mapped_column(ForeignKey("analyses.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    consumer: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_ts: Mapped[float] = mapped_column(Float)
    updated_ts: Mapped[float] = mapped_column(Float)


class NotificationRecord(Base):
    """A notification to deliver (Slack message, digest), with its delivery state.

    ``dedupe_key`` makes queueing idempotent: (kind, channel, dedupe_key) is unique (a finished
    message's key is its analysis id, a digest's its cron minute); NULL keys never collide.
    """

    __tablename__ = "notifications"
    __table_args__ = (
        Index("uq_notifications_kind_channel_key", "kind", "channel", "dedupe_key", unique=True),
    )

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
    dedupe_key: Mapped[str | None] = mapped_column(String(200), nullable=True)


class HeartbeatRecord(Base):
    """One row that :meth:`Store.check_writable` rewrites to prove the database takes writes."""

    __tablename__ = "heartbeat"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts: Mapped[float] = mapped_column(Float)
    pad: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


