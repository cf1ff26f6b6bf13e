"""The store under hostile conditions: storage linear in the data, unreadable rows, concurrent
creation under one client key, a database that refuses writes, interrupted deliveries.

Every test runs on a fresh SQLite file and a fresh database of the machine's real PostgreSQL.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from sqlalchemy import event, select, text

import kayenta_py
from kayenta_py import MetricSet, MetricSetPair
from kayenta_py.model.pairs_codec import pairs_from_json, pairs_to_json
from kayenta_py.service.store.errors import UnreadableRecord, is_busy_error
from kayenta_py.service.store.migrate import alembic_config, upgrade
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import AnalysisRecord, NotificationRecord

CONFIG_BODY: dict[str, Any] = {
    "name": "hostile",
    "groups": {"latency": 100},
    "metrics": [{"name": "latency", "kind": "latency"}],
}
CONFIG = kayenta_py.load_config(CONFIG_BODY)
T0 = 1_700_000_000.0
JSON_COLUMNS = ("config_body", "thresholds", "scope_params", "extra", "state")




def fields(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "config_name": "hostile",
        "config_version": 1,
        "config_body": CONFIG_BODY,
        "baseline_scope": "baseline",
        "canary_scope": "canary",
        "source": "demo",
        "start_ts": T0,
        "lifetime_s": 1000.0,
        "interval_s": 1.0,
        "step_s": 1.0,
        "thresholds": {"pass": 95.0, "marginal": 75.0},
        "intervals_total": 1000,
    }
    values.update(overrides)
    return values


def series(count: int, *, stamps: bool = True, seed: int = 3) -> list[MetricSetPair]:
    """A latency pair of ``count`` one-second points (the same prefix for every count)."""
    rng = np.random.default_rng(seed)
    base, canary = rng.lognormal(0.0, 0.1, 5000)[:count], rng.lognormal(0.0, 0.1, 5000)[:count]
    base[::97] = math.nan  # a few missing points
    times = T0 + 1.0 + np.arange(count, dtype=np.float64) if stamps else None
    tags = {"region": "eu"}
    return [
        MetricSetPair(
            "latency",
            MetricSet("latency", base, tags, times),
            MetricSet("latency", canary, tags, times),
            tags,
        )
    ]


def stored_documents(store: Store, analysis_id: str, column: str = "pairs") -> list[str]:
    """Return the stored JSON text of a column of an analysis' intervals, oldest first."""
    with store.engine.connect() as connection:
        rows = connection.execute(
            text(f'SELECT {column} FROM intervals WHERE analysis_id = :a ORDER BY "index"'),
            {"a": analysis_id},
        )
        return [r[0] if isinstance(r[0], str) else json.dumps(r[0]) for r in rows]


# ---------------------------------------------------------------- storage linear in the data


def test_a_thousand_cumulative_intervals_store_about_their_data_once(store: Store) -> None:
    analysis = store.create_analysis(**fields())
    result = kayenta_py.judge_pairs(CONFIG, series(60))
    for index in range(1000):
        window = analysis.window(index)
        pairs = series(index + 1)
        assert store.record_interval(analysis.id, index, window, window[1], result, pairs)
    documents = stored_documents(store, analysis.id)
    stored = sum(len(d) for d in documents)
    raw = len(json.dumps(pairs_to_json(series(1000))))
    digests = sum(len(d) for d in stored_documents(store, analysis.id, "pairs_digest"))
    print(
        f"\n{store.engine.dialect.name}: 1,000 intervals, 1 metric, 1-s step: stored {stored:,} bytes "
        f"of pairs JSON for {raw:,} bytes of raw data ({stored / raw:.2f}x); "
        f"with the digests ({digests:,} bytes): {(stored + digests) / raw:.2f}x"
    )
    assert stored <= 2 * raw
    assert stored + digests <= 4 * raw  # the digests are small and linear too
    assert all('"delta"' in d for d in documents[1:]) and '"delta"' not in documents[0]

    loaded = store.get_analysis(analysis.id)
    assert loaded is not None and len(loaded.intervals) == 1000
    for index in (0, 1, 499, 999):  # each interval's full pairs, rebuilt exactly
        assert loaded.intervals[index].pairs == pairs_to_json(series(index + 1))
    again = kayenta_py.judge_pairs(CONFIG, pairs_from_json(loaded.intervals[-1].pairs))
    assert again.to_dict() == kayenta_py.judge_pairs(CONFIG, series(1000)).to_dict()


def test_changed_points_no_timestamps_and_sliding_windows_stay_exact(store: Store) -> None:
    result = kayenta_py.judge_pairs(CONFIG, series(30))
    cumulative = store.create_analysis(**fields(intervals_total=5, lifetime_s=5.0))
    revised = series(3, seed=99)  # interval 2's first points differ (late data): stored in full
    batches = [series(1, stamps=False), series(2, stamps=False), revised, series(4, seed=99), series(5)]
    for index, pairs in enumerate(batches):
        window = cumulative.window(index)
        assert store.record_interval(cumulative.id, index, window, window[1], result, pairs)
    documents = stored_documents(store, cumulative.id)
    assert ['"delta"' in d for d in documents] == [False, True, False, True, False]
    loaded = store.get_analysis(cumulative.id)
    assert loaded is not None
    assert [i.pairs for i in loaded.intervals] == [pairs_to_json(b) for b in batches]

    sliding = store.create_analysis(**fields(intervals_total=3, lifetime_s=3.0, lookback_s=2.0))
    for index in range(3):
        window = sliding.window(index)
        assert store.record_interval(sliding.id, index, window, window[1], result, series(index + 1))
    assert not any('"delta"' in d for d in stored_documents(store, sliding.id))


