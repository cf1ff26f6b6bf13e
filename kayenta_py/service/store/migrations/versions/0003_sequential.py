"""Analyses get a mode (fixed or sequential) and the sequential judges' state.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("mode", sa.String(20), nullable=False, server_default="fixed"))
        batch.add_column(sa.Column("state", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.drop_column("state")
        batch.drop_column("mode")
