"""The outbox of notifications: queued with a verdict, claimed by one sender, released when stale."""


from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from sqlalchemy import (
    select,
    update,
)

from kayenta_py.model.errors import StoreError
from kayenta_py.service.store.base import StoreBase
from kayenta_py.service.store.checks import (
    _payload_problem,
)
from kayenta_py.service.store.tables import (
    NotificationRecord,
)

log = logging.getLogger(__name__)

class NotificationStore(StoreBase):
    """Notifications waiting to be sent, and their delivery attempts."""

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
