"""The generic webhook notifier against a real local HTTP receiver (http.server on 127.0.0.1).

The receiver records every POST (path, headers, raw body bytes, the status it answered) and
answers from a script (200, 500, 429...). Analyses run for real on the demo source over a past
window (judged at once), in a started service or in ``kayenta-py serve`` processes that are
killed with SIGKILL between the verdict and the delivery. Checks: one post per finished
analysis and webhook; a 500 then a 200 is retried and posted once; the HMAC-SHA256 signature
verifies; URLs with credentials are masked in logs and /readyz; bad settings are named.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import pytest
import yaml
from conftest import fresh_postgres_database
from live_server import LiveServer, settings_for
from sqlalchemy import select

from kayenta_py.examples import EXAMPLES_DIR
from kayenta_py.integrations.webhook import WEBHOOK, encode_body, sign
from kayenta_py.model.errors import ConfigError
from kayenta_py.model.redact import RedactingFilter
from kayenta_py.model.spec import AnalysisSpec
from kayenta_py.service.analyses import Service
from kayenta_py.service.settings import load_settings
from kayenta_py.service.store.records import Analysis
from kayenta_py.service.store.repository import Store
from kayenta_py.service.store.tables import RUNNING, AnalysisRecord, NotificationRecord

PUBLIC = "https://kayenta.example.test"
KEY = "hmac-key-0123456789-SECRET"
TOKEN = "Bearer tok-SECRET-4242abcd"
PASSWORD = "pa55-SECRET-word"
URL = "http://hooks.example.test/x"
CHECKOUT: dict[str, Any] = yaml.safe_load((EXAMPLES_DIR / "checkout.yaml").read_text(encoding="utf-8"))
T = TypeVar("T")
KILLS = 1  # kill -9 points per database (each a start of kayenta-py serve: ~10 s here)


# ---------------------------------------------------------------- the receiver


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: str = "ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    status: int

    @property
    def document(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body)
        return document


class Receiver:
    """Any service's webhook endpoint on 127.0.0.1: records requests, answers from a script."""

    def __init__(self) -> None:
        self.default = Reply()
        self.script: deque[Reply] = deque()
        self.received: list[Received] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    reply = receiver.script.popleft() if receiver.script else receiver.default
                    receiver.received.append(Received(self.path, dict(self.headers), raw, reply.status))
                body = reply.body.encode()
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str = "/hooks/kayenta") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def posts(self, path: str | None = None) -> list[Received]:
        with self.lock:
            return [r for r in self.received if path is None or r.path.startswith(path)]

    def delivered(self, analysis_id: str) -> list[Received]:
        return [p for p in self.posts() if p.status == 200 and p.document["analysis_id"] == analysis_id]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KAYENTA_* variable or HTTP proxy of the caller's environment changes these tests."""
    for name in list(os.environ):
        if name.startswith("KAYENTA_") or name.lower() in ("http_proxy", "https_proxy", "all_proxy"):
            monkeypatch.delenv(name)


# ---------------------------------------------------------------- helpers


def wait_until(probe: Callable[[], T | None], timeout: float, what: str, every: float = 0.05) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(every)


def past_start(minutes_ago: int = 10) -> float:
    return float(math.floor(time.time() / 10) * 10 - 60 * minutes_ago)


@contextlib.contextmanager
def running(tmp_path: Path, **overrides: Any) -> Iterator[Service]:
    """A started service on SQLite in ``tmp_path``, delivering webhook messages every 0.5 s."""
    settings = settings_for(tmp_path, public_url=PUBLIC, webhook_delivery_interval=0.5, **overrides)
    service = Service(settings)
    service.start()
    try:
        yield service
    finally:
        service.stop()


def run_analysis(service: Service, canary: str) -> Analysis:
    """Run an analysis of three intervals over a past window of the demo source; return it once done."""
    start = past_start()
    created = service.create_analysis(AnalysisSpec(
        config=CHECKOUT, config_name=None, baseline_scope="baseline", canary_scope=canary,
        source="demo", start=start, end=start + 540, interval="PT3M", step=10.0,
    ))

    def finished() -> Analysis | None:
        record = service.store.get_analysis(created.id, with_intervals=False)
        return record if record is not None and record.complete else None

    return wait_until(finished, 30, f"analysis {created.id} to finish")


def rows(store: Store) -> list[NotificationRecord]:
    with store.session() as session:
        query = select(NotificationRecord).where(NotificationRecord.kind == WEBHOOK)
        return list(session.scalars(query.order_by(NotificationRecord.id)))


