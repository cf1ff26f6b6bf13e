"""Analyses get an external key: the identity a client gave them (a Flagger canary's checksum).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.add_column(sa.Column("external_key", sa.String(500), nullable=True))
        batch.create_index("ix_analyses_external_key", ["external_key"])


def downgrade() -> None:
    with op.batch_alter_table("analyses") as batch:
        batch.drop_index("ix_analyses_external_key")
        batch.drop_column("external_key")
