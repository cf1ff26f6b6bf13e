"""Reads of finished analyses' outcomes for ``/metrics``: counts by config and verdict, and the
latest finished analysis of each config with its last interval's per-metric results.

Both are read from the shared store (so every replica exports the same numbers) in one
statement each, on SQLite and PostgreSQL alike: a ``GROUP BY``, and a window function
(``row_number() OVER (PARTITION BY config ORDER BY completed_ts DESC)``) joined to each
latest analysis' last interval. The config of an analysis is its stored config's name, else
the name in its config body, else ``(unnamed config)`` (what the notifiers call it too).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, String, func, literal, select
from sqlalchemy.orm import aliased

from kayenta_py.service.store.base import StoreBase
from kayenta_py.service.store.tables import RUNNING, AnalysisRecord, IntervalRecord

UNNAMED = "(unnamed config)"


@dataclass(frozen=True)
class LatestOutcome:
    """The latest finished analysis of a config, with its last interval's per-metric results."""

    config: str
    analysis_id: str
    status: str
    verdict: str
    score: float | None
    completed_ts: float
    metrics: list[dict[str, Any]] = field(default_factory=list)


def config_label() -> ColumnElement[str]:
    """The SQL expression of an analysis' config name (stored name, body name, or ``UNNAMED``)."""
    body_name = AnalysisRecord.config_body["name"].as_string()
    return func.coalesce(
        AnalysisRecord.config_name, func.nullif(body_name, ""), literal(UNNAMED, String)
    )


def finished_counts(store: StoreBase) -> list[tuple[str, str, str, int]]:
    """Return (config, status, verdict, count) of every finished analysis, in one ``GROUP BY``."""
    label = config_label().label("config")
    query = (
        select(label, AnalysisRecord.status, AnalysisRecord.verdict, func.count())
        .where(AnalysisRecord.status != RUNNING)
        .group_by(label, AnalysisRecord.status, AnalysisRecord.verdict)
    )
    with store.session() as session:
        return [(str(c), str(s), str(v), int(n)) for c, s, v, n in session.execute(query)]


def latest_outcomes(store: StoreBase, *, limit: int) -> list[LatestOutcome]:
    """Return the latest finished analysis of each config (the ``limit`` most recently finished
    configs), each with its last interval's per-metric results, in one statement."""
    label = config_label()
    ranked = (
        select(
            AnalysisRecord.id,
            label.label("config"),
            AnalysisRecord.status,
            AnalysisRecord.verdict,
            AnalysisRecord.score,
            AnalysisRecord.completed_ts,
            func.row_number()
            .over(
                partition_by=label,
                order_by=(AnalysisRecord.completed_ts.desc(), AnalysisRecord.id.desc()),
            )
            .label("rank"),
        )
        .where(AnalysisRecord.status != RUNNING, AnalysisRecord.completed_ts.is_not(None))
        .subquery()
    )
    newest_first = ranked.c.completed_ts.desc()
    latest = select(ranked).where(ranked.c.rank == 1).order_by(newest_first).limit(limit).subquery()
    earlier = aliased(IntervalRecord)
    last_index = (
        select(func.max(earlier.index))
        .where(earlier.analysis_id == latest.c.id)
        .correlate(latest)
        .scalar_subquery()
    )
    query = (
        select(latest, IntervalRecord.result)
        .outerjoin(
            IntervalRecord,
            (IntervalRecord.analysis_id == latest.c.id) & (IntervalRecord.index == last_index),
        )
        .order_by(latest.c.config)
    )
    out: list[LatestOutcome] = []
    with store.session() as session:
        for row in session.execute(query):
            result = row.result if isinstance(row.result, dict) else {}
            metrics = [m for m in result.get("metrics") or [] if isinstance(m, dict)]
            out.append(
                LatestOutcome(
                    config=str(row.config),
                    analysis_id=str(row.id),
                    status=str(row.status),
                    verdict=str(row.verdict),
                    score=row.score,
                    completed_ts=float(row.completed_ts),
                    metrics=metrics,
                )
            )
    return out
