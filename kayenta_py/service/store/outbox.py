"""The outbox: events stored with a verdict, the notifications they expand into, their delivery.

A final verdict (the last interval's, or a failure's or cancellation's) is stored in one
transaction with an ``outbox_events`` row per notifier of the store (:attr:`NotificationStore.
outbox_consumers`); whatever kill point, either both are stored or neither. Each notifier then
expands its pending events into notifications, idempotently: (kind, channel, dedupe_key) is
unique, so expanding again (after a crash, or on another replica) queues nothing twice. A
notification is claimed by one sender, and released when its claim goes stale.

Also the reads a digest of finished analyses needs (what finished in a window, with the result
of each one's last interval), so a notifier runs no SQL of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Table,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kayenta_py.model.errors import StoreError
from kayenta_py.service.store.base import StoreBase
from kayenta_py.service.store.checks import (
    _payload_problem,
)
from kayenta_py.service.store.records import Analysis, Notification, OutboxEvent
from kayenta_py.service.store.tables import (
    AnalysisRecord,
    IntervalRecord,
    NotificationRecord,
    OutboxEventRecord,
)

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"
DONE = "done"  # an outbox event its notifier expanded
FINISHED_EVENT = "finished"  # the event of an analysis' final verdict
MAX_EVENT_ATTEMPTS = 20  # an event whose expansion failed this often is failed (logged), not retried


@dataclass(frozen=True)
class QueuedMessage:
    """A notification to queue: ``key`` (with kind and channel) makes queueing it idempotent."""

    kind: str
    channel: str
    payload: Mapping[str, Any]
    analysis_id: str | None = None
    key: str | None = None


class NotificationStore(StoreBase):
    """The outbox's events, the notifications waiting to be sent, and their delivery attempts."""

    outbox_consumers: tuple[str, ...] = ()
    """The notifiers a final verdict writes an outbox event for (set by ``build_notifiers``)."""

    # ------------------------------------------------------------ events

    def add_outbox_consumer(self, name: str) -> None:
        """Write an outbox event for notifier ``name`` with every final verdict from now on."""
        if name not in self.outbox_consumers:
            self.outbox_consumers = (*self.outbox_consumers, name)

    def _queue_events(self, session: Session, analysis_id: str, kind: str, now: float) -> None:
        """Add the outbox events of ``analysis_id`` to ``session`` (the verdict's transaction)."""
        rows = [
            {
                "analysis_id": analysis_id,
                "kind": kind,
                "consumer": consumer,
                "status": PENDING,
                "attempts": 0,
                "created_ts": now,
                "updated_ts": now,
            }
            for consumer in self.outbox_consumers
        ]
        if rows:
            self._insert_new(session, OutboxEventRecord.__table__, rows)  # type: ignore[arg-type]

    def pending_events(
        self, consumer: str, *, analysis_id: str | None = None, limit: int = 100
    ) -> list[OutboxEvent]:
        """Return ``consumer``'s events not expanded yet (of one analysis, if given), oldest first."""
        query = select(OutboxEventRecord).where(
            OutboxEventRecord.consumer == consumer, OutboxEventRecord.status == PENDING
        )
        if analysis_id is not None:
            query = query.where(OutboxEventRecord.analysis_id == analysis_id)
        with self.session() as session:
            rows = session.scalars(query.order_by(OutboxEventRecord.id).limit(limit))
            return [OutboxEvent.from_row(row) for row in rows]

    def settle_event(self, event_id: int, error: str | None = None) -> str | None:
        """Record an expansion: ``done`` without ``error``; else a failed attempt (``failed`` after
        ``MAX_EVENT_ATTEMPTS``). Return the event's status (None: it is gone)."""
        with self.session() as session:
            record = session.get(OutboxEventRecord, event_id, with_for_update=not self.is_sqlite)
            if record is None:
                return None
            if record.status == PENDING:
                record.updated_ts = time.time()
                if error is None:
                    record.status = DONE
                else:
                    record.attempts += 1
                    record.last_error = error[:2000]
                    record.status = FAILED if record.attempts >= MAX_EVENT_ATTEMPTS else PENDING
            return record.status

    def delete_done_events(self, consumer: str, *, older_than_s: float, now: float | None = None) -> int:
        """Delete ``consumer``'s events expanded (``done``) more than ``older_than_s`` seconds ago;
        return how many. Pending and failed events are kept."""
        moment = time.time() if now is None else now
        with self.session() as session:
            deleted = session.execute(
                delete(OutboxEventRecord).where(
                    OutboxEventRecord.consumer == consumer,
                    OutboxEventRecord.status == DONE,
                    OutboxEventRecord.updated_ts < moment - older_than_s,
                )
            )
            return int(deleted.rowcount)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ notifications

    def _insert_new(self, session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows`` into ``table``, leaving out those a unique key already holds."""
        dialect = self.engine.dialect.name
        if dialect in ("postgresql", "sqlite"):
            dialect_insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            session.execute(dialect_insert(table).on_conflict_do_nothing(), list(rows))
            return
        for row in rows:  # another database: one savepoint per row
            try:
                with session.begin_nested():
                    session.execute(insert(table), [dict(row)])
            except IntegrityError:
                pass

    def add_notifications(self, messages: Sequence[QueuedMessage]) -> list[Notification]:
        """Queue notifications in one transaction; return them (each keyed one as stored).

        A message whose (kind, channel, key) is already queued is not queued again: the row
        already stored is returned instead (queueing is idempotent across retries and replicas).
        """
        now = time.time()
        queued: list[Notification] = []
        with self.session() as session:
            keyed = [m for m in messages if m.key is not None]
            if keyed:
                self._insert_new(session, NotificationRecord.__table__, [  # type: ignore[arg-type]
                    _row(message, now) for message in keyed
                ])
            for message in messages:
                if message.key is None:
                    record = NotificationRecord(**_row(message, now))
                    session.add(record)
                    session.flush()
                else:
                    record = session.scalars(
                        select(NotificationRecord).where(
                            NotificationRecord.kind == message.kind,
                            NotificationRecord.channel == message.channel,
                            NotificationRecord.dedupe_key == message.key,
                        )
                    ).one()
                queued.append(Notification.from_row(record))
        return queued

    def add_notification(
        self,
        kind: str,
        channel: str,
        payload: Mapping[str, Any],
        *,
        analysis_id: str | None = None,
        key: str | None = None,
    ) -> Notification:
        """Queue a notification for delivery; with a ``key``, once (see :meth:`add_notifications`)."""
        [queued] = self.add_notifications([QueuedMessage(kind, channel, payload, analysis_id, key)])
        return queued

    def pending_notifications(self) -> list[Notification]:
        """Return notifications not delivered yet, oldest first, less (logged) rows that cannot be read."""
        query = (
            select(NotificationRecord)
            .where(NotificationRecord.status == PENDING)
            .order_by(NotificationRecord.id)
        )
        rows = self._read_skipping(query, NotificationRecord, "notification", _payload_problem)
        return [Notification.from_row(row) for row in rows]

    def claim_notification(self, notification_id: int, now: float) -> bool:
        """Take a pending notification for sending (``pending`` to ``sending``, in one conditional update).

        Returns False when another sender (a replica) took it first.
        """
        with self.session() as session:
            result = session.execute(
                update(NotificationRecord)
                .where(NotificationRecord.id == notification_id, NotificationRecord.status == PENDING)
                .values(status=SENDING, updated_ts=now)
            )
            return int(result.rowcount) == 1  # type: ignore[attr-defined]

    def renew_claim(self, notification_id: int, now: float) -> None:
        """Renew the claim of a notification being sent (its ``updated_ts``), while it is ``sending``."""
        with self.session() as session:
            session.execute(
                update(NotificationRecord)
                .where(NotificationRecord.id == notification_id)
                .where(NotificationRecord.status == SENDING)
                .values(updated_ts=now)
            )

    def last_notification(self, kind: str, channel: str) -> Notification | None:
        """Return the newest notification of ``kind`` to ``channel`` that was not skipped, or None."""
        with self.session() as session:
            row = session.scalar(
                select(NotificationRecord)
                .where(
                    NotificationRecord.kind == kind,
                    NotificationRecord.channel == channel,
                    NotificationRecord.status != SKIPPED,
                )
                .order_by(NotificationRecord.id.desc())
                .limit(1)
            )
            return None if row is None else Notification.from_row(row)

    def finished_between(self, since: float, until: float) -> list[tuple[Analysis, dict[str, Any] | None]]:
        """Return the analyses finished in ``(since, until]``, oldest first, each with the result of
        its last stored interval (None: none stored)."""
        finished = (
            select(AnalysisRecord)
            .where(AnalysisRecord.completed_ts > since, AnalysisRecord.completed_ts <= until)
            .order_by(AnalysisRecord.completed_ts)
        )
        ids = select(AnalysisRecord.id).where(
            AnalysisRecord.completed_ts > since, AnalysisRecord.completed_ts <= until
        )
        last = (
            select(IntervalRecord.analysis_id, func.max(IntervalRecord.index).label("last"))
            .where(IntervalRecord.analysis_id.in_(ids))
            .group_by(IntervalRecord.analysis_id)
            .subquery()
        )
        results = select(IntervalRecord.analysis_id, IntervalRecord.result).join(
            last, (IntervalRecord.analysis_id == last.c.analysis_id) & (IntervalRecord.index == last.c.last)
        )
        with self.session() as session:
            analyses = [Analysis.from_row(row) for row in session.scalars(finished)]
            last_results = {row[0]: row[1] for row in session.execute(results)}
        return [(analysis, last_results.get(analysis.id)) for analysis in analyses]

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
                .where(NotificationRecord.status == SENDING)
                .where(NotificationRecord.updated_ts < moment - older_than_s)
                .values(
                    status=PENDING,
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


def _row(message: QueuedMessage, now: float) -> dict[str, Any]:
    """The notifications row of a message to queue."""
    return {
        "analysis_id": message.analysis_id,
        "kind": message.kind,
        "channel": message.channel,
        "status": PENDING,
        "attempts": 0,
        "payload": dict(message.payload),
        "created_ts": now,
        "updated_ts": now,
        "dedupe_key": message.key,
    }
