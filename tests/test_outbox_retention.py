"""Outbox events are not kept for ever: the periodic expansion deletes a notifier's old done events.

``OutboxNotifier.expand_and_clean`` (the job ``register`` adds) expands pending events, then
deletes this notifier's events expanded more than ``retention`` seconds ago (the setting
``outbox_retention``, default 7 days). Pending and failed events, recent done ones and other
notifiers' events are kept. Runs on a fresh SQLite file and a fresh PostgreSQL database.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from pydantic import ValidationError
from sqlalchemy import select, update

from kayenta_py.service.notifiers import RETENTION_S, OutboxNotifier
from kayenta_py.service.settings import Settings
from kayenta_py.service.store.outbox import DONE, FAILED, PENDING
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import CANCELLED, OutboxEventRecord

DAY = 86400.0


class Recorder:
    """A notifier that records which analyses it was told of."""

    def __init__(self) -> None:
        self.told: list[str] = []

    def register(self, scheduler: Any) -> None:
        pass

    def notify_finished(self, analysis: Analysis) -> None:
        self.told.append(analysis.id)


def finished(store: Store) -> str:
    analysis = store.create_analysis(
        config_name="retention",
        config_version=1,
        config_body={"name": "retention", "metrics": [{"name": "latency", "kind": "latency"}]},
        baseline_scope="baseline",
        canary_scope="canary",
        source="demo",
        start_ts=time.time() - 600.0,
        lifetime_s=60.0,
        interval_s=60.0,
        step_s=10.0,
        thresholds={"pass": 95.0, "marginal": 75.0},
        intervals_total=1,
    )
    store.finish_analysis(analysis.id, CANCELLED, "fail", None, "cancelled")  # writes its events
    return analysis.id


def set_event(store: Store, analysis_id: str, consumer: str, status: str, age_s: float) -> None:
    with store.session() as session:
        session.execute(
            update(OutboxEventRecord)
            .where(OutboxEventRecord.analysis_id == analysis_id, OutboxEventRecord.consumer == consumer)
            .values(status=status, updated_ts=time.time() - age_s)
        )


def events(store: Store) -> set[tuple[str, str, str]]:
    with store.session() as session:
        rows = session.execute(
            select(OutboxEventRecord.analysis_id, OutboxEventRecord.consumer, OutboxEventRecord.status)
        )
        return {(a, c, s) for a, c, s in rows}


def test_the_periodic_expansion_deletes_old_done_events_only(store: Store) -> None:
    mine, other = Recorder(), Recorder()
    outbox = OutboxNotifier("mine", mine, store, retention=7 * DAY)
    OutboxNotifier("other", other, store)  # a second notifier: each final verdict writes two events
    old_done, recent_done, old_failed, old_pending = (finished(store) for _ in range(4))
    set_event(store, old_done, "mine", DONE, 8 * DAY)
    set_event(store, old_done, "other", DONE, 8 * DAY)  # another notifier's: not this one's to delete
    set_event(store, recent_done, "mine", DONE, 6 * DAY)
    set_event(store, old_failed, "mine", FAILED, 30 * DAY)
    set_event(store, old_pending, "mine", PENDING, 30 * DAY)

    assert outbox.expand_and_clean() == 1  # its one pending event, expanded before the clean-up
    assert mine.told == [old_pending] and other.told == []
    assert events(store) == {
        (recent_done, "mine", DONE),  # expanded 6 days ago: within the retention
        (old_failed, "mine", FAILED),  # failed: kept for whoever looks into it
        (old_pending, "mine", DONE),  # just expanded
        (old_done, "other", DONE),  # another notifier's
        *((a, "other", PENDING) for a in (recent_done, old_failed, old_pending)),
    }
    assert store.delete_done_events("mine", older_than_s=7 * DAY) == 0  # nothing more to delete
    assert store.delete_done_events("other", older_than_s=7 * DAY) == 1


def test_register_runs_the_cleaning_expansion_and_the_setting_sets_the_retention(store: Store) -> None:
    recorder = Recorder()
    outbox = OutboxNotifier("mine", recorder, store)
    assert outbox.retention == RETENTION_S == 7 * DAY
    scheduler = BackgroundScheduler()
    outbox.register(scheduler)
    [job] = scheduler.get_jobs()
    assert job.func == outbox.expand_and_clean
    assert Settings(outbox_retention=3600).outbox_retention == 3600.0
    assert Settings().outbox_retention == 7 * DAY
    with pytest.raises(ValidationError, match="outbox_retention"):
        Settings(outbox_retention=0)