def verify(secret: str, post: Received) -> bool:
    """What a receiver does: recompute the HMAC-SHA256 of the raw body and compare in constant time."""
    expected = "sha256=" + hmac.new(secret.encode(), post.body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, post.headers.get("X-Kayenta-Signature-256", ""))


# ---------------------------------------------------------------- a finished analysis


def test_a_finished_analysis_posts_its_document_once_signed(tmp_path: Path, receiver: Receiver) -> None:
    with running(
        tmp_path,
        webhook_url=receiver.url("/hooks/all"),
        webhook_secret=KEY,
        webhook_header=f"Authorization: {TOKEN}",
        webhooks={
            "passes-only": {"url": receiver.url("/hooks/passes"), "verdicts": ["pass"]},
            "checkout": {"url": receiver.url("/hooks/checkout"), "configs": ["checkout"]},
            "other": {"url": receiver.url("/hooks/other"), "configs": ["payments"]},
        },
    ) as service:
        analysis = run_analysis(service, "canary-regressed")
        wait_until(lambda: len(receiver.posts()) >= 2, 15, "the posts")
        time.sleep(1.5)  # three more delivery runs and an expansion: nothing else may arrive
        last = service.store.last_result(analysis.id)
        stored = rows(service.store)

    assert analysis.verdict == "fail"
    assert sorted(p.path for p in receiver.posts()) == ["/hooks/all", "/hooks/checkout"]
    assert all(p.status == 200 for p in receiver.posts())
    assert sorted((r.channel, r.status, r.attempts) for r in stored) == [
        ("checkout", "sent", 1), ("default", "sent", 1)
    ]
    [post] = receiver.posts("/hooks/all")
    assert verify(KEY, post)
    assert not verify(KEY + "x", post)
    assert post.headers["Authorization"] == TOKEN
    assert post.headers["Content-Type"] == "application/json"
    assert post.headers["X-Kayenta-Event"] == "analysis.finished"
    assert "X-Kayenta-Signature-256" not in receiver.posts("/hooks/checkout")[0].headers  # no key: unsigned
    assert post.body == encode_body(post.document)  # compact, sorted keys: what was signed
    document = post.document
    assert document["event"] == "analysis.finished" and document["schema_version"] == 1
    assert document["analysis_id"] == analysis.id and document["config"] == "checkout"
    assert (document["status"], document["verdict"]) == ("completed", "fail")
    assert document["score"] == analysis.score
    start = datetime.fromtimestamp(analysis.start_ts, UTC)
    assert document["window"] == {
        "start": start.isoformat().replace("+00:00", "Z"),
        "end": datetime.fromtimestamp(analysis.end_ts, UTC).isoformat().replace("+00:00", "Z"),
    }
    assert document["report_url"] == f"{PUBLIC}/api/v1/analyses/{analysis.id}/report"
    assert last is not None
    assert [(m["name"], m["classification"], m["effect_size"]) for m in document["metrics"]] == [
        (m["name"], m["classification"], m["effect_size"]) for m in last["metrics"]
    ]
    assert any(m["classification"] in ("High", "Low") for m in document["metrics"])
    assert document["metrics_omitted"] == 0


