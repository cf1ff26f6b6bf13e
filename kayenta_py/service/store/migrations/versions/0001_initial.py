"""Initial schema: configs with versions, analyses, intervals, verdicts, notifications.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "canary_configs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(200), nullable=False, unique=True),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("deleted_ts", sa.Float, nullable=True),
    )
    op.create_table(
        "canary_config_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "config_id", sa.Integer, sa.ForeignKey("canary_configs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("body", sa.JSON, nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.UniqueConstraint("config_id", "version"),
    )
    op.create_index("ix_canary_config_versions_config_id", "canary_config_versions", ["config_id"])
    op.create_table(
        "analyses",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("config_name", sa.String(200), nullable=True),
        sa.Column("config_version", sa.Integer, nullable=True),
        sa.Column("config_body", sa.JSON, nullable=False),
        sa.Column("baseline_scope", sa.String(500), nullable=False),
        sa.Column("canary_scope", sa.String(500), nullable=False),
        sa.Column("location", sa.String(200), nullable=False),
        sa.Column("scope_params", sa.JSON, nullable=False),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("start_ts", sa.Float, nullable=False),
        sa.Column("lifetime_s", sa.Float, nullable=False),
        sa.Column("interval_s", sa.Float, nullable=False),
        sa.Column("warmup_s", sa.Float, nullable=False),
        sa.Column("lookback_s", sa.Float, nullable=True),
        sa.Column("step_s", sa.Float, nullable=False),
        sa.Column("thresholds", sa.JSON, nullable=False),
        sa.Column("fail_fast", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("intervals_total", sa.Integer, nullable=False),
        sa.Column("extra", sa.JSON, nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("updated_ts", sa.Float, nullable=False),
        sa.Column("completed_ts", sa.Float, nullable=True),
    )
    op.create_index("ix_analyses_config_name", "analyses", ["config_name"])
    op.create_index("ix_analyses_status", "analyses", ["status"])
    op.create_index("ix_analyses_created_ts", "analyses", ["created_ts"])
    op.create_table(
        "intervals",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "analysis_id", sa.String(36), sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("index", sa.Integer, nullable=False),
        sa.Column("window_start_ts", sa.Float, nullable=False),
        sa.Column("window_end_ts", sa.Float, nullable=False),
        sa.Column("due_ts", sa.Float, nullable=False),
        sa.Column("judged_ts", sa.Float, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("pairs", sa.JSON, nullable=False),
        sa.UniqueConstraint("analysis_id", "index"),
    )
    op.create_index("ix_intervals_analysis_id", "intervals", ["analysis_id"])
    op.create_table(
        "verdicts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "analysis_id", sa.String(36), sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("verdict", sa.String(20), nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_ts", sa.Float, nullable=False),
    )
    op.create_index("ix_verdicts_analysis_id", "verdicts", ["analysis_id"])
    op.create_table(
        "notifications",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "analysis_id", sa.String(36), sa.ForeignKey("analyses.id", ondelete="CASCADE"), nullable=True
        ),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("channel", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("created_ts", sa.Float, nullable=False),
        sa.Column("updated_ts", sa.Float, nullable=False),
    )
    op.create_index("ix_notifications_analysis_id", "notifications", ["analysis_id"])
    op.create_index("ix_notifications_status", "notifications", ["status"])


def downgrade() -> None:
    for table in (
        "notifications",
        "verdicts",
        "intervals",
        "analyses",
        "canary_config_versions",
        "canary_configs",
    ):
        op.drop_table(table)
