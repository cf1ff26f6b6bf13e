"""The outbox of notifications: queued with a verdict, claimed by one sender, released when stale.

Also the reads a digest of finished analyses needs (what finished in a window, with the result
of each one's last interval), so a notifier runs no SQL of its own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    func,
    select,
    update,
)

from kayenta_py.model.errors import StoreError
from kayenta_py.service.store.base import StoreBase
from kayenta_py.service.store.checks import (
    _payload_problem,
)
from kayenta_py.service.store.records import Analysis, Notification
from kayenta_py.service.store.tables import (
    AnalysisRecord,
    IntervalRecord,
    NotificationRecord,
)

log = logging.getLogger(__name__)

PENDING, SENDING, SENT, FAILED, SKIPPED = "pending", "sending", "sent", "failed", "skipped"


class NotificationStore(StoreBase):
    """Notifications waiting to be sent, and their delivery attempts."""

    def add_notification(
        self, kind: str, channel: str, payload: Mapping[str, Any], *, analysis_id: str | None = None
    ) -> Notification:
        """Queue a notification for delivery."""
        now = time.time()
        record = NotificationRecord(
            analysis_id=analysis_id,
            kind=kind,
            channel=channel,
            status=PENDING,
            attempts=0,
            payload=dict(payload),
            created_ts=now,
            updated_ts=now,
        )
        with self.session() as session:
            session.add(record)
        return Notification.from_row(record)

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

    def earlier_notifications(self, notification: Notification, within_s: float) -> list[Notification]:
        """Return the notifications of the same kind and channel queued before ``notification``
        (at most ``within_s`` earlier) and not skipped."""
        with self.session() as session:
            rows = session.scalars(
                select(NotificationRecord).where(
                    NotificationRecord.kind == notification.kind,
                    NotificationRecord.channel == notification.channel,
                    NotificationRecord.id < notification.id,
                    NotificationRecord.status != SKIPPED,
                    NotificationRecord.created_ts > notification.created_ts - within_s,
                )
            ).all()
            return [Notification.from_row(row) for row in rows]

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
