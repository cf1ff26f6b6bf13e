"""No secret leaves a live service: answers, log, Slack messages and database rows are grepped.

A real ``kayenta-py --debug serve`` process (the most verbose logging) runs with
``KAYENTA_PROMETHEUS_URL`` carrying a user and password, API tokens, a database URL with a
password (PostgreSQL with trust authentication ignores it) and a Slack webhook pointing at
a local fake Slack. The "Prometheus" is a local HTTP server that rejects every query and
echoes the request's path and ``Authorization`` header into its error (as some proxies do),
so analyses fail with that text in hand; the fake Slack refuses the first post with its
path in the error body, then accepts. Analyses fail, one is cancelled, every read route is
fetched; then every answer body, the whole process log, every Slack body and every row of
the database are searched for the password (as written and as HTTP basic auth), the tokens
and the webhook path. Unit tests of the redaction: ``tests/test_redact.py``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import fresh_postgres_database
from live_app import live_canary_config
from prometheus_harness import free_port
from sqlalchemy import create_engine, inspect, select, table, text
from sqlalchemy.engine import make_url

PROM_USER, PROM_PASSWORD = "someuser", "S3cretPassw0rd"
DB_PASSWORD = "DbPassw0rdX9"
READ_TOKEN, WRITE_TOKEN = "readTok3nQwerty", "writeTok3nAsdfgh"
WEBHOOK_PATH = "/services/TSECRET1/BSECRET2/whPathSecretXyz"
SECRETS = {
    "prometheus password": PROM_PASSWORD,
    "prometheus basic auth": base64.b64encode(f"{PROM_USER}:{PROM_PASSWORD}".encode()).decode(),
    "database password": DB_PASSWORD,
    "read token": READ_TOKEN,
    "write token": WRITE_TOKEN,
    "webhook path": WEBHOOK_PATH,
    "webhook secret": "whPathSecretXyz",
}


class _Recorder(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[str] = []
        self.requests = 0
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _answer(self, status: int, body: str, content_type: str = "application/json") -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # the failing "Prometheus": echoes what a careless proxy would
        echo = f"rejected {self.path} (Authorization: {self.headers.get('Authorization')})"
        status = 400 if "query" in self.path else 500
        self._answer(status, json.dumps({"status": "error", "errorType": "bad_data", "error": echo}))

    def do_POST(self) -> None:
        if not self.path.startswith("/services/"):  # Prometheus over POST
            self.do_GET()
            return
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length).decode()
        with self.server.lock:
            self.server.requests += 1
            first = self.server.requests == 1
            self.server.bodies.append(body)
        if first:  # the first post fails, naming the webhook it was sent to
            self._answer(500, f"no_service: unknown hook {self.path}", "text/plain")
        else:
            self._answer(200, "ok", "text/plain")


@contextlib.contextmanager
def _serving(server: _Recorder) -> Iterator[_Recorder]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _kayenta_command() -> list[str]:
    script = Path(sys.executable).with_name("kayenta-py")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "kayenta_py.cli.main"]


@dataclass
class Run:
    """Everything the service said during the run."""

    answers: dict[str, str] = field(default_factory=dict)  # "GET /path" -> body
    log: str = ""
    slack: list[str] = field(default_factory=list)
    rows: dict[str, list[str]] = field(default_factory=dict)  # table -> rows as text
    failed_reasons: list[str] = field(default_factory=list)


def _wait(predicate: Any, timeout: float, what: str, log_path: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"{what} not seen after {timeout:.0f} s:\n{log_path.read_text(errors='replace')[-4000:]}")


def _exercise(service_url: str, run: Run, slack: _Recorder, log_path: Path) -> None:
    write = {"Authorization": f"Bearer {WRITE_TOKEN}"}
    client = httpx.Client(base_url=service_url, headers=write, timeout=30.0)
    with client:

        def record(method: str, path: str, **kwargs: Any) -> httpx.Response:
            answer = client.request(method, path, **kwargs)
            run.answers[f"{method} {path} ({len(run.answers)})"] = answer.text
            return answer

        body = {
            "config": live_canary_config("secrets-check"),
            "baseline_scope": "v1",
            "canary_scope": "v2",
            "lifetime": "PT4S",
            "interval": "PT2S",
            "step": 1,
            "source": "prometheus",
        }
        failing = [record("POST", "/api/v1/analyses", json=body).json()["id"] for _ in range(2)]
        long = record("POST", "/api/v1/analyses", json={**body, "lifetime": "PT10M"}).json()["id"]
        record("POST", f"/api/v1/analyses/{long}/cancel")

        def all_failed() -> bool:
            docs = [client.get(f"/api/v1/analyses/{i}/verdict").json() for i in failing]
            return all(d["complete"] for d in docs)

        _wait(all_failed, 120, "the failing analyses' end", log_path)
        _wait(
            lambda: slack.requests >= 4, 60, "three delivered Slack messages (after a refused one)", log_path
        )
        for analysis_id in [*failing, long]:
            for suffix in ("", "/verdict", "/report", "/intervals"):
                record("GET", f"/api/v1/analyses/{analysis_id}{suffix}")
            record("GET", f"/canary/{analysis_id}")
            run.failed_reasons.append(
                client.get(f"/api/v1/analyses/{analysis_id}").json().get("reason") or ""
            )
        for path in (
            "/api/v1/analyses",
            "/api/v1/configs",
            "/credentials",
            "/metricsServices",
            "/metrics",
            "/openapi.json",
            "/healthz",
            "/readyz",
        ):
            record("GET", path)
        # a refused token: the answer must not echo any configured token
        run.answers["GET /api/v1/analyses (bad token)"] = client.get(
            "/api/v1/analyses", headers={"Authorization": "Bearer not-a-token-at-all"}
        ).text


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """Run the service through failures, a cancel and Slack deliveries; return what it said."""
    tmp = tmp_path_factory.mktemp("secrets")
    result = Run()
    with contextlib.ExitStack() as stack:
        database = stack.enter_context(contextlib.contextmanager(fresh_postgres_database)())
        database = make_url(database).set(password=DB_PASSWORD).render_as_string(hide_password=False)
        prometheus = stack.enter_context(_serving(_Recorder()))
        slack = stack.enter_context(_serving(_Recorder()))
        port = free_port()
        prom_url = prometheus.url.replace("http://", f"http://{PROM_USER}:{PROM_PASSWORD}@")
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
        env.update(
            KAYENTA_DATA_DIR=str(tmp),
            KAYENTA_DATABASE_URL=database,
            KAYENTA_PROMETHEUS_URL=prom_url,
            KAYENTA_PROMETHEUS_RETRIES="0",
            KAYENTA_SOURCE_RETRY_LIMIT="1",
            KAYENTA_API_TOKENS=f"read:{READ_TOKEN},write:{WRITE_TOKEN}",
            KAYENTA_SLACK_WEBHOOK_URL=slack.url + WEBHOOK_PATH,
            KAYENTA_SLACK_RETRIES="0",
            KAYENTA_SLACK_DELIVERY_INTERVAL="1",
            PYTHONUNBUFFERED="1",
        )
        log_path = tmp / "service.log"
        with log_path.open("wb") as log:
            command = [*_kayenta_command(), "--debug", "serve", "--port", str(port), "--log-level", "debug"]
            process = subprocess.Popen(command, env=env, cwd=tmp, stdout=log, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}"

                def ready() -> bool:
                    if process.poll() is not None:
                        pytest.fail(f"serve exited {process.returncode}:\n{log_path.read_text()}")
                    with contextlib.suppress(httpx.HTTPError):
                        return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
                    return False

                _wait(ready, 60, "the service's readiness", log_path)
                _exercise(url, result, slack, log_path)
            finally:
                process.terminate()
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)
        result.log = log_path.read_text(encoding="utf-8", errors="replace")
        result.slack = list(slack.bodies)
        engine = create_engine(database)
        try:
            with engine.connect() as connection:
                for name in inspect(connection).get_table_names():
                    rows = connection.execute(select(text("*")).select_from(table(name))).all()
                    result.rows[name] = [str(tuple(row)) for row in rows]
        finally:
            engine.dispose()
    return result


def _leaks(texts: dict[str, str]) -> list[str]:
    return [
        f"{what} in {where}: ...{body[max(0, body.find(secret) - 120) : body.find(secret) + 80]}..."
        for where, body in texts.items()
        for what, secret in SECRETS.items()
        if secret in body
    ]


def test_the_run_did_what_the_checks_assume(run: Run) -> None:
    """The analyses failed through the echoing source, Slack was posted to, rows are there."""
    assert len(run.failed_reasons) == 3 and all(run.failed_reasons), run.failed_reasons
    assert len(run.slack) >= 4, run.slack
    assert run.rows.get("notifications") and run.rows.get("analyses"), sorted(run.rows)
    assert any("prometheus" in body for key, body in run.answers.items() if "/credentials" in key)
    assert "slack" in run.log and "HTTP 500" in run.log  # the refused post was logged
    # the secrets reached the sinks and were masked there (a check that could fail)
    assert all("Basic ***" in reason for reason in run.failed_reasons[:2]), run.failed_reasons
    assert any("Basic ***" in body for body in run.slack), run.slack
    assert "unknown hook ***" in run.log  # the refused post's error, path masked


def test_no_answer_shows_a_secret(run: Run) -> None:
    assert len(run.answers) >= 28
    assert not _leaks(run.answers), "\n".join(_leaks(run.answers))


def test_credentials_and_metrics_services_show_the_url_masked(run: Run) -> None:
    for key, body in run.answers.items():
        if "/credentials" in key or "/metricsServices" in key:
            accounts = json.loads(body)
            urls = [a["endpoint"]["baseUrl"] for a in accounts if "endpoint" in a]
            assert urls and all(u.startswith("http://someuser:***@127.0.0.1:") for u in urls), urls


def test_the_process_log_shows_no_secret(run: Run) -> None:
    leaks = _leaks({"the log": run.log})
    assert not leaks, "\n".join(leaks)


def test_slack_messages_show_no_secret(run: Run) -> None:
    leaks = _leaks({f"slack post {i}": body for i, body in enumerate(run.slack)})
    assert not leaks, "\n".join(leaks)


def test_database_rows_show_no_secret(run: Run) -> None:
    leaks = _leaks({f"table {name}": "\n".join(rows) for name, rows in run.rows.items()})
    assert not leaks, "\n".join(leaks)


# --------------------------------------------------------------------------------------------------
# Interrupted deliveries (issue 13, item 6): a message left ``sending`` by a killed process
# --------------------------------------------------------------------------------------------------


def test_a_message_left_sending_is_retried_after_its_lease(tmp_path: Path) -> None:
    """A claim is not renewed once its poster died: after ``STALE_SENDING_S`` it is posted again.

    Real SQLite store, real HTTP fake Slack; the notifier's clock is given, not slept through.
    """
    from pydantic import SecretStr

    from kayenta_py.integrations.slack.channels import Channel
    from kayenta_py.integrations.slack.notifier import SENDING, SENT, STALE_SENDING_S, SlackNotifier
    from kayenta_py.service.store.repository import Store
    from kayenta_py.service.store.tables import NotificationRecord

    store = Store(f"sqlite:///{tmp_path / 'k.db'}")
    store.migrate()
    with _serving(_Recorder()) as slack:
        slack.requests = 1  # every post is accepted
        channel = Channel("default", SecretStr(slack.url + WEBHOOK_PATH))
        notifier = SlackNotifier(store, {"default": channel}, base_url="http://k", retry_interval=30.0)
        record = store.add_notification("finished", "default", {"text": "hello", "blocks": []})
        claimed = record.created_ts
        assert notifier._claim(record.id, claimed)  # the process that claimed it is then killed
        assert notifier.deliver_pending(now=claimed + STALE_SENDING_S - 1) == 0  # still its lease
        assert slack.bodies == []
        assert notifier.deliver_pending(now=claimed + STALE_SENDING_S + 1) == 1
        assert len(slack.bodies) == 1 and json.loads(slack.bodies[0])["text"] == "hello"
    with store.session() as session:
        row = session.get(NotificationRecord, record.id)
        assert row is not None and row.status == SENT != SENDING
        assert row.attempts == 2  # the interrupted attempt counts
    store.close()
    assert STALE_SENDING_S <= 30  # with the 30 s delivery interval, retried within a minute
