"""The store: canary configs (versioned), analyses, intervals, verdicts and the notifications outbox.

SQLAlchemy 2 over SQLite (a file, WAL mode; the embedded default) or PostgreSQL
(by URL). The schema is created and upgraded by the Alembic migrations in
``kayenta_py/service/store/migrations``, applied on start. Times are stored as epoch seconds.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    func,
    select,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from kayenta_py.model.kayenta_result import JUDGE_NAME_KEY
from kayenta_py.model.pairs_codec import (
    encode_pairs,
    pairs_to_json,
)
from kayenta_py.model.types import CanaryResult, MetricSetPair
from kayenta_py.service.store.checks import (
    analysis_problem,
)
from kayenta_py.service.store.configs import ConfigStore
from kayenta_py.service.store.errors import UnreadableRecord
from kayenta_py.service.store.outbox import FINISHED_EVENT, NotificationStore
from kayenta_py.service.store.records import Analysis, IntervalOutcome, VerdictChange
from kayenta_py.service.store.tables import (
    RUNNING,
    AnalysisRecord,
    IntervalRecord,
    VerdictRecord,
)

log = logging.getLogger(__name__)


class Store(ConfigStore, NotificationStore):
    """Persistence of configs, analyses, intervals, verdicts and notifications."""

    # ------------------------------------------------------------ analyses

    def create_analysis(self, **fields: Any) -> Analysis:
        """Store a new running analysis; ``fields`` are :class:`AnalysisRecord` columns."""
        now = time.time()
        record = AnalysisRecord(
            id=fields.pop("id", None) or uuid.uuid4().hex,
            status=RUNNING,
            verdict="pending",
            reason="waiting for the first interval",
            created_ts=now,
            updated_ts=now,
            **fields,
        )
        try:
            with self.session() as session:
                session.add(record)
                session.add(
                    VerdictRecord(
                        analysis_id=record.id,
                        verdict="pending",
                        score=None,
                        complete=False,
                        reason=record.reason,
                        created_ts=now,
                    )
                )
        except IntegrityError:  # the same client key created concurrently: that analysis is the one
            key = fields.get("external_key")
            existing = None if key is None else self.find_analysis(fields.get("kind", "native"), key)
            if existing is None:
                raise
            return existing
        return Analysis.from_row(record)

    def get_analysis(self, analysis_id: str, *, with_intervals: bool = True) -> Analysis | None:
        """Return an analysis (with its intervals, oldest first) or None.

        Raises :class:`UnreadableRecord` when its row (or an interval's) cannot be read.
        """
        try:
            with self.session() as session:
                record = session.get(AnalysisRecord, analysis_id)
                if record is not None and with_intervals:
                    record.intervals  # noqa: B018 (loaded before the session closes)
        except (ValueError, TypeError, OverflowError) as exc:  # a body that does not decode
            raise UnreadableRecord(analysis_id, f"{type(exc).__name__}: {exc}") from None
        if record is None:
            return None
        problem = analysis_problem(record)
        if problem is not None:
            raise UnreadableRecord(analysis_id, problem)
        return Analysis.from_row(record, with_intervals=with_intervals)

    def list_analyses(
        self,
        *,
        status: str | None = None,
        config: str | None = None,
        kind: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Analysis], int]:
        """Return a page of analyses, newest first, and the total matching."""
        query = select(AnalysisRecord)
        if status is not None:
            query = query.where(AnalysisRecord.status == status)
        if config is not None:
            query = query.where(AnalysisRecord.config_name == config)
        if kind is not None:
            query = query.where(AnalysisRecord.kind == kind)
        with self.session() as session:
            total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        page = query.order_by(AnalysisRecord.created_ts.desc(), AnalysisRecord.id).limit(limit).offset(offset)
        return [Analysis.from_row(row) for row in self._readable(page)], int(total)

    def find_analysis(self, kind: str, external_key: str) -> Analysis | None:
        """Return the newest analysis a client created under ``external_key``, or None."""
        with self.session() as session:
            analysis_id = session.scalar(
                select(AnalysisRecord.id)
                .where(AnalysisRecord.kind == kind, AnalysisRecord.external_key == external_key)
                .order_by(AnalysisRecord.created_ts.desc())
                .limit(1)
            )
        return None if analysis_id is None else self.get_analysis(analysis_id, with_intervals=False)

    def running_analyses(self) -> list[Analysis]:
        """Return every analysis still running (to resume after a restart), less unreadable rows."""
        rows = self._readable(select(AnalysisRecord).where(AnalysisRecord.status == RUNNING))
        return [Analysis.from_row(row) for row in rows]

    def judged_indices(self, analysis_id: str) -> set[int]:
        """Return the indices of the intervals already judged."""
        with self.session() as session:
            return set(
                session.scalars(select(IntervalRecord.index).where(IntervalRecord.analysis_id == analysis_id))
            )

    def interval_outcomes(self, analysis_id: str) -> list[IntervalOutcome]:
        """Return the outcome of every stored interval, oldest first, without their pairs."""
        query = (
            select(IntervalRecord.index, IntervalRecord.verdict, IntervalRecord.score, IntervalRecord.reason)
            .where(IntervalRecord.analysis_id == analysis_id)
            .order_by(IntervalRecord.index)
        )
        with self.session() as session:
            return [
                IntervalOutcome(index=index, verdict=verdict, score=score, reason=reason)
                for index, verdict, score, reason in session.execute(query)
            ]

    def last_result(self, analysis_id: str) -> dict[str, Any] | None:
        """Return the per-metric result of an analysis' last stored interval (None: none stored)."""
        query = (
            select(IntervalRecord.result)
            .where(IntervalRecord.analysis_id == analysis_id)
            .order_by(IntervalRecord.index.desc())
            .limit(1)
        )
        with self.session() as session:
            return session.scalar(query)

    def record_interval(
        self,
        analysis_id: str,
        index: int,
        window: tuple[float, float],
        due_ts: float,
        result: CanaryResult,
        pairs: Sequence[MetricSetPair],
        *,
        final: tuple[str, str, float | None, str] | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> bool:
        """Store one interval's judgement, exactly once; optionally finish the analysis with it.

        ``final`` is (status, verdict, score, reason); ``state`` replaces the
        sequential judges' state in the same transaction, and a final verdict's outbox
        events (one per notifier, see :attr:`outbox_consumers`) are written in it too.
        Returns False (and changes nothing) when that interval was already stored, or
        the analysis is no longer running (cancelled meanwhile).
        """
        now = time.time()
        try:
            with self.session() as session:
                analysis = session.get(AnalysisRecord, analysis_id, with_for_update=not self.is_sqlite)
                if analysis is None or analysis.status != RUNNING:
                    return False
                previous = session.execute(  # one small row: where its window starts, its digest
                    select(IntervalRecord.window_start_ts, IntervalRecord.pairs_digest).where(
                        IntervalRecord.analysis_id == analysis_id, IntervalRecord.index == index - 1
                    )
                ).first()
                base = previous[1] if previous is not None and previous[0] == window[0] else None
                stored, digest = encode_pairs(pairs_to_json(pairs), index, base)
                session.add(
                    IntervalRecord(
                        analysis_id=analysis_id,
                        index=index,
                        window_start_ts=window[0],
                        window_end_ts=window[1],
                        due_ts=due_ts,
                        judged_ts=now,
                        score=result.score,
                        verdict=result.verdict.value,
                        reason=result.reason,
                        # One dialect: Kayenta's judgeResult is derived on read (model.kayenta_result).
                        result={**result.to_dict(), JUDGE_NAME_KEY: result.judge_name},
                        stored_pairs=stored,
                        pairs_digest=digest,
                    )
                )
                session.flush()
                if state is not None:
                    analysis.state = dict(state)
                if final is not None:
                    status, verdict, score, reason = final
                    analysis.status, analysis.completed_ts = status, now
                    self._queue_events(session, analysis_id, FINISHED_EVENT, now)  # with the verdict
                else:
                    verdict, score, reason = (
                        "pending",
                        result.score,
                        f"interval {index + 1} of {analysis.intervals_total}: {result.reason}",
                    )
                self._publish(session, analysis, verdict, score, reason, now)
            return True
        except IntegrityError:
            return False

    def finish_analysis(
        self,
        analysis_id: str,
        status: str,
        verdict: str,
        score: float | None,
        reason: str,
        *,
        error: str | None = None,
    ) -> Analysis | None:
        """End a running analysis (cancelled, failed, or completed without a new interval).

        Its outbox events (one per notifier) are written in the transaction of the verdict.
        """
        now = time.time()
        with self.session() as session:
            analysis = session.get(AnalysisRecord, analysis_id, with_for_update=not self.is_sqlite)
            if analysis is None:
                return None
            if analysis.status == RUNNING:
                analysis.status, analysis.completed_ts, analysis.error = status, now, error
                self._publish(session, analysis, verdict, score, reason, now)
                self._queue_events(session, analysis_id, FINISHED_EVENT, now)  # with the verdict
            return Analysis.from_row(analysis)

    @staticmethod
    def _publish(
        session: Session, analysis: AnalysisRecord, verdict: str, score: float | None, reason: str, now: float
    ) -> None:
        analysis.verdict, analysis.score, analysis.reason, analysis.updated_ts = verdict, score, reason, now
        session.add(
            VerdictRecord(
                analysis_id=analysis.id,
                verdict=verdict,
                score=score,
                complete=analysis.complete,
                reason=reason,
                created_ts=now,
            )
        )

    def verdict_history(self, analysis_id: str) -> list[VerdictChange]:
        """Return the verdicts an analysis published, oldest first."""
        with self.session() as session:
            query = select(VerdictRecord).where(VerdictRecord.analysis_id == analysis_id)
            rows = session.scalars(query.order_by(VerdictRecord.id))
            return [VerdictChange.from_row(row) for row in rows]
