"""The runner under slow, refusing and failing sources and stores (issue 13, parts 3, 6 and 7).

Every source here is a real HTTP server on a loopback port (``FakePrometheus``: it drips its
answer a byte at a time, refuses with 400, or answers 503 before recovering) or the demo
source; every store is a real SQLite file or a fresh PostgreSQL database. What is checked:

- a slow source fails its analyses with a deadline reason after a bounded number of
  requests, while an analysis on the demo source is judged meanwhile (each source has its
  own worker pool, so a slow one cannot take every scheduler thread);
- a permanent refusal (HTTP 400) fails the analysis at the first request;
- transient errors (503) are retried with backoff and the analysis recovers;
- an error that repeats at every attempt (a store that cannot write) ends the analysis
  failed after the retry limit, and a store that cannot even take the failure is retried
  with backoff (no spinning) until it can;
- cancelling a finished analysis changes nothing and queues no Slack message;
- every judged interval logs one structured line (fixed and sequential mode);
- a credential in the source URL never reaches a stored reason.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from live_server import LiveServer
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from kayenta_py.engine.source import MetricsSource
from kayenta_py.model.spec import AnalysisSpec
from kayenta_py.service.analyses import Service
from kayenta_py.service.runner import AnalysisRunner
from kayenta_py.service.settings import Settings
from kayenta_py.service.store.records import Analysis as AnalysisRecord
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import FAILED, NotificationRecord
from metrics_sources.demo import DemoSource
from metrics_sources.prometheus import PrometheusSource

T = TypeVar("T")

CONFIG = {
    "name": "bounded",
    "thresholds": {"pass": 95, "marginal": 75},
    "metrics": [
        {
            "name": "error-ratio",
            "kind": "errors",
            "query": 'errors{scope="${scope}"}',
            "judge": {"type": "threshold", "aggregate": "mean", "max_increase": "+1000%"},
        }
    ],
}
SEQUENTIAL = {
    "name": "bounded-seq",
    "metrics": [
        {"name": "cpu", "kind": "saturation", "query": "avg(cpu)", "judge": {"type": "sequential-rank"}}
    ],
}
STEP = 10.0


class FakePrometheus(BaseHTTPRequestHandler):
    """A Prometheus range-query endpoint whose behaviour the test chooses (``mode``)."""

    mode: ClassVar[str] = "ok"  # ok | slow | refuse | flaky
    flaky_left: ClassVar[int] = 0  # flaky: 503s still to send
    seen: ClassVar[list[tuple[str, int]]] = []  # (scope, status) of each request
    lock = threading.Lock()
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        params = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
        match = re.search(r'scope="([^"]*)"', params.get("query", ""))
        scope = match.group(1) if match else ""
        with FakePrometheus.lock:
            status = 200
            if self.mode == "refuse":
                status = 400
            elif self.mode == "flaky" and FakePrometheus.flaky_left > 0:
                FakePrometheus.flaky_left -= 1
                status = 503
            FakePrometheus.seen.append((scope, status))
        if status == 400:
            self._send(400, {"status": "error", "errorType": "bad_data", "error": "parse error at char 7"})
        elif status == 503:
            self._send(503, {"status": "error", "errorType": "unavailable", "error": "overloaded"})
        else:
            start, end, step = float(params["start"]), float(params["end"]), float(params["step"])
            values = [[start + i * step, "0.01"] for i in range(int((end - start) // step) + 1)]
            body = {
                "status": "success",
                "data": {"resultType": "matrix", "result": [{"metric": {"scope": scope}, "values": values}]},
            }
            self._send(200, body, drip=self.mode == "slow")

    def _send(self, status: int, document: dict[str, Any], *, drip: bool = False) -> None:
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        try:
            if not drip:
                self.wfile.write(payload)
                return
            for byte in payload:  # one byte every 2 s: a per-read timeout never fires
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(2.0)
        except OSError:  # the client gave up
            pass


@pytest.fixture
def fake() -> Iterator[str]:
    FakePrometheus.mode, FakePrometheus.flaky_left, FakePrometheus.seen = "ok", 0, []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakePrometheus)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def wait_until(check: Callable[[], T | None], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@contextmanager
def service_with(
    tmp_path: Path,
    database_url: str,
    prometheus: PrometheusSource | None = None,
    *,
    store: Store | None = None,
    **runner: Any,
) -> Iterator[Service]:
    """A service whose runner has the bounds under test (the test's Prometheus and the demo source)."""
    settings = Settings(
        database_url=database_url,
        data_dir=tmp_path,
        prometheus_url="http://127.0.0.1:9",
        default_source="demo",
    )
    service = Service(settings)
    if store is not None:
        service.store.close()
        service.store = store
    own: dict[str, MetricsSource] = {"demo": DemoSource()}
    if prometheus is not None:
        own["prometheus"] = prometheus
    service.runner = AnalysisRunner(
        service.store, own.__getitem__, registry=service.registry, metrics=service.runner_metrics, **runner
    )
    service.start()
    try:
        yield service
    finally:
        service.stop()


def start_analysis(
    service: Service,
    canary: str,
    *,
    source: str,
    intervals: int = 2,
    interval: float = 60.0,
    past: bool = True,
    config: dict[str, Any] = CONFIG,
    mode: str = "fixed",
    step: float = STEP,
) -> AnalysisRecord:
    """An analysis whose intervals are all due now (``past``), or fall due from now on."""
    now = time.time()
    start = now - intervals * interval - 5 if past else now
    return service.create_analysis(AnalysisSpec(
        config=config,
        config_name=None,
        baseline_scope=f"{canary}-baseline",
        canary_scope=canary,
        source=source,
        start=start,
        end=start + intervals * interval,
        interval=interval,
        step=step,
        mode=mode,
    ))


def finished(service: Service, analysis_id: str) -> Callable[[], AnalysisRecord | None]:
    def check() -> AnalysisRecord | None:
        record = service.store.get_analysis(analysis_id)
        return record if record is not None and record.complete else None

    return check


def requests_for(scope: str) -> list[int]:
    with FakePrometheus.lock:
        return [status for seen, status in FakePrometheus.seen if seen in (scope, f"{scope}-baseline")]


# ---------------------------------------------------------------- a slow source


def test_slow_source_fails_on_its_deadline_while_other_sources_are_judged(
    tmp_path: Path, database_url: str, fake: str
) -> None:
    FakePrometheus.mode = "slow"
    slow = PrometheusSource(fake.replace("://", "://reader:hunter2pw@"), timeout=5, deadline=1, retries=0)
    with service_with(
        tmp_path, database_url, slow, retry_limit=2, retry_backoff=0.2, source_workers=2
    ) as service:
        # More slow analyses than the scheduler's 10 threads: without a pool per source they take all.
        stuck = [start_analysis(service, f"slow-{i}", source="prometheus").id for i in range(12)]
        demo = start_analysis(
            service, "demo-canary", source="demo", intervals=3, interval=2.0, past=False, step=1
        )
        done = wait_until(finished(service, demo.id), 60, "the demo analysis")
        still_running = [a for a in stuck if finished(service, a)() is None]
        failed = [wait_until(finished(service, a), 120, f"slow analysis {a}") for a in stuck]
    assert done.status == "completed" and len(done.intervals) == 3, done.reason
    assert still_running, "every slow analysis ended before the demo one: the test shows nothing"
    for record in failed:
        assert record.status == FAILED
        assert "failed 2 times at interval 1" in (record.reason or ""), record.reason
        assert "no complete answer within the deadline of 1 s" in (record.reason or ""), record.reason
        assert "hunter2pw" not in (record.reason or "") + (record.error or "")
        # bounded: 2 attempts of at most 2 requests (baseline, canary) each
        assert 1 <= len(requests_for(record.canary_scope)) <= 4


# ---------------------------------------------------------------- errors: permanent, transient, internal


def test_permanent_refusal_fails_at_the_first_request(tmp_path: Path, database_url: str, fake: str) -> None:
    FakePrometheus.mode = "refuse"
    source = PrometheusSource(fake, timeout=5, retries=3, backoff=0.1)
    with service_with(tmp_path, database_url, source, retry_limit=3, retry_backoff=0.2) as service:
        created = start_analysis(service, "refused", source="prometheus")
        record = wait_until(finished(service, created.id), 30, "the refused analysis")
        time.sleep(1.0)  # a retry would come within this
        statuses = requests_for("refused")
    assert record.status == FAILED, record.reason
    assert "HTTP 400: bad_data: parse error at char 7" in (record.reason or "")
    assert "times" not in (record.reason or "")  # not retried
    assert 1 <= len(statuses) <= 2 and set(statuses) == {400}  # baseline and canary run concurrently


def test_transient_errors_are_retried_and_the_analysis_recovers(
    tmp_path: Path, database_url: str, fake: str
) -> None:
    FakePrometheus.mode, FakePrometheus.flaky_left = "flaky", 2
    source = PrometheusSource(fake, timeout=5, retries=0)
    with service_with(tmp_path, database_url, source, retry_limit=5, retry_backoff=0.2) as service:
        created = start_analysis(service, "flaky", source="prometheus")
        record = wait_until(finished(service, created.id), 30, "the flaky analysis")
    assert record.status == "completed" and record.verdict == "pass", record.reason
    assert len(record.intervals) == 2
    statuses = requests_for("flaky")
    assert statuses.count(503) == 2 and statuses.count(200) == 4  # 2 intervals x 2 sides


class UnwritableStore(Store):
    """A real store whose interval writes fail as on a full disk; its failure writes too while ``full``."""

    def __init__(self, url: str, interval_error: Exception | None = None) -> None:
        super().__init__(url)
        self.interval_writes = 0
        self.finish_writes = 0
        self.full = False
        self.interval_error = interval_error or RuntimeError("a bug: database or disk is full, it says")

    def record_interval(self, *args: Any, **kwargs: Any) -> bool:
        self.interval_writes += 1
        raise self.interval_error

    def finish_analysis(self, *args: Any, **kwargs: Any) -> AnalysisRecord | None:
        self.finish_writes += 1
        if self.full:
            raise OperationalError("UPDATE analyses ...", {}, Exception("database or disk is full"))
        return super().finish_analysis(*args, **kwargs)


def test_repeated_internal_error_fails_after_the_limit(tmp_path: Path, database_url: str) -> None:
    store = UnwritableStore(database_url)
    with service_with(tmp_path, database_url, store=store, retry_limit=3, retry_backoff=0.1) as service:
        created = start_analysis(service, "canary", source="demo")
        record = wait_until(finished(service, created.id), 30, "the failed analysis")
        time.sleep(0.5)
    assert record.status == FAILED
    assert "internal error failed 3 times at interval 1" in (record.reason or ""), record.reason
    assert "database or disk is full" in (record.reason or "")
    assert store.interval_writes == 3


def test_a_full_disk_is_waited_for_by_time_not_by_count(tmp_path: Path, database_url: str) -> None:
    full = sqlite3.OperationalError("database or disk is full")
    store = UnwritableStore(database_url, OperationalError("INSERT INTO intervals ...", {}, full))
    with service_with(
        tmp_path,
        database_url,
        store=store,
        retry_limit=2,
        retry_backoff=0.1,
        retry_max_delay=0.2,
        retry_max_seconds=2.0,
    ) as service:
        created = start_analysis(service, "canary", source="demo")
        record = wait_until(finished(service, created.id), 30, "the failed analysis")
    assert record.status == FAILED
    assert "database failed" in (record.reason or "") and "disk is full" in (record.reason or ""), (
        record.reason
    )
    assert store.interval_writes > 2  # the count limit (2) did not apply: the store was waited for


def test_a_failure_the_store_cannot_take_is_retried_with_backoff(tmp_path: Path, database_url: str) -> None:
    store = UnwritableStore(database_url)
    store.full = True
    with service_with(
        tmp_path, database_url, store=store, retry_limit=1, retry_backoff=0.2, retry_max_delay=0.4
    ) as service:
        created = start_analysis(service, "canary", source="demo")
        time.sleep(2.0)
        tries = store.finish_writes
        store.full = False
        record = wait_until(finished(service, created.id), 30, "the failure to be stored")
    assert 2 <= tries <= 10  # backed off (0.2 s, then 0.4 s), not a spin
    assert record.status == FAILED and "database or disk is full" in (record.reason or "")


# ---------------------------------------------------------------- cancel, log line


class Webhook(BaseHTTPRequestHandler):
    posts: ClassVar[int] = 0

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Webhook.posts += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")


def test_cancelling_a_finished_analysis_changes_nothing_and_sends_nothing(
    tmp_path: Path, database_url: str
) -> None:
    webhook = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    threading.Thread(target=webhook.serve_forever, daemon=True).start()
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        slack_webhook_url=f"http://127.0.0.1:{webhook.server_address[1]}/services/T0/B0/x",
        slack_delivery_interval=0.5,
    )
    try:
        with LiveServer(settings) as server, httpx.Client(base_url=server.url, timeout=30) as http:
            created = start_analysis(server.service, "canary", source="demo")
            wait_until(finished(server.service, created.id), 30, "the analysis")

            def queued() -> bool:  # the message is queued just after the final verdict (issue 15)
                with server.service.store.session() as session:
                    return bool(list(session.scalars(select(NotificationRecord))))

            wait_until(queued, 10, "the finished analysis' message")
            before = http.get(f"/api/v1/analyses/{created.id}").json()
            with server.service.store.session() as session:
                rows = len(list(session.scalars(select(NotificationRecord))))
            answers = [http.post(f"/api/v1/analyses/{created.id}/cancel") for _ in range(2)]
            after = http.get(f"/api/v1/analyses/{created.id}").json()
            with server.service.store.session() as session:
                rows_after = len(list(session.scalars(select(NotificationRecord))))
    finally:
        webhook.shutdown()
        webhook.server_close()
    assert rows == 1
    assert all(a.status_code < 500 for a in answers), [a.text for a in answers]
    assert after == before and after["status"] == "completed"
    assert rows_after == rows


@pytest.mark.parametrize("mode", ["fixed", "sequential"])
def test_each_judged_interval_logs_one_structured_line(
    tmp_path: Path, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="kayenta_py.service.runner")
    config = CONFIG if mode == "fixed" else SEQUENTIAL
    with service_with(tmp_path, f"sqlite:///{tmp_path}/k.db") as service:
        created = start_analysis(
            service, "canary", source="demo", intervals=3, config=config, mode=mode, step=1
        )
        record = wait_until(finished(service, created.id), 30, "the analysis")
    lines = [
        r.getMessage() for r in caplog.records if f"interval judged analysis={created.id} " in r.getMessage()
    ]
    assert len(lines) == len(record.intervals) >= 1, lines
    pattern = re.compile(
        rf"interval judged analysis={created.id} index=(\d+)/3 mode={mode} verdict=\w+ "
        r"score=(n/a|[\d.]+) metrics=\S+:(Pass|High|Low|Nodata|NodataFailMetric|Error) seconds=[\d.]+$"
    )
    indices = []
    for line in lines:
        match = pattern.match(line)
        assert match, line
        indices.append(int(match.group(1)))
    assert indices == list(range(1, len(record.intervals) + 1))