def test_the_migration_turns_cumulative_rows_into_deltas_and_back(database_url: str) -> None:
    engine = sa.create_engine(database_url)
    upgrade(engine, "0004")
    analyses = sa.table(
        "analyses",
        *(sa.column(n) for n in AnalysisRecord.__table__.columns.keys() if n not in JSON_COLUMNS),  # noqa: SIM118
        sa.column("config_body", sa.JSON),
        sa.column("thresholds", sa.JSON),
        sa.column("scope_params", sa.JSON),
        sa.column("extra", sa.JSON),
    )
    intervals = sa.table(
        "intervals",
        *(
            sa.column(n)
            for n in (
                "analysis_id",
                "index",
                "window_start_ts",
                "window_end_ts",
                "due_ts",
                "judged_ts",
                "score",
                "verdict",
                "reason",
            )
        ),
        sa.column("result", sa.JSON),
        sa.column("pairs", sa.JSON),
    )
    row = {
        **fields(intervals_total=40, lifetime_s=40.0),
        "kind": "flagger",
        "mode": "fixed",
        "location": "",
        "warmup_s": 0.0,
        "fail_fast": True,
        "status": "completed",
        "verdict": "pass",
        "reason": "",
        "scope_params": {},
        "extra": {},
        "updated_ts": T0,
    }
    with engine.begin() as connection:
        for name, created in (("old", T0), ("new", T0 + 5)):  # two analyses under one client key
            connection.execute(
                sa.insert(analyses).values(**row, id=name, created_ts=created, external_key="k")
            )
        originals = [pairs_to_json(series(i + 1)) for i in range(40)]
        for index, document in enumerate(originals):
            connection.execute(
                sa.insert(intervals).values(
                    analysis_id="new",
                    index=index,
                    window_start_ts=T0,
                    window_end_ts=T0 + index + 1,
                    due_ts=T0 + index + 1,
                    judged_ts=T0,
                    score=100.0,
                    verdict="pass",
                    reason="",
                    result={},
                    pairs=document,
                )
            )
    before = len(json.dumps(originals))
    store = Store(database_url)
    try:
        store.migrate()
        after = sum(len(d) for d in stored_documents(store, "new"))
        print(f"\n{store.engine.dialect.name}: 40 cumulative rows: {before:,} bytes before, {after:,} after")
        assert after < before / 5
        loaded = store.get_analysis("new")
        assert loaded is not None and [i.pairs for i in loaded.intervals] == originals
        assert store.find_analysis("flagger", "k").id == "new"  # type: ignore[union-attr]
        old = store.get_analysis("old", with_intervals=False)
        assert old is not None and old.external_key is None  # the older duplicate gave up the key

        from alembic import command

        command.downgrade(alembic_config(store.engine), "0004")
        with store.engine.connect() as connection:
            back = (
                connection.execute(
                    sa.select(intervals.c.pairs)
                    .where(intervals.c.analysis_id == "new")
                    .order_by(intervals.c.index)
                )
                .scalars()
                .all()
            )
        assert list(back) == originals
    finally:
        store.close()
        engine.dispose()


# ---------------------------------------------------------------- unreadable rows


def test_unreadable_rows_are_logged_and_skipped(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    good = store.create_analysis(**fields(intervals_total=3, lifetime_s=3.0))
    bad = {
        name: store.create_analysis(**fields(intervals_total=3, lifetime_s=3.0)).id
        for name in ("far_future", "thresholds", "body")
    }
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE analyses SET created_ts = 1e300 WHERE id = :i"), {"i": bad["far_future"]}
        )
        connection.execute(
            text("UPDATE analyses SET thresholds = '[1, 2]' WHERE id = :i"), {"i": bad["thresholds"]}
        )
        if store.is_sqlite:  # a body that is not JSON at all
            connection.execute(
                text("UPDATE analyses SET config_body = '{not json' WHERE id = :i"), {"i": bad["body"]}
            )
        else:  # PostgreSQL keeps JSON valid: a start that is no time
            connection.execute(
                text("UPDATE analyses SET start_ts = 'Infinity' WHERE id = :i"), {"i": bad["body"]}
            )
    caplog.set_level(logging.ERROR, logger="kayenta_py.service.store.repository")

    page, total = store.list_analyses()
    assert [r.id for r in page] == [good.id] and total == 4
    assert [r.id for r in store.running_analyses()] == [good.id]
    for analysis_id in bad.values():
        assert analysis_id in caplog.text
        with pytest.raises(UnreadableRecord, match=analysis_id) as caught:
            store.get_analysis(analysis_id)
        assert caught.value.record_id == analysis_id
    assert store.get_analysis(good.id) is not None


