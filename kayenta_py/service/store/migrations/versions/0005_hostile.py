"""Intervals store their pairs as deltas; one analysis per client key; a heartbeat row.

- ``intervals.pairs``: a fixed-mode interval's cumulative pairs become deltas (the points
  after the previous interval's, verified by digest; see ``kayenta_py.model.pairs_codec.encode_pairs``),
  and ``intervals.pairs_digest`` holds each interval's digest. Downgrading rebuilds them.
- ``uq_analyses_kind_external_key``: unique (kind, external_key). Of analyses that already
  share a key, the newest keeps it (the one ``find_analysis`` returned); the older lose it.
- ``heartbeat``: the row ``Store.check_writable`` rewrites.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from kayenta_py.model.pairs_codec import cumulative_document, encode_pairs

revision = "0005"
down_revision = "0004"

intervals = sa.table(
    "intervals",
    sa.column("id", sa.Integer),
    sa.column("analysis_id", sa.String),
    sa.column("index", sa.Integer),
    sa.column("window_start_ts", sa.Float),
    sa.column("pairs", sa.JSON),
    sa.column("pairs_digest", sa.JSON),
)
analyses = sa.table(
    "analyses",
    sa.column("id", sa.String),
    sa.column("kind", sa.String),
    sa.column("external_key", sa.String),
    sa.column("created_ts", sa.Float),
)


def _interval_ids(connection: sa.Connection, analysis_id: str) -> list[Any]:
    return list(
        connection.execute(
            sa.select(intervals.c.id, intervals.c.index, intervals.c.window_start_ts)
            .where(intervals.c.analysis_id == analysis_id)
            .order_by(intervals.c.index)
        )
    )


def _analysis_ids(connection: sa.Connection) -> list[str]:
    return list(connection.execute(sa.select(intervals.c.analysis_id).distinct()).scalars())


def _pairs(connection: sa.Connection, interval_id: int) -> Any:
    return connection.execute(sa.select(intervals.c.pairs).where(intervals.c.id == interval_id)).scalar_one()


def upgrade() -> None:
    connection = op.get_bind()
    op.create_table(
        "heartbeat",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("ts", sa.Float, nullable=False),
        sa.Column("pad", sa.LargeBinary, nullable=True),
    )
    op.execute(sa.text("INSERT INTO heartbeat (id, ts) VALUES (1, 0)"))

    duplicates = connection.execute(
        sa.select(analyses.c.kind, analyses.c.external_key)
        .where(analyses.c.external_key.is_not(None))
        .group_by(analyses.c.kind, analyses.c.external_key)
        .having(sa.func.count() > 1)
    ).all()
    for kind, key in duplicates:
        ids = connection.execute(
            sa.select(analyses.c.id)
            .where(analyses.c.kind == kind, analyses.c.external_key == key)
            .order_by(analyses.c.created_ts.desc(), analyses.c.id)
        ).scalars()
        older = list(ids)[1:]
        connection.execute(sa.update(analyses).where(analyses.c.id.in_(older)).values(external_key=None))
    op.create_index("uq_analyses_kind_external_key", "analyses", ["kind", "external_key"], unique=True)

    with op.batch_alter_table("intervals") as batch:
        batch.add_column(sa.Column("pairs_digest", sa.JSON, nullable=True))
    for analysis_id in _analysis_ids(connection):
        previous: tuple[int, float, Any] | None = None  # (index, window start, digest)
        for interval_id, index, start in _interval_ids(connection, analysis_id):
            cumulative = previous is not None and previous[0] == index - 1 and previous[1] == start
            document = _pairs(connection, interval_id)
            if not isinstance(document, list):  # an unreadable row: left as it is, reported when read
                previous = None
                continue
            try:
                stored, digest = encode_pairs(
                    document, index, previous[2] if previous and cumulative else None
                )
            except (KeyError, TypeError, AttributeError):
                previous = None
                continue
            connection.execute(
                sa.update(intervals)
                .where(intervals.c.id == interval_id)
                .values(pairs=stored, pairs_digest=digest)
            )
            previous = (index, start, digest)


def downgrade() -> None:
    connection = op.get_bind()
    for analysis_id in _analysis_ids(connection):
        chain: list[tuple[int, Any]] = []
        for interval_id, index, _start in _interval_ids(connection, analysis_id):
            chain.append((index, _pairs(connection, interval_id)))
            document = cumulative_document(chain)
            connection.execute(
                sa.update(intervals).where(intervals.c.id == interval_id).values(pairs=document)
            )
            chain = [(index, document)]  # the full pairs stand in for the deltas before them
    with op.batch_alter_table("intervals") as batch:
        batch.drop_column("pairs_digest")
    op.drop_index("uq_analyses_kind_external_key", table_name="analyses")
    op.drop_table("heartbeat")
