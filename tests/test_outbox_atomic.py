"""The transactional outbox (issue 15, item 3): a finished analysis' messages are never lost or doubled.

A final verdict and its outbox event commit in one transaction; the notifier expands the event
into one message per channel, idempotently; deliveries are claimed once. Store-level tests run
on a fresh SQLite file and a fresh database of the machine's real PostgreSQL (the ``store``
fixture); a failure is injected with a real database trigger. Kill tests run ``kayenta-py
serve`` as a process, a local Slack stand-in answering 503 (so no post can succeed) or a
PostgreSQL lock on ``notifications`` (so the messages cannot be queued), SIGKILL it once the
verdict is stored, start it again with a working Slack, and count the posts: exactly one per
channel for the analysis.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import numpy as np
import pytest
import yaml
from conftest import fresh_postgres_database
from pydantic import SecretStr
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError

import kayenta_py
from kayenta_py import CanaryResult, MetricSet, MetricSetPair
from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.integrations.slack.channels import Channel
from kayenta_py.integrations.slack.notifier import DIGEST, FINISHED, SlackNotifier
from kayenta_py.service.notifiers import OutboxNotifier
from kayenta_py.service.store.outbox import DONE, PENDING
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import (
    COMPLETED,
    FAILED,
    RUNNING,
    AnalysisRecord,
    IntervalRecord,
    NotificationRecord,
    OutboxEventRecord,
)

T = TypeVar("T")
PUBLIC = "https://kayenta.example.test"
CHANNELS = ("default", "releases")
CONFIG_BODY: dict[str, Any] = {
    "name": "outbox-test",
    "metrics": [{"name": "latency", "kind": "latency"}, {"name": "errors", "kind": "errors"}],
}
CHECKOUT: dict[str, Any] = yaml.safe_load((EXAMPLES_DIR / "checkout.yaml").read_text(encoding="utf-8"))


# ---------------------------------------------------------------- a Slack stand-in


class Slack:
    """Slack's incoming webhooks on 127.0.0.1: records every POST, answers ``status`` (200: ok)."""

    def __init__(self) -> None:
        self.status = 200
        self.posts: list[tuple[str, int, str]] = []  # (channel, status answered, body)
        self.lock = threading.Lock()
        slack = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                with slack.lock:
                    status = slack.status
                    slack.posts.append((self.path.split("/")[3], status, body))
                answer = b"ok" if status == 200 else b"unavailable"
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, channel: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/services/T0/{channel}/SECRETxyz"

    def delivered(self, analysis_id: str | None = None) -> Counter[str]:
        """Posts Slack accepted (200), by channel (of one analysis: those naming its id)."""
        with self.lock:
            return Counter(
                channel
                for channel, status, body in self.posts
                if status == 200 and (analysis_id is None or analysis_id in body)
            )

    def attempts(self) -> Counter[str]:
        with self.lock:
            return Counter(channel for channel, _, _ in self.posts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def slack() -> Iterator[Slack]:
    server = Slack()
    try:
        yield server
    finally:
        server.close()


def channels_of(slack: Slack) -> dict[str, Channel]:
    return {name: Channel(name, SecretStr(slack.url(name))) for name in CHANNELS}


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)


# ---------------------------------------------------------------- store-level helpers


def judged(seed: int = 7) -> tuple[CanaryResult, list[MetricSetPair]]:
    rng = np.random.default_rng(seed)
    stamps = np.arange(30, dtype=np.float64) * 10.0 + 1_700_000_000.0
    pairs = [
        MetricSetPair(
            name,
            MetricSet(name, rng.lognormal(0.0, 0.1, 30), {}, stamps),
            MetricSet(name, rng.lognormal(0.0, 0.1, 30), {}, stamps),
            {},
        )
        for name in ("latency", "errors")
    ]
    return kayenta_py.judge_pairs(kayenta_py.load_config(CONFIG_BODY), pairs), pairs


def new_analysis(store: Store, intervals: int = 2) -> Analysis:
    return store.create_analysis(
        config_name="outbox-test",
        config_version=1,
        config_body=CONFIG_BODY,
        baseline_scope="baseline",
        canary_scope="canary",
        source="demo",
        start_ts=time.time() - 600.0,
        lifetime_s=180.0 * intervals,
        interval_s=180.0,
        step_s=10.0,
        thresholds={"pass": 95.0, "marginal": 75.0},
        intervals_total=intervals,
    )


