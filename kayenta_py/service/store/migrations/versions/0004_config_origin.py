"""Canary configs record which API created them (``native`` or ``kayenta``).

Kayenta-compatible endpoints may be open to clients without a token; a config created
through the native API must not be changed or deleted through them without a write token.
Configs stored before this revision count as native (the safe side).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    with op.batch_alter_table("canary_configs") as batch:
        batch.add_column(sa.Column("origin", sa.String(20), nullable=False, server_default="native"))


def downgrade() -> None:
    with op.batch_alter_table("canary_configs") as batch:
        batch.drop_column("origin")
