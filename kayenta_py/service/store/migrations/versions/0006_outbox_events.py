"""A transactional outbox: events stored with the final verdict; notifications queued once.

- ``outbox_events``: one row per (analysis, kind, consumer), written in the transaction of an
  analysis' final verdict; each notifier (the consumer) expands its pending events into
  notifications. Analyses that finished before this migration get none (their messages, if
  any, were queued the old way).
- ``notifications.dedupe_key`` with a unique index on (kind, channel, dedupe_key): a finished
  message's key is its analysis id, a digest's its cron minute (``payload.window.key``), so
  expanding an event again, or several replicas queueing the same digest, queue one row.
  Existing rows get their key; of rows that share one, the oldest keeps it, and the others
  still pending are marked ``skipped`` (they would post the same message again).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"

notifications = sa.table(
    "notifications",
    sa.column("id", sa.Integer),
    sa.column("analysis_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("channel", sa.String),
    sa.column("status", sa.String),
    sa.column("last_error", sa.Text),
    sa.column("dedupe_key", sa.String),
)


def _payload(connection: sa.Connection, notification_id: int) -> Any:
    """The row's payload, or None when it does not decode (such a row is left without a key)."""
    raw = connection.execute(
        sa.text("SELECT payload FROM notifications WHERE id = :id"), {"id": notification_id}
    ).scalar_one()
    if isinstance(raw, str | bytes):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return raw


def _key(connection: sa.Connection, row: Any) -> str | None:
    """The dedupe key of an existing notification (None: it has none)."""
    if row.kind == "finished" and row.analysis_id is not None:
        return str(row.analysis_id)
    if row.kind == "digest" and row.status != "skipped":
        payload = _payload(connection, row.id)
        window = payload.get("window") if isinstance(payload, dict) else None
        key = window.get("key") if isinstance(window, dict) else None
        return str(key)[:200] if key is not None else None
    return None


def upgrade() -> None:
    connection = op.get_bind()
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "analysis_id", sa.String(36), sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("consumer", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("updated_ts", sa.Float, nullable=False),
        sa.UniqueConstraint("analysis_id", "kind", "consumer"),
    )
    op.create_index("ix_outbox_events_analysis_id", "outbox_events", ["analysis_id"])
    op.create_index("ix_outbox_events_status", "outbox_events", ["status"])

    with op.batch_alter_table("notifications") as batch:
        batch.add_column(sa.Column("dedupe_key", sa.String(200), nullable=True))
    rows = connection.execute(
        sa.select(
            notifications.c.id,
            notifications.c.analysis_id,
            notifications.c.kind,
            notifications.c.channel,
            notifications.c.status,
        )
        .where(notifications.c.kind.in_(("finished", "digest")))
        .order_by(notifications.c.id)
    ).all()
    first: dict[tuple[str, str, str], int] = {}
    for row in rows:
        key = _key(connection, row)
        if key is None:
            continue
        owner = first.setdefault((row.kind, row.channel, key), row.id)
        if owner == row.id:
            connection.execute(
                sa.update(notifications).where(notifications.c.id == row.id).values(dedupe_key=key)
            )
        elif row.status == "pending":
            connection.execute(
                sa.update(notifications)
                .where(notifications.c.id == row.id)
                .values(status="skipped", last_error=f"the same message as notification {owner}")
            )
    op.create_index(
        "uq_notifications_kind_channel_key", "notifications", ["kind", "channel", "dedupe_key"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_notifications_kind_channel_key", table_name="notifications")
    with op.batch_alter_table("notifications") as batch:
        batch.drop_column("dedupe_key")
    op.drop_index("ix_outbox_events_status", table_name="outbox_events")
    op.drop_index("ix_outbox_events_analysis_id", table_name="outbox_events")
    op.drop_table("outbox_events")