def record(store: Store, analysis: Analysis, index: int, *, final: bool) -> bool:
    result, pairs = judged(seed=index)
    ending = (COMPLETED, result.verdict.value, result.score, "the last interval") if final else None
    return store.record_interval(
        analysis.id, index, analysis.window(index), analysis.due_ts(index), result, pairs, final=ending
    )


def events(store: Store, analysis_id: str) -> list[tuple[str, str, str]]:
    with store.session() as session:
        rows = session.scalars(
            select(OutboxEventRecord)
            .where(OutboxEventRecord.analysis_id == analysis_id)
            .order_by(OutboxEventRecord.consumer)
        )
        return [(r.kind, r.consumer, r.status) for r in rows]


def notification_rows(store: Store) -> list[NotificationRecord]:
    with store.session() as session:
        return list(session.scalars(select(NotificationRecord).order_by(NotificationRecord.id)))


def status_of(store: Store, analysis_id: str) -> str:
    with store.session() as session:
        row = session.get(AnalysisRecord, analysis_id)
        assert row is not None
        return row.status


def fail_inserts_into(store: Store, table: str, when: str = "AFTER") -> Callable[[], None]:
    """Make every insert into ``table`` fail (a real trigger); return what removes the trigger."""
    with store.engine.begin() as connection:
        if store.is_sqlite:
            connection.execute(text(
                f"CREATE TRIGGER injected_failure {when} INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            ))
        else:
            connection.execute(text(
                "CREATE OR REPLACE FUNCTION injected_failure() RETURNS trigger AS $$ "
                "BEGIN RAISE EXCEPTION 'injected failure'; END $$ LANGUAGE plpgsql"
            ))
            connection.execute(text(
                f"CREATE TRIGGER injected_failure {when} INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION injected_failure()"
            ))

    def remove() -> None:
        with store.engine.begin() as connection:
            suffix = "" if store.is_sqlite else f" ON {table}"
            connection.execute(text(f"DROP TRIGGER injected_failure{suffix}"))

    return remove


# ---------------------------------------------------------------- the verdict and its event


def test_a_final_verdict_and_its_outbox_events_commit_together(store: Store) -> None:
    store.add_outbox_consumer("slack")
    store.add_outbox_consumer("webhooks")
    analysis = new_analysis(store)
    assert record(store, analysis, 0, final=False)
    assert events(store, analysis.id) == []  # a pending verdict calls for no message
    assert record(store, analysis, 1, final=True)
    assert status_of(store, analysis.id) == COMPLETED
    assert events(store, analysis.id) == [(FINISHED, "slack", PENDING), (FINISHED, "webhooks", PENDING)]
    # a late cancel or a second finish changes nothing, and queues nothing more
    store.finish_analysis(analysis.id, FAILED, "fail", None, "too late")
    assert len(events(store, analysis.id)) == 2

    failed = new_analysis(store)
    store.finish_analysis(failed.id, FAILED, "fail", None, "metrics source failed", error="HTTP 503")
    assert events(store, failed.id) == [(FINISHED, "slack", PENDING), (FINISHED, "webhooks", PENDING)]

    silent = Store(store.url)  # a store no notifier listens to writes no event
    try:
        other = new_analysis(silent)
        silent.finish_analysis(other.id, FAILED, "fail", None, "stopped")
        assert events(silent, other.id) == []
    finally:
        silent.close()


@pytest.mark.parametrize("table", ["verdicts", "outbox_events"])
def test_a_failure_in_the_verdicts_transaction_stores_neither_verdict_nor_event(
    store: Store, table: str
) -> None:
    store.add_outbox_consumer("slack")
    analysis, cancelled = new_analysis(store), new_analysis(store)
    assert record(store, analysis, 0, final=False)
    remove = fail_inserts_into(store, table)  # after the row went in: the transaction then fails
    try:
        if store.is_sqlite:  # RAISE(ABORT) is a constraint error: record_interval says "not stored"
            assert not record(store, analysis, 1, final=True)
        else:
            with pytest.raises(DBAPIError, match="injected failure"):
                record(store, analysis, 1, final=True)
        with pytest.raises(DBAPIError, match="injected failure"):
            store.finish_analysis(cancelled.id, FAILED, "fail", None, "cancelled")
    finally:
        remove()
    for each in (analysis, cancelled):
        assert status_of(store, each.id) == RUNNING  # the verdict rolled back with its event
        assert events(store, each.id) == []
    assert store.judged_indices(analysis.id) == {0}
    assert [v.complete for v in store.verdict_history(analysis.id)] == [False, False]

    assert record(store, analysis, 1, final=True)  # once the database takes writes again: both
    store.finish_analysis(cancelled.id, FAILED, "fail", None, "cancelled")
    for each in (analysis, cancelled):
        assert events(store, each.id) == [(FINISHED, "slack", PENDING)]


# ---------------------------------------------------------------- expansion and digests


def test_expanding_again_or_concurrently_queues_one_message_per_channel(store: Store, slack: Slack) -> None:
    notifier = SlackNotifier(store, channels_of(slack), base_url=PUBLIC, retries=0)
    outbox = OutboxNotifier("slack", notifier, store)
    analysis = new_analysis(store, intervals=1)
    assert record(store, analysis, 0, final=True)
    finished = store.get_analysis(analysis.id, with_intervals=False)
    assert finished is not None and finished.complete

    # A crash after queueing, before the event was marked done: expanded again, nothing doubles.
    notifier.notify_finished(finished)
    notifier.notify_finished(finished)
    assert outbox.expand_pending() == 1
    assert outbox.expand_pending() == 0
    assert events(store, analysis.id) == [(FINISHED, "slack", DONE)]
    rows = notification_rows(store)
    assert sorted((r.kind, r.channel, r.analysis_id, r.dedupe_key) for r in rows) == [
        (FINISHED, channel, analysis.id, analysis.id) for channel in CHANNELS
    ]

    # Replicas expanding the same events at once (their runners' hooks and periodic jobs).
    replicas = [
        OutboxNotifier("slack", SlackNotifier(store, channels_of(slack), base_url=PUBLIC), store)
        for _ in range(4)
    ]
    others = [new_analysis(store, intervals=1) for _ in range(3)]
    for other in others:
        assert record(store, other, 0, final=True)
    barrier = threading.Barrier(len(replicas))
    errors: list[BaseException] = []

    def expand(replica: OutboxNotifier) -> None:
        try:
            barrier.wait()
            replica.expand_pending()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=expand, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    queued = Counter((r.analysis_id, r.channel) for r in notification_rows(store))
    assert queued == Counter({(a.id, c): 1 for a in [analysis, *others] for c in CHANNELS})
    assert all(e[2] == DONE for other in others for e in events(store, other.id))


def test_replicas_queue_one_digest_per_channel_and_minute(store: Store, slack: Slack) -> None:
    channels = {name: Channel(name, SecretStr(slack.url(name)), "0 9 * * *") for name in CHANNELS}
    replicas = [SlackNotifier(store, channels, base_url=PUBLIC, retries=0) for _ in range(4)]
    minute = math.floor(time.time() / 60) * 60
    barrier = threading.Barrier(len(replicas))
    ids: list[int] = []
    errors: list[BaseException] = []

    def fire(number: int, replica: SlackNotifier) -> None:
        try:
            barrier.wait()
            for channel in CHANNELS:  # the cron jobs of both channels, a little apart on each replica
                ids.append(replica.enqueue_digest(channel, now=minute + 1.0 + number / 10).id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=fire, args=(n, r)) for n, r in enumerate(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    rows = [r for r in notification_rows(store) if r.kind == DIGEST]
    assert sorted(r.channel for r in rows) == sorted(CHANNELS)
    assert set(ids) == {r.id for r in rows}  # every replica got the row already queued
    delivered = sum(replica.deliver_pending() for replica in replicas)
    assert delivered == 2 and slack.delivered() == Counter(dict.fromkeys(CHANNELS, 1))
    # the next minute is another digest
    later = replicas[0].enqueue_digest("default", now=minute + 61.0)
    assert later.id not in ids and later.payload["window"]["since"] == pytest.approx(minute + 1.0, abs=1)


def test_replicas_delivering_at_once_post_each_message_once(store: Store, slack: Slack) -> None:
    replicas = [SlackNotifier(store, channels_of(slack), base_url=PUBLIC, retries=0) for _ in range(4)]
    outbox = OutboxNotifier("slack", replicas[0], store)
    finished = [new_analysis(store, intervals=1) for _ in range(5)]
    for analysis in finished:
        assert record(store, analysis, 0, final=True)
    assert outbox.expand_pending() == len(finished)
    barrier = threading.Barrier(len(replicas))
    counts: list[int] = []

    def deliver(replica: SlackNotifier) -> None:
        barrier.wait()
        counts.append(replica.deliver_pending())

    threads = [threading.Thread(target=deliver, args=(r,)) for r in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sum(counts) == len(finished) * len(CHANNELS)
    for analysis in finished:
        assert slack.delivered(analysis.id) == Counter(dict.fromkeys(CHANNELS, 1))
    assert {r.status for r in notification_rows(store)} == {"sent"}
    assert sum(replica.deliver_pending() for replica in replicas) == 0  # nothing is left to post


# ---------------------------------------------------------------- kill -9: the real service


def _kayenta_command() -> list[str]:
    script = Path(sys.executable).with_name("kayenta-py")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kayenta_py.cli.main"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """``kayenta-py serve`` as its own process, on a free port; its output in a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path = env, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log: IO[bytes] = log_path.open("ab")
        self.process = subprocess.Popen(
            [*_kayenta_command(), "serve", "--port", str(self.port), "--log-level", "warning"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, f"kayenta-py serve exited:\n{self.log()}"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"kayenta-py serve not ready:\n{self.log()}"
            time.sleep(0.1)

    def log(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no scheduler shutdown, no database close."""
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        self._log.close()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()


@pytest.fixture
def serve(tmp_path: Path, slack: Slack) -> Iterator[Callable[[str], ServiceProcess]]:
    """Start ``kayenta-py serve`` on a database URL, posting to ``slack`` (two channels)."""
    started: list[ServiceProcess] = []

    def start(database_url: str) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
        env.update(
            KAYENTA_DATA_DIR=str(tmp_path),
            KAYENTA_DATABASE_URL=database_url,
            KAYENTA_PUBLIC_URL=PUBLIC,
            KAYENTA_SLACK_WEBHOOK_URL=slack.url("default"),
            KAYENTA_SLACK_CHANNELS=json.dumps({"releases": {"webhook_url": slack.url("releases")}}),
            KAYENTA_SLACK_DELIVERY_INTERVAL="0.5",
            KAYENTA_SLACK_RETRIES="0",
            KAYENTA_SLACK_MAX_ATTEMPTS="100",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1",
        )
        service = ServiceProcess(env, tmp_path / f"service-{len(started)}.log")
        started.append(service)
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


def start_analysis(service: ServiceProcess) -> str:
    """POST an analysis over a past window of the demo source (judged at once); return its id."""
    start = math.floor(time.time() / 10) * 10 - 600.0
    answer = httpx.post(
        f"{service.url}/api/v1/analyses",
        json={
            "config": CHECKOUT,
            "baseline_scope": "baseline",
            "canary_scope": "canary-regressed",
            "source": "demo",
            "start": datetime.fromtimestamp(start, UTC).isoformat(),
            "end": datetime.fromtimestamp(start + 540, UTC).isoformat(),
            "interval": "PT3M",
            "step": 10.0,
        },
        timeout=30,
    )
    assert answer.status_code == 201, answer.text
    analysis_id: str = answer.json()["id"]
    return analysis_id


def finished_in_db(store: Store, analysis_id: str) -> bool:
    with store.session() as session:
        status = session.scalar(select(AnalysisRecord.status).where(AnalysisRecord.id == analysis_id))
    return status is not None and status != RUNNING


def posted_everywhere(slack: Slack, analysis_id: str) -> bool:
    return len(slack.delivered(analysis_id)) == len(CHANNELS)


def assert_posted_once_after_restart(
    serve: Callable[[str], ServiceProcess], url: str, slack: Slack, store: Store, analysis_ids: list[str]
) -> None:
    """Start the service again with a working Slack: each analysis is posted once per channel."""
    slack.status = 200
    service = serve(url)
    try:
        for analysis_id in analysis_ids:
            wait_until(partial(posted_everywhere, slack, analysis_id), 30, "the posts")
        time.sleep(2.0)  # four more delivery runs and an expansion: nothing more may arrive
    finally:
        service.stop()
    for analysis_id in analysis_ids:
        assert slack.delivered(analysis_id) == Counter(dict.fromkeys(CHANNELS, 1)), analysis_id
        assert events(store, analysis_id) == [(FINISHED, "slack", DONE)]
    rows = [r for r in notification_rows(store) if r.analysis_id in analysis_ids]
    assert sorted((r.analysis_id, r.channel, r.status) for r in rows) == sorted(
        (a, c, "sent") for a in analysis_ids for c in CHANNELS
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kayenta.db'}"
    else:
        yield from fresh_postgres_database()


def test_kill_9_while_slack_refuses_then_restart_posts_once(
    serve: Callable[[str], ServiceProcess], slack: Slack, database: str
) -> None:
    slack.status = 503  # no post can succeed: the message waits in the outbox
    service = serve(database)
    store = Store(database)
    try:
        analysis_id = start_analysis(service)
        wait_until(lambda: finished_in_db(store, analysis_id), 30, "the verdict")
        wait_until(lambda: all(slack.attempts()[c] >= 1 for c in CHANNELS), 15, "refused posts")
        service.kill()
        assert slack.delivered() == Counter()
        assert len(notification_rows(store)) == len(CHANNELS)
        assert_posted_once_after_restart(serve, database, slack, store, [analysis_id])
    finally:
        store.close()


def test_kill_9_between_verdict_and_queueing_then_restart_posts_once(
    serve: Callable[[str], ServiceProcess], slack: Slack
) -> None:
    """PostgreSQL: a lock on ``notifications`` holds the expansion, not the verdict; kill -9 there."""
    with contextlib.contextmanager(fresh_postgres_database)() as url:
        service = serve(url)
        store = Store(url)
        locker = create_engine(url).connect()
        try:
            transaction = locker.begin()
            locker.execute(text("LOCK TABLE notifications IN EXCLUSIVE MODE"))  # reads go on
            analysis_id = start_analysis(service)
            wait_until(lambda: finished_in_db(store, analysis_id), 30, "the verdict")
            time.sleep(1.0)  # the service is now waiting for the lock to queue the messages
            assert events(store, analysis_id) == [(FINISHED, "slack", PENDING)]
            assert notification_rows(store) == []
            service.kill()  # after the verdict's commit, before its messages were queued
            transaction.rollback()
        finally:
            locker.close()
            locker.engine.dispose()
        with store.session() as session:
            assert session.scalar(select(IntervalRecord.id).limit(1)) is not None
        try:
            assert_posted_once_after_restart(serve, url, slack, store, [analysis_id])
        finally:
            store.close()


def test_kill_9_right_after_the_verdict_commit_repeatedly(
    serve: Callable[[str], ServiceProcess], slack: Slack, tmp_path: Path
) -> None:
    """SQLite: poll for the verdict and SIGKILL at once, a few times; every message still goes once."""
    url = f"sqlite:///{tmp_path / 'kayenta.db'}"
    store = Store(url)
    analysis_ids: list[str] = []
    seen: list[int] = []  # messages queued when the kill landed (0: between verdict and queueing)
    try:
        for _ in range(3):
            slack.status = 503
            service = serve(url)
            analysis_id = start_analysis(service)
            wait_until(partial(finished_in_db, store, analysis_id), 30, "the verdict", every=0.002)
            service.kill()
            analysis_ids.append(analysis_id)
            seen.append(sum(r.analysis_id == analysis_id for r in notification_rows(store)))
            assert events(store, analysis_id) in (
                [(FINISHED, "slack", PENDING)],
                [(FINISHED, "slack", DONE)],
            )
        print(f"messages queued at each kill: {seen}")
        assert_posted_once_after_restart(serve, url, slack, store, analysis_ids)
    finally:
        store.close()

