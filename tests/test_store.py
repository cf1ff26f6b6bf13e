"""The store: migrations, versioned configs, analyses, exactly-once intervals, verdicts, notifications.

Every test that touches a database runs on both a fresh SQLite file and a fresh
database of the machine's real PostgreSQL (the ``database_url`` fixture).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select, text

import kayenta_py
from kayenta_py import CanaryResult, MetricSet, MetricSetPair
from kayenta_py.model.errors import StoreError
from kayenta_py.model.pairs_codec import pairs_from_json, pairs_to_json
from kayenta_py.service.store.migrate import alembic_config
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import CANCELLED, COMPLETED, FAILED, RUNNING, Base, NotificationRecord

CONFIG_BODY: dict[str, Any] = {
    "name": "store-test",
    "groups": {"latency": 70, "errors": 30},
    "metrics": [
        {"name": "latency", "kind": "latency"},
        {"name": "errors", "kind": "errors", "critical": False},
    ],
}
CONFIG = kayenta_py.load_config(CONFIG_BODY)
TABLES = {"canary_configs", "canary_config_versions", "analyses", "intervals", "verdicts", "notifications"}




def make_pairs(shift: float = 1.0, seed: int = 7, *, with_nan: bool = True) -> list[MetricSetPair]:
    """Latency and error pairs with timestamps; a few NaNs (missing points) when ``with_nan``."""
    rng = np.random.default_rng(seed)
    stamps = np.arange(40, dtype=np.float64) * 10.0 + 1_700_000_000.0
    latency_base = rng.lognormal(0.0, 0.1, 40)
    latency_canary = rng.lognormal(0.0, 0.1, 40) * shift
    errors_base = rng.gamma(4.0, 0.001, 40)
    errors_canary = rng.gamma(4.0, 0.001, 40)
    if with_nan:
        latency_base[[3, 17]] = math.nan
        errors_canary[5] = math.nan
    tags = {"region": "eu-west-1"}
    return [
        MetricSetPair(
            "latency",
            MetricSet("latency", latency_base, tags, stamps),
            MetricSet("latency", latency_canary, tags, stamps),
            tags,
        ),
        # one side without timestamps, the other with
        MetricSetPair(
            "errors", MetricSet("errors", errors_base, {}), MetricSet("errors", errors_canary, {}, stamps), {}
        ),
    ]


def judged(shift: float = 1.0, seed: int = 7) -> tuple[CanaryResult, list[MetricSetPair]]:
    pairs = make_pairs(shift, seed)
    return kayenta_py.judge_pairs(CONFIG, pairs), pairs


def analysis_fields(**overrides: Any) -> dict[str, Any]:
    """The columns of a 3-interval analysis (start 10 minutes ago, an interval every 3 minutes)."""
    fields: dict[str, Any] = {
        "config_name": "checkout",
        "config_version": 1,
        "config_body": CONFIG_BODY,
        "baseline_scope": "baseline",
        "canary_scope": "canary",
        "source": "demo",
        "start_ts": time.time() - 600.0,
        "lifetime_s": 540.0,
        "interval_s": 180.0,
        "step_s": 10.0,
        "thresholds": {"pass": 95.0, "marginal": 75.0},
        "intervals_total": 3,
    }
    fields.update(overrides)
    return fields


def same_values(left: np.ndarray[Any, Any] | None, right: np.ndarray[Any, Any] | None) -> bool:
    if left is None or right is None:
        return left is None and right is None
    return left.shape == right.shape and bool(np.array_equal(left, right, equal_nan=True))


# ---------------------------------------------------------------- schema


def test_migrations_create_the_schema_and_are_idempotent(database_url: str) -> None:
    store = Store(database_url)
    try:
        store.migrate()
        store.migrate()  # running again is a no-op
        tables = set(inspect(store.engine).get_table_names())
        assert tables >= TABLES | {"alembic_version"}
        head = ScriptDirectory.from_config(alembic_config(store.engine)).get_current_head()
        with store.engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            assert versions == [head]
            # the migrations build exactly the schema the models describe
            assert compare_metadata(MigrationContext.configure(connection), Base.metadata) == []
        columns = {c["name"] for c in inspect(store.engine).get_columns("intervals")}
        assert {"analysis_id", "index", "pairs", "result", "score", "verdict"} <= columns
        assert store.ping()
    finally:
        store.close()
    # a second process (a new engine) starting on the migrated database migrates again without harm
    again = Store(database_url)
    try:
        again.migrate()
        assert set(inspect(again.engine).get_table_names()) >= TABLES
    finally:
        again.close()


def test_sqlite_file_is_in_wal_mode_under_its_data_directory(tmp_path: Path) -> None:
    path = tmp_path / "data" / "nested" / "kayenta.db"  # the directory does not exist yet
    store = Store(f"sqlite:///{path}")
    try:
        store.migrate()
        assert path.is_file()
        with store.engine.connect() as connection:
            assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1
    finally:
        store.close()
    # WAL is a property of the file: a plain connection sees it too
    with sqlite3.connect(path) as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_ping_is_false_when_the_database_is_unreachable() -> None:
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    try:
        assert store.ping() is False
    finally:
        store.close()


def test_repr_hides_the_password() -> None:
    store = Store("postgresql+psycopg://kayenta:s3cret-Passw0rd@db.example:5432/kayenta")
    try:
        shown = repr(store)
        assert "s3cret-Passw0rd" not in shown
        assert "***" in shown
        assert "db.example" in shown and "kayenta" in shown
        assert "s3cret-Passw0rd" not in str(store.engine.url)
    finally:
        store.close()


# ---------------------------------------------------------------- configs


def test_config_versions_and_history(store: Store) -> None:
    first = store.create_config("checkout", CONFIG_BODY)
    assert (first.name, first.version) == ("checkout", 1)
    assert first.body == CONFIG_BODY

    changed = {**CONFIG_BODY, "description": "second version"}
    second = store.update_config("checkout", changed)
    assert (second.name, second.version) == ("checkout", 2)

    latest = store.get_config("checkout")
    assert latest is not None and latest.version == 2 and latest.body == changed
    old = store.get_config("checkout", 1)
    assert old is not None and old.version == 1 and old.body == CONFIG_BODY
    assert store.get_config("checkout", 3) is None
    assert store.get_config("nope") is None
    assert [r.version for r in store.config_history("checkout")] == [1, 2]
    assert [r.name for r in store.config_history("checkout")] == ["checkout", "checkout"]
    assert store.config_history("nope") == []


def test_deleted_config_keeps_its_history_and_recreation_continues_it(store: Store) -> None:
    store.create_config("checkout", CONFIG_BODY)
    store.update_config("checkout", {**CONFIG_BODY, "description": "v2"})
    store.create_config("other", CONFIG_BODY)
    store.delete_config("checkout")

    assert store.get_config("checkout") is None
    assert [r.version for r in store.config_history("checkout")] == [1, 2]
    kept = store.get_config("checkout", 2)  # analyses that used it can still read it
    assert kept is not None and kept.body["description"] == "v2"
    assert [r.name for r in store.list_configs()] == ["other"]
    with pytest.raises(StoreError):
        store.update_config("checkout", CONFIG_BODY)
    with pytest.raises(StoreError):
        store.delete_config("checkout")

    again = store.create_config("checkout", {**CONFIG_BODY, "description": "v3"})
    assert again.version == 3
    assert [r.version for r in store.config_history("checkout")] == [1, 2, 3]
    latest = store.get_config("checkout")
    assert latest is not None and latest.version == 3 and latest.body["description"] == "v3"
    assert [(r.name, r.version) for r in store.list_configs()] == [("checkout", 3), ("other", 1)]


def test_duplicate_config_is_refused_and_changes_nothing(store: Store) -> None:
    store.create_config("checkout", CONFIG_BODY)
    with pytest.raises(StoreError, match="already exists"):
        store.create_config("checkout", {**CONFIG_BODY, "description": "dup"})
    assert [r.version for r in store.config_history("checkout")] == [1]
    with pytest.raises(StoreError):
        store.update_config("missing", CONFIG_BODY)
    with pytest.raises(StoreError):
        store.delete_config("missing")


# ---------------------------------------------------------------- analyses


def test_create_and_get_analysis(store: Store) -> None:
    fields = analysis_fields(scope_params={"namespace": "shop"}, lookback_s=120.0)
    created = store.create_analysis(**fields)
    assert created.status == RUNNING and created.verdict == "pending" and not created.complete
    loaded = store.get_analysis(created.id)
    assert loaded is not None
    assert loaded.id == created.id
    assert loaded.config_body == CONFIG_BODY
    assert loaded.scope_params == {"namespace": "shop"}
    assert loaded.kind == "native" and loaded.location == "" and loaded.fail_fast is True
    assert loaded.start_ts == pytest.approx(fields["start_ts"])
    assert loaded.intervals == []
    assert loaded.due_ts(0) == pytest.approx(fields["start_ts"] + 180.0)
    assert loaded.window(1) == pytest.approx((fields["start_ts"] + 240.0, fields["start_ts"] + 360.0))
    assert store.get_analysis("does-not-exist") is None
    explicit = store.create_analysis(**analysis_fields(id="my-own-id"))
    assert explicit.id == "my-own-id"
    assert {a.id for a in store.running_analyses()} == {created.id, "my-own-id"}


def test_list_analyses_filters_paginates_newest_first(store: Store) -> None:
    ids = []
    for number in range(5):
        record = store.create_analysis(**analysis_fields(config_name="a" if number % 2 == 0 else "b"))
        ids.append(record.id)
        time.sleep(0.005)  # distinct creation times
    store.finish_analysis(ids[1], CANCELLED, "fail", None, "stopped")
    store.finish_analysis(ids[3], FAILED, "fail", None, "broken", error="source down")
    newest_first = list(reversed(ids))

    everything, total = store.list_analyses()
    assert total == 5 and [r.id for r in everything] == newest_first

    page, total = store.list_analyses(limit=2, offset=0)
    assert total == 5 and [r.id for r in page] == newest_first[:2]
    page, total = store.list_analyses(limit=2, offset=2)
    assert total == 5 and [r.id for r in page] == newest_first[2:4]
    page, total = store.list_analyses(limit=2, offset=4)
    assert total == 5 and [r.id for r in page] == newest_first[4:]
    page, total = store.list_analyses(limit=2, offset=10)
    assert total == 5 and page == []

    running, total = store.list_analyses(status=RUNNING)
    assert total == 3 and [r.id for r in running] == [ids[4], ids[2], ids[0]]
    cancelled, total = store.list_analyses(status=CANCELLED)
    assert total == 1 and cancelled[0].id == ids[1] and cancelled[0].complete
    failed, _ = store.list_analyses(status=FAILED)
    assert failed[0].error == "source down"
    by_config, total = store.list_analyses(config="b")
    assert total == 2 and [r.id for r in by_config] == [ids[3], ids[1]]
    both, total = store.list_analyses(status=RUNNING, config="a", limit=1)
    assert total == 3 and [r.id for r in both] == [ids[4]]
    assert store.list_analyses(status=COMPLETED) == ([], 0)
    assert {r.id for r in store.running_analyses()} == {ids[0], ids[2], ids[4]}


def test_record_interval_stores_once(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields())
    result, pairs = judged()
    window = analysis.window(0)
    assert store.record_interval(analysis.id, 0, window, analysis.due_ts(0), result, pairs)
    assert store.judged_indices(analysis.id) == {0}
    history = store.verdict_history(analysis.id)

    other, other_pairs = judged(shift=2.0, seed=99)
    assert other.score != result.score
    again = store.record_interval(analysis.id, 0, window, analysis.due_ts(0), other, other_pairs)
    assert again is False
    loaded = store.get_analysis(analysis.id)
    assert loaded is not None
    assert [i.index for i in loaded.intervals] == [0]
    stored = loaded.intervals[0]
    assert stored.score == pytest.approx(result.score)
    assert stored.verdict == result.verdict.value
    expected = json.loads(json.dumps(result.to_dict()))
    assert {key: stored.result[key] for key in expected} == expected
    assert (stored.window_start_ts, stored.window_end_ts) == pytest.approx(window)
    assert stored.due_ts == pytest.approx(analysis.due_ts(0))
    assert loaded.status == RUNNING and loaded.verdict == "pending"
    assert loaded.score == pytest.approx(result.score)
    assert "interval 1 of 3" in loaded.reason
    assert len(store.verdict_history(analysis.id)) == len(history)  # the refused call published nothing


def test_intervals_come_back_in_index_order(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields())
    result, pairs = judged()
    for index in (1, 0):
        assert store.record_interval(analysis.id, index, analysis.window(index), 0.0, result, pairs)
    loaded = store.get_analysis(analysis.id)
    assert loaded is not None and [i.index for i in loaded.intervals] == [0, 1]
    assert store.judged_indices(analysis.id) == {0, 1}
    assert store.record_interval("no-such-analysis", 0, (0.0, 1.0), 1.0, result, pairs) is False


def test_concurrent_record_interval_stores_exactly_one(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields())
    threads_count = 8
    results = [judged(shift=1.0 + n / 10, seed=n) for n in range(threads_count)]
    barrier = threading.Barrier(threads_count)
    outcomes: list[bool] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(number: int) -> None:
        result, pairs = results[number]
        barrier.wait()
        try:
            stored = store.record_interval(analysis.id, 0, analysis.window(0), 1.0, result, pairs)
        except BaseException as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            outcomes.append(stored)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert sorted(outcomes) == [False] * (threads_count - 1) + [True]
    loaded = store.get_analysis(analysis.id)
    assert loaded is not None and len(loaded.intervals) == 1
    winner = loaded.intervals[0]
    assert winner.score in [pytest.approx(r.score) for r, _ in results]
    # create published one verdict, the single stored interval one more
    assert len(store.verdict_history(analysis.id)) == 2


def test_record_interval_after_cancel_changes_nothing(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields())
    finished = store.finish_analysis(analysis.id, CANCELLED, "fail", None, "cancelled by a test")
    assert finished is not None and finished.status == CANCELLED and finished.complete
    result, pairs = judged()
    assert store.record_interval(analysis.id, 0, analysis.window(0), 1.0, result, pairs) is False
    assert (
        store.record_interval(
            analysis.id, 1, analysis.window(1), 1.0, result, pairs, final=(COMPLETED, "pass", 100.0, "done")
        )
        is False
    )
    loaded = store.get_analysis(analysis.id)
    assert loaded is not None
    assert loaded.intervals == []
    assert (loaded.status, loaded.verdict, loaded.reason) == (CANCELLED, "fail", "cancelled by a test")
    assert store.judged_indices(analysis.id) == set()
    assert store.running_analyses() == []
    assert store.finish_analysis("no-such-analysis", CANCELLED, "fail", None, "x") is None


def test_final_interval_finishes_the_analysis_and_every_verdict_is_kept(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields(intervals_total=2))
    first, first_pairs = judged()
    assert store.record_interval(analysis.id, 0, analysis.window(0), 1.0, first, first_pairs)
    last, last_pairs = judged(shift=1.0, seed=8)
    final = (COMPLETED, last.verdict.value, last.score, "final interval 2 of 2")
    assert store.record_interval(analysis.id, 1, analysis.window(1), 2.0, last, last_pairs, final=final)

    loaded = store.get_analysis(analysis.id)
    assert loaded is not None
    assert loaded.status == COMPLETED and loaded.complete
    assert loaded.verdict == last.verdict.value
    assert loaded.score == pytest.approx(last.score)
    assert loaded.reason == "final interval 2 of 2"
    assert loaded.completed_ts is not None and loaded.completed_ts >= loaded.created_ts
    assert store.running_analyses() == []

    history = store.verdict_history(analysis.id)
    assert [(v.verdict, v.complete) for v in history] == [
        ("pending", False),
        ("pending", False),
        (last.verdict.value, True),
    ]
    assert history[1].score == pytest.approx(first.score)
    assert history[2].score == pytest.approx(last.score)
    assert [v.created_ts for v in history] == sorted(v.created_ts for v in history)

    # a finished analysis stays finished: a late cancel publishes nothing and keeps the verdict
    after = store.finish_analysis(analysis.id, CANCELLED, "fail", None, "too late")
    assert after is not None and after.status == COMPLETED and after.verdict == last.verdict.value
    assert len(store.verdict_history(analysis.id)) == 3
    assert store.verdict_history("no-such-analysis") == []


def test_fail_finishes_with_error(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields())
    store.finish_analysis(analysis.id, FAILED, "fail", None, "metrics source failed", error="HTTP 503")
    loaded = store.get_analysis(analysis.id, with_intervals=False)
    assert loaded is not None
    assert (loaded.status, loaded.verdict, loaded.error) == (FAILED, "fail", "HTTP 503")
    assert [v.verdict for v in store.verdict_history(analysis.id)] == ["pending", "fail"]


# ---------------------------------------------------------------- pairs


def test_pairs_round_trip_through_json_with_nan_as_null() -> None:
    pairs = make_pairs()
    document = pairs_to_json(pairs)
    text_form = json.dumps(document, allow_nan=False)  # strict JSON: NaN became null
    assert document[0]["baseline"]["values"][3] is None
    assert document[1]["canary"]["values"][5] is None
    assert document[1]["baseline"]["timestamps"] is None
    back = pairs_from_json(json.loads(text_form))
    assert len(back) == len(pairs)
    for original, restored in zip(pairs, back, strict=True):
        assert restored.name == original.name
        assert dict(restored.tags) == dict(original.tags)
        for side in ("baseline", "canary"):
            before, after = getattr(original, side), getattr(restored, side)
            assert after.name == before.name
            assert dict(after.tags) == dict(before.tags)
            assert after.values.dtype == np.float64
            assert same_values(after.values, before.values)
            assert same_values(after.timestamps, before.timestamps)
    assert pairs_to_json(back) == document


def test_empty_side_round_trips() -> None:
    canary = MetricSet("latency", np.array([1.0, math.nan]))
    pairs = [MetricSetPair("latency", MetricSet.empty("latency"), canary)]
    back = pairs_from_json(pairs_to_json(pairs))
    assert back[0].baseline.values.size == 0
    assert same_values(back[0].canary.values, np.array([1.0, math.nan]))


def test_a_stored_interval_can_be_judged_again(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields())
    results = {}
    for index, shift in enumerate((1.0, 1.6)):
        result, pairs = judged(shift=shift, seed=20 + index)
        results[index] = result
        assert store.record_interval(analysis.id, index, analysis.window(index), 1.0, result, pairs)
    assert results[1].metric("latency").classification.value == "High"

    loaded = store.get_analysis(analysis.id)
    assert loaded is not None
    for interval in loaded.intervals:
        config = kayenta_py.load_config(loaded.config_body)
        again = kayenta_py.judge_pairs(config, pairs_from_json(interval.pairs))
        stored_classes = {m["name"]: m["classification"] for m in interval.result["metrics"]}
        assert {m.name: m.classification.value for m in again.metrics} == stored_classes
        assert again.verdict.value == interval.verdict
        assert again.score == pytest.approx(interval.score)
        assert again.to_dict()["metrics"] == interval.result["metrics"]


# ---------------------------------------------------------------- notifications


def test_notifications_queue_and_delivery_state(store: Store) -> None:
    analysis = store.create_analysis(**analysis_fields())
    first = store.add_notification("analysis", "slack", {"text": "done"}, analysis_id=analysis.id)
    second = store.add_notification("digest", "slack", {"text": "daily"})
    assert [n.id for n in store.pending_notifications()] == [first.id, second.id]
    assert store.pending_notifications()[0].payload == {"text": "done"}
    assert store.pending_notifications()[0].analysis_id == analysis.id
    assert store.pending_notifications()[1].analysis_id is None

    store.mark_notification(first.id, "sent")
    store.mark_notification(second.id, "pending", "HTTP 500")  # a failed attempt, retried later
    pending = store.pending_notifications()
    assert [n.id for n in pending] == [second.id]
    assert (pending[0].attempts, pending[0].last_error) == (1, "HTTP 500")
    store.mark_notification(second.id, "failed", "HTTP 500 again")
    assert store.pending_notifications() == []

    with store.session() as session:
        rows = {r.id: r for r in session.scalars(select(NotificationRecord))}
        states = {i: (r.status, r.attempts, r.last_error) for i, r in rows.items()}
    assert states == {first.id: ("sent", 1, None), second.id: ("failed", 2, "HTTP 500 again")}
    with pytest.raises(StoreError):
        store.mark_notification(10_000, "sent")