def test_a_500_then_a_200_is_retried_and_posted_once(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script.extend([Reply(500, "busy"), Reply(200)])
    with running(tmp_path, webhook_url=receiver.url(), webhook_secret=KEY, webhook_retries=0) as service:
        analysis = run_analysis(service, "canary-regressed")
        store = service.store
        wait_until(lambda: [r for r in rows(store) if r.status == "sent"], 15, "the delivery")
        time.sleep(1.5)
        [row] = rows(store)
    posts = receiver.posts()
    assert len(receiver.delivered(analysis.id)) == 1
    assert [p.status for p in posts] == [500, 200]
    assert posts[0].body == posts[1].body and all(verify(KEY, p) for p in posts)
    assert (row.status, row.attempts, row.last_error) == ("sent", 2, None)


def test_immediate_retries_and_permanent_failures(tmp_path: Path, receiver: Receiver) -> None:
    receiver.script.extend([Reply(503), Reply(429, headers={"Retry-After": "1"}), Reply(200)])
    with running(tmp_path, webhook_url=receiver.url(), webhook_retries=2) as service:
        analysis = run_analysis(service, "canary")
        store = service.store
        [row] = wait_until(lambda: [r for r in rows(store) if r.status == "sent"], 15, "the delivery")
    assert [p.status for p in receiver.posts()] == [503, 429, 200]  # within one attempt
    assert receiver.delivered(analysis.id)
    assert (row.status, row.attempts) == ("sent", 1)

    receiver.default = Reply(404, "no such hook")
    with running(tmp_path / "gone", webhook_url=receiver.url("/gone")) as service:
        analysis = run_analysis(service, "canary")
        [row] = wait_until(lambda: [r for r in rows(service.store) if r.status == "failed"], 15, "failed")
    assert len(receiver.posts("/gone")) == 1  # a 404 is not retried
    assert row.attempts == 1 and row.last_error is not None and "HTTP 404: no such hook" in row.last_error


def test_urls_with_credentials_are_masked_in_logs_errors_and_readyz(
    tmp_path: Path, receiver: Receiver, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver.default = Reply(500, "down")
    port = receiver.server.server_address[1]
    url = f"http://hook-user:{PASSWORD}@127.0.0.1:{port}/hooks/creds?token=tok-SECRET-query"
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's (which logs request paths) included
    # An earlier test in this process may have run the CLI, which quiets urllib3 (kayenta_py/cli/main.py).
    for name in ("urllib3", "urllib3.connectionpool"):
        caplog.set_level(logging.DEBUG, logger=name)
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)
    caplog.handler.addFilter(RedactingFilter())  # as ``kayenta-py serve`` installs on its handlers
    settings = settings_for(
        tmp_path, public_url=PUBLIC, webhook_url=url, webhook_header=f"X-Hook-Token: {TOKEN}",
        webhook_retries=0, webhook_max_attempts=2, webhook_delivery_interval=0.3,
    )
    with LiveServer(settings) as server:
        readyz = httpx.get(f"{server.url}/readyz", timeout=10).json()
        analysis = run_analysis(server.service, "canary")
        store = server.service.store
        [row] = wait_until(lambda: [r for r in rows(store) if r.status == "failed"], 15, "the failure")
    assert readyz.get("notifiers", {}).get("webhook") == [
        f"default: http://hook-user:***@127.0.0.1:{port}/hooks/creds?token=***"
    ]
    posts = receiver.posts("/hooks/creds")
    assert len(posts) == 2 and posts[0].document["analysis_id"] == analysis.id
    assert posts[0].headers["X-Hook-Token"] == TOKEN
    basic = base64.b64encode(f"hook-user:{PASSWORD}".encode()).decode()
    assert posts[0].headers["Authorization"] == f"Basic {basic}"  # the URL's credentials: basic auth
    assert row.last_error is not None and "HTTP 500" in row.last_error
    assert any("not delivered" in r.getMessage() for r in caplog.records)
    assert any("failed for good" in r.getMessage() for r in caplog.records)
    ours = [r for r in caplog.records if r.name.startswith("kayenta_py")]
    urllib3 = [r.getMessage() for r in caplog.records if r.name.startswith("urllib3")]
    assert any("/hooks/creds?token=***" in message for message in urllib3)  # the request line, masked
    for secret in (PASSWORD, "tok-SECRET-query", TOKEN, "tok-SECRET-4242abcd", basic):
        assert secret not in caplog.text and secret not in json.dumps(readyz)
        assert all(secret not in r.getMessage() for r in ours)
        assert secret not in (row.last_error or "") and secret not in json.dumps(row.payload)


def test_the_signature_is_hmac_sha256_of_the_exact_body() -> None:
    body = encode_body({"b": [1, "é"], "a": None})
    assert body == '{"a":null,"b":[1,"é"]}'.encode()
    assert sign("k" * 16, body) == "sha256=" + hmac.new(b"k" * 16, body, hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- settings


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"webhook_url": "ftp://example.test/x"}, "webhook_url: must be an http(s) URL"),
        ({"webhook_secret": KEY}, "webhook_secret: needs webhook_url"),
        ({"webhook_url": URL, "webhook_secret": "short-SECRET"}, "webhook_secret: an HMAC key needs"),
        ({"webhook_url": URL, "webhook_header": "no-colon-SECRET"}, "webhook_header: must be 'Name: v"),
        ({"webhook_url": URL, "webhook_header": "Host: x-SECRET"}, "webhook_header: 'Host' is set by"),
        ({"webhooks": {"default": {"url": URL}}}, "webhooks.default.[key]: 'default' is the webhook"),
        ({"webhooks": {"a b": {"url": URL}}}, "webhooks.a b.[key]: webhook name 'a b'"),
        ({"webhooks": {"a": {"url": URL, "verdicts": ["ok"]}}}, "webhooks.a.verdicts.0: Input should"),
        ({"webhooks": {"a": {"url": URL, "sekret": "x"}}}, "webhooks.a.sekret: unknown setting"),
        ({"webhooks": {"a": {"url": "mailto:SECRET@x"}}}, "webhooks.a.url: must be an http(s) URL"),
        ({"webhook_url": URL, "webhook_timeout": 0}, "webhook_timeout: Input should be greater"),
        ({"webhook_url": URL, "webhook_retries": 11}, "webhook_retries: Input should be less"),
    ],
)
def test_bad_settings_are_named_and_secrets_not_shown(settings: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(**settings)
    message = str(caught.value)
    assert named in message
    assert "SECRET" not in message


def test_serve_refuses_bad_webhook_settings_naming_the_variable(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
    env.update(KAYENTA_DATA_DIR=str(tmp_path), KAYENTA_WEBHOOK_SECRET=KEY)
    done = subprocess.run(
        [*_kayenta_command(), "serve", "--port", str(free_port())],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )
    assert done.returncode != 0
    assert "webhook_secret: needs webhook_url" in done.stderr
    assert "Traceback" not in done.stderr and KEY not in done.stderr + done.stdout


# ---------------------------------------------------------------- kill -9 of kayenta-py serve


def _kayenta_command() -> list[str]:
    script = Path(sys.executable).with_name("kayenta-py")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kayenta_py.cli.main"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServiceProcess:
    """``kayenta-py serve`` as its own process on a free port, posting to one webhook."""

    def __init__(self, database_url: str, hook: str, tmp_path: Path, number: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
        env.update(
            KAYENTA_DATA_DIR=str(tmp_path),
            KAYENTA_DATABASE_URL=database_url,
            KAYENTA_PUBLIC_URL=PUBLIC,
            KAYENTA_WEBHOOK_URL=hook,
            KAYENTA_WEBHOOK_SECRET=KEY,
            KAYENTA_WEBHOOK_DELIVERY_INTERVAL="0.5",
            KAYENTA_WEBHOOK_RETRIES="0",
            KAYENTA_WEBHOOK_MAX_ATTEMPTS="100",
            PYTHONUNBUFFERED="1",
            NO_PROXY="127.0.0.1",
        )
        self.log_path = tmp_path / f"service-{number}.log"
        self._log: IO[bytes] = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*_kayenta_command(), "serve", "--port", str(self.port), "--log-level", "warning"],
            env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            assert self.process.poll() is None, f"kayenta-py serve exited:\n{self.log()}"
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"kayenta-py serve not ready:\n{self.log()}"
            time.sleep(0.1)

    def log(self) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-40:])

    def kill(self) -> None:
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

    def start_analysis(self) -> str:
        start = past_start()
        answer = httpx.post(
            f"{self.url}/api/v1/analyses",
            json={
                "config": CHECKOUT, "baseline_scope": "baseline", "canary_scope": "canary-regressed",
                "source": "demo", "start": datetime.fromtimestamp(start, UTC).isoformat(),
                "end": datetime.fromtimestamp(start + 540, UTC).isoformat(), "interval": "PT3M", "step": 10.0,
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


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'kayenta.db'}"
    else:
        yield from fresh_postgres_database()


def test_kill_9_between_the_verdict_and_the_delivery_loses_nothing(
    receiver: Receiver, tmp_path: Path, database: str
) -> None:
    """SIGKILL right after each verdict's commit (polled every 2 ms) while the receiver refuses, a
    few times; a restarted service with a working receiver then posts each analysis exactly once."""
    store = Store(database)
    started: list[ServiceProcess] = []
    analysis_ids: list[str] = []
    try:
        for number in range(KILLS):
            began = time.monotonic()
            receiver.default = Reply(503, "unavailable")
            service = ServiceProcess(database, receiver.url(), tmp_path, number)
            started.append(service)
            analysis_id = service.start_analysis()
            wait_until(partial(finished_in_db, store, analysis_id), 30, "the verdict", every=0.002)
            service.kill()
            print(f"kill {number}: {time.monotonic() - began:.1f} s")
            analysis_ids.append(analysis_id)
        assert all(not receiver.delivered(a) for a in analysis_ids)
        receiver.default = Reply(200)
        service = ServiceProcess(database, receiver.url(), tmp_path, 9)
        started.append(service)
        began = time.monotonic()
        for analysis_id in analysis_ids:
            wait_until(partial(receiver.delivered, analysis_id), 60, f"the post of {analysis_id}")
        print(f"restart and deliveries: {time.monotonic() - began:.1f} s")
        time.sleep(2.0)  # four more delivery runs and an expansion: nothing more may arrive
        service.stop()
        for analysis_id in analysis_ids:
            [post] = receiver.delivered(analysis_id)
            assert verify(KEY, post) and post.document["verdict"] == "fail"
        expected = sorted((a, "sent") for a in analysis_ids)
        assert sorted((r.analysis_id, r.status) for r in rows(store)) == expected
    finally:
        for service in started:
            service.stop()
        store.close()