def test_an_unreadable_interval_or_notification_is_reported(store: Store) -> None:
    analysis = store.create_analysis(**fields(intervals_total=3, lifetime_s=3.0))
    result = kayenta_py.judge_pairs(CONFIG, series(30))
    assert store.record_interval(analysis.id, 0, analysis.window(0), T0 + 1, result, series(1))
    kept = store.add_notification("analysis", "slack", {"text": "ok"})
    broken = store.add_notification("analysis", "slack", {"text": "broken"})
    with store.engine.begin() as connection:
        connection.execute(text("UPDATE intervals SET judged_ts = -1e300"))
        value = "'{cut off'" if store.is_sqlite else "'\"a string\"'"
        connection.execute(
            text(f"UPDATE notifications SET payload = {value} WHERE id = :i"), {"i": broken.id}
        )
    with pytest.raises(UnreadableRecord, match=analysis.id):
        store.get_analysis(analysis.id)
    assert store.get_analysis(analysis.id, with_intervals=False) is not None  # its summary still reads
    assert [n.id for n in store.pending_notifications()] == [kept.id]


# ---------------------------------------------------------------- one analysis per client key


def test_ten_concurrent_creations_under_one_key_make_one_analysis(store: Store) -> None:
    barrier, ids, errors = threading.Barrier(10), [], []

    def create() -> None:
        try:
            barrier.wait()
            ids.append(store.create_analysis(**fields(kind="flagger", external_key="ns/app/abc")).id)
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(ids) == 10 and len(set(ids)) == 1
    with store.session() as session:
        rows = session.scalars(select(AnalysisRecord.id).where(AnalysisRecord.external_key == "ns/app/abc"))
        assert list(rows) == ids[:1]
    other = store.create_analysis(**fields(kind="native", external_key="ns/app/abc"))  # another kind: its own
    assert other.id != ids[0]


# ---------------------------------------------------------------- honest health


def test_check_writable_says_when_writes_fail(store: Store, database_url: str) -> None:
    assert store.check_writable() is None
    if not store.is_sqlite:
        with store.engine.begin() as connection:
            database = connection.execute(text("SELECT current_database()")).scalar_one()
            connection.execute(text(f'ALTER DATABASE "{database}" SET default_transaction_read_only = on'))
        store.engine.dispose()
        reason = store.check_writable()
        assert reason is not None and "read-only transaction" in reason
        return
    path = database_url.removeprefix("sqlite:///")
    read_only = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    try:
        reason = read_only.check_writable()
        assert reason is not None and "readonly database" in reason
    finally:
        read_only.close()
    full = Store(database_url)
    with full.engine.connect() as connection:
        pages = connection.execute(text("PRAGMA page_count")).scalar_one()
    full.engine.dispose()
    event.listen(full.engine, "connect", lambda c, _r: c.execute(f"PRAGMA max_page_count = {pages + 2}"))
    try:
        reason = full.check_writable()
        assert reason is not None and ("full" in reason), reason
    finally:
        full.close()


def test_busy_errors_are_recognised(store: Store, database_url: str) -> None:
    if store.is_sqlite:
        holder = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        holder.execute("BEGIN IMMEDIATE")
        waiting = Store(database_url, busy_timeout_s=0.2)
        try:
            with pytest.raises(sa.exc.OperationalError) as caught:
                waiting.create_config("blocked", CONFIG_BODY)
        finally:
            holder.rollback()
            holder.close()
            waiting.close()
    else:
        holder_engine = sa.create_engine(database_url)
        with holder_engine.connect() as locking, store.engine.connect() as blocked:
            locking.execute(text("SELECT * FROM heartbeat WHERE id = 1 FOR UPDATE"))
            blocked.execute(text("SET lock_timeout = '200ms'"))
            with pytest.raises(sa.exc.OperationalError) as caught:
                blocked.execute(text("UPDATE heartbeat SET ts = 1 WHERE id = 1"))
            locking.rollback()
        holder_engine.dispose()
    assert is_busy_error(caught.value), caught.value
    with pytest.raises(sa.exc.DBAPIError) as other, store.engine.connect() as connection:
        connection.execute(text("SELECT * FROM no_such_table"))
    assert not is_busy_error(other.value)
    assert not is_busy_error(ValueError("busy"))


# ---------------------------------------------------------------- interrupted deliveries


def test_stale_sending_notifications_are_released(store: Store) -> None:
    stale = store.add_notification("analysis", "slack", {"text": "interrupted"})
    fresh = store.add_notification("analysis", "slack", {"text": "being sent"})
    with store.session() as session:
        for record, age in ((stale, 120.0), (fresh, 1.0)):
            row = session.get(NotificationRecord, record.id)
            assert row is not None
            row.status, row.updated_ts = "sending", time.time() - age
    assert store.pending_notifications() == []
    assert store.release_stale_notifications(60.0) == 1
    assert [n.id for n in store.pending_notifications()] == [stale.id]
    assert store.release_stale_notifications(60.0) == 0
