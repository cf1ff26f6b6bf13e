"""The service end to end, live: a real ``kayenta-py serve`` process, a real Prometheus scraping a fake app.

Everything goes through the HTTP API of a service started as its own process
(``kayenta-py serve``), on a SQLite file and on a fresh PostgreSQL database
(the ``database_url`` fixture). The metrics are live: :class:`live_app.FakeApp`
writes traffic while Prometheus scrapes it every second and the analyses judge it.

- A regressed canary ends ``fail`` (failing fast at its first interval), a
  healthy one ``pass`` after all its intervals (fixed mode: the config names its judges). With
  a native judge's default ``min_effective`` the regressed canary's first interval, 5
  overlapping points a side, is inconclusive: marginal, not a fail fast.
- Killed with SIGKILL after its first interval and started again later on the
  same database, the service completes the analysis: every interval judged
  exactly once, those that fell due while it was down judged late, the one
  stored before the kill unchanged.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any, Protocol

import httpx
import pytest
from live_app import (
    HEALTHY,
    PROFILES,
    QUERIES,
    REGRESSED,
    FakeApp,
    Forwarder,
    LivePrometheus,
    live_canary_config,
)
from prometheus_harness import ensure_prometheus, for_scope, free_port
from sqlalchemy import create_engine, text


def _kayenta_command() -> list[str]:
    script = Path(sys.executable).with_name("kayenta-py")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "kayenta_py.cli.main"]  # not installed as a script: run the module


# --------------------------------------------------------------------------------------------------
# Live metrics (one fake app and one Prometheus for the module)
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def live_prometheus() -> Iterator[LivePrometheus]:
    """A fake app with live traffic, scraped every second by a real Prometheus, with data for every query."""
    ensure_prometheus()
    with FakeApp() as app, LivePrometheus(app.target) as prometheus:
        prometheus.wait_for_samples(5)
        for profile in PROFILES:  # every query answers for every version before an analysis starts
            for name, query in QUERIES.items():
                prometheus.wait_for(for_scope(query, profile.version), what=f"{name} of {profile.version}")
        yield prometheus


# --------------------------------------------------------------------------------------------------
# The service as a real process
# --------------------------------------------------------------------------------------------------


class ServiceProcess:
    """One ``kayenta-py serve`` process on a free loopback port, its output in a log file."""

    def __init__(self, env: dict[str, str], cwd: Path, log_path: Path) -> None:
        self.env = env
        self.cwd = cwd
        self.log_path = log_path
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.spawned_at = 0.0
        self.ready_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def log(self, lines: int = 60) -> str:
        try:
            content = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(content.splitlines()[-lines:])

    def start(self, ready_timeout: float = 60.0) -> None:
        """Spawn the service and wait until ``/readyz`` answers 200."""
        self._log = self.log_path.open("ab")
        self.spawned_at = time.time()
        self.process = subprocess.Popen(
            [*_kayenta_command(), "serve", "--port", str(self.port), "--log-level", "warning"],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + ready_timeout
        last = "no answer"
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"kayenta-py serve exited with code {code} before it was ready:\n{self.log()}")
            try:
                answer = httpx.get(f"{self.url}/readyz", timeout=2.0)
                if answer.status_code == 200:
                    self.ready_at = time.time()
                    return
                last = f"HTTP {answer.status_code} {answer.text[:200]}"
            except httpx.HTTPError as exc:
                last = type(exc).__name__
            time.sleep(0.1)
        pytest.fail(f"kayenta-py serve not ready after {ready_timeout:.0f} s (last: {last}):\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no scheduler shutdown, no database close."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """End the process (SIGTERM, then SIGKILL) and close the log; idempotent."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


class ServiceFactory(Protocol):
    """Starts a service on a database URL (optionally another Prometheus URL and more settings)."""

    def __call__(
        self, database_url: str, *, prometheus_url: str | None = None, settings: Mapping[str, str] = ...
    ) -> ServiceProcess: ...


@pytest.fixture
def start_service(live_prometheus: LivePrometheus, tmp_path: Path) -> Iterator[ServiceFactory]:
    """Start ``kayenta-py serve`` processes on a database URL; every one is stopped afterwards."""
    started: list[ServiceProcess] = []
    data_dir = tmp_path / "data"
    data_dir.mkdir()

    def start(
        database_url: str, *, prometheus_url: str | None = None, settings: Mapping[str, str] = {}
    ) -> ServiceProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
        env.update(
            KAYENTA_DATA_DIR=str(data_dir),
            KAYENTA_DATABASE_URL=database_url,
            KAYENTA_PROMETHEUS_URL=prometheus_url or live_prometheus.url,
            PYTHONUNBUFFERED="1",
        )
        env.update(settings)
        service = ServiceProcess(env, data_dir, tmp_path / f"service-{len(started)}.log")
        started.append(service)
        service.start()
        return service

    try:
        yield start
    finally:
        for service in started:
            service.stop()


# --------------------------------------------------------------------------------------------------
# HTTP helpers
# --------------------------------------------------------------------------------------------------


def _json(answer: httpx.Response) -> Any:
    assert answer.headers.get("content-type", "").startswith("application/json"), answer.text[:300]
    return answer.json()


def post_analysis(client: httpx.Client, scopes: tuple[str, str], **fields: Any) -> str:
    """POST /api/v1/analyses for a baseline and canary scope of the live app; return the id."""
    body: dict[str, Any] = {
        "config": live_canary_config(),
        "baseline_scope": scopes[0],
        "canary_scope": scopes[1],
        "lifetime": "PT30S",
        "interval": "PT10S",
        "step": 2,
        "source": "prometheus",
        **fields,
    }
    answer = client.post("/api/v1/analyses", json=body)
    assert answer.status_code == 201, answer.text
    created = _json(answer)
    assert created["status"] == "running"
    assert set(created["links"]) >= {"self", "verdict", "cancel"}
    analysis_id: str = created["id"]
    assert created["links"]["verdict"].endswith(f"/api/v1/analyses/{analysis_id}/verdict")
    return analysis_id


def get_verdict(client: httpx.Client, analysis_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/analyses/{analysis_id}/verdict")
    assert answer.status_code == 200, answer.text
    verdict: dict[str, Any] = _json(answer)
    assert set(verdict) == {"verdict", "score", "complete", "reason"}
    assert verdict["verdict"] in {"pending", "pass", "marginal", "fail"}
    return verdict


def get_analysis(client: httpx.Client, analysis_id: str) -> dict[str, Any]:
    answer = client.get(f"/api/v1/analyses/{analysis_id}")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = _json(answer)
    return document


def wait_complete(
    client: httpx.Client, analysis_id: str, timeout: float, service: ServiceProcess
) -> dict[str, Any]:
    """Poll the verdict endpoint (as a rollout controller does) until it is complete."""
    deadline = time.monotonic() + timeout
    verdict = get_verdict(client, analysis_id)
    while not verdict["complete"]:
        if time.monotonic() > deadline:
            pytest.fail(
                f"analysis {analysis_id} not complete after {timeout:.0f} s: {verdict}\n{service.log()}"
            )
        assert verdict["verdict"] == "pending", verdict  # no final word before the analysis ends
        time.sleep(0.5)
        verdict = get_verdict(client, analysis_id)
    return verdict


def wait_intervals(
    client: httpx.Client, analysis_id: str, count: int, timeout: float, service: ServiceProcess
) -> dict[str, Any]:
    """Poll the analysis until at least ``count`` intervals are stored; return it."""
    deadline = time.monotonic() + timeout
    while True:
        document = get_analysis(client, analysis_id)
        if len(document["intervals"]) >= count:
            return document
        if time.monotonic() > deadline:
            pytest.fail(
                f"analysis {analysis_id}: {len(document['intervals'])} intervals after {timeout:.0f} s,"
                f" expected {count}: {document['reason']}\n{service.log()}"
            )
        time.sleep(0.25)


def epoch(moment: str) -> float:
    return datetime.fromisoformat(moment).timestamp()


def due_times(document: dict[str, Any]) -> list[float]:
    """When each interval of an analysis falls due: start + warmup + (i + 1) * interval."""
    first = epoch(document["start"]) + document["warmup_s"]
    return [first + (i + 1) * document["interval_s"] for i in range(document["intervals_total"])]


def metric(interval: dict[str, Any], name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in interval["metrics"] if m["name"] == name]
    assert len(found) == 1, [m["name"] for m in interval["metrics"]]
    return found[0]


def check_judged_live(document: dict[str, Any]) -> None:
    """Each stored interval: judged at or after it fell due, over its own window, on live data."""
    dues = due_times(document)
    for interval in document["intervals"]:
        index = interval["index"]
        assert epoch(interval["due"]) == pytest.approx(dues[index], abs=0.01)
        assert epoch(interval["window"]["end"]) == pytest.approx(dues[index], abs=0.01)
        assert epoch(interval["window"]["start"]) == pytest.approx(
            epoch(document["start"]) + document["warmup_s"], abs=0.01
        )
        assert epoch(interval["judged"]) >= dues[index] - 0.01, interval  # never judged early
        names = {m["name"] for m in interval["metrics"]}
        assert names == {"error-ratio", "p99-latency", "p50-latency", "cpu"}
        for result in interval["metrics"]:
            # 2 s points over a window of (index + 1) * interval_s; the newest may not be scraped yet.
            expected = (index + 1) * document["interval_s"] / document["step_s"]
            for side in ("baseline", "canary"):
                assert result[side]["count"] >= expected - 2, (index, result["name"], side, result[side])


# --------------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------------


def test_live_regressed_canary_fails_and_healthy_canary_passes(
    database_url: str, start_service: ServiceFactory
) -> None:
    service = start_service(database_url)
    with httpx.Client(base_url=service.url, timeout=15.0) as client:
        posted = time.time()
        regressed = post_analysis(client, REGRESSED)
        healthy = post_analysis(client, HEALTHY)
        # The same regressed canary with a native judge's default rule (min_effective 8): at its first
        # interval 5 overlapping points a side are too few effectively independent ones to decide.
        thin = post_analysis(client, REGRESSED, config=live_canary_config(min_effective=None))
        for analysis_id in (regressed, healthy, thin):
            pending = get_verdict(client, analysis_id)
            assert (pending["verdict"], pending["score"], pending["complete"]) == ("pending", None, False)

        # The regressed canary fails fast at its first interval (due 10 s after the start).
        verdict = wait_complete(client, regressed, 40.0, service)
        assert verdict["verdict"] == "fail", verdict
        assert verdict["score"] == 0.0, verdict  # a critical metric failed
        assert "failed fast at interval 1 of 3" in verdict["reason"]
        assert time.time() - posted < 25.0  # long before its 30 s lifetime
        document = get_analysis(client, regressed)
        assert document["status"] == "completed"
        assert [i["index"] for i in document["intervals"]] == [0]
        check_judged_live(document)
        first = document["intervals"][0]
        assert first["verdict"] == "fail"
        errors = metric(first, "error-ratio")
        assert errors["classification"] == "High" and errors["critical"], errors
        assert errors["canary"]["mean"] == pytest.approx(0.05, rel=0.3)  # 5% of the canary's requests fail
        assert errors["baseline"]["mean"] == pytest.approx(0.001, rel=0.6)
        for name, low, high in (("p50-latency", 1.5, 2.1), ("cpu", 1.2, 1.4)):
            result = metric(first, name)
            assert result["classification"] == "High", result
            assert low < result["mean_ratio"] < high, result

        # The healthy canary runs all three intervals and passes at the last one.
        verdict = wait_complete(client, healthy, 60.0, service)
        assert verdict["verdict"] == "pass", verdict
        assert verdict["score"] >= 95.0
        assert verdict["reason"].startswith("final interval 3 of 3")
        assert time.time() - posted >= 30.0  # it ran its lifetime
        document = get_analysis(client, healthy)
        assert document["status"] == "completed" and document["complete"]
        assert [i["index"] for i in document["intervals"]] == [0, 1, 2]
        check_judged_live(document)
        for interval in document["intervals"]:
            assert interval["verdict"] == "pass", interval["reason"]
            for result in interval["metrics"]:
                assert result["classification"] == "Pass", result

        # Thin evidence does not fail fast: the first interval is marginal (every metric inconclusive,
        # the error ratio's interval alone saying High); later intervals decide on more points.
        wait_complete(client, thin, 30.0, service)
        document = get_analysis(client, thin)
        assert document["mode"] == "fixed" and "fixed judge mann-whitney" in document["mode_reason"]
        assert "failed fast at interval 1" not in document["reason"], document["reason"]
        first = document["intervals"][0]
        assert first["verdict"] == "marginal", first["reason"]
        assert "inconclusive" in first["reason"] and "effectively independent points" in first["reason"]
        for result in first["metrics"]:
            assert result["classification"] == "Pass" and result["details"]["inconclusive"], result
        assert metric(first, "error-ratio")["details"]["indicated"] == "High"
        assert len(document["intervals"]) >= 2
        assert document["verdict"] != "pass", document["reason"]

        listed = _json(client.get("/api/v1/analyses", params={"status": "completed"}))
        assert {item["id"] for item in listed["items"]} == {regressed, healthy, thin}


def test_kill_9_mid_analysis_then_restart_judges_every_interval_once(
    database_url: str, start_service: ServiceFactory
) -> None:
    first_service = start_service(database_url)
    with httpx.Client(base_url=first_service.url, timeout=15.0) as client:
        analysis_id = post_analysis(client, HEALTHY, lifetime="PT40S", interval="PT8S")
        before = wait_intervals(client, analysis_id, 1, 25.0, first_service)
    dues = due_times(before)
    assert len(dues) == 5
    assert [i["index"] for i in before["intervals"]] == [0]
    stored_before_kill = before["intervals"][0]

    first_service.kill()
    killed_at = time.time()
    assert killed_at < dues[1] - 2.0, "the first interval came too late to kill before the second"
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{first_service.url}/healthz", timeout=2.0)

    # Stay down while intervals 1 (10 s before the restart) and 2 (2 s before it) fall due.
    time.sleep(max(0.0, dues[2] + 2.0 - time.time()))
    second_service = start_service(database_url)
    restarted_at = second_service.spawned_at
    ready_at = second_service.ready_at  # a loaded machine may take a while: checked against below

    with httpx.Client(base_url=second_service.url, timeout=15.0) as client:
        verdict = wait_complete(client, analysis_id, dues[-1] - time.time() + 30.0, second_service)
        after = get_analysis(client, analysis_id)

    assert verdict["verdict"] == "pass", verdict
    assert verdict["complete"] is True
    assert verdict["reason"].startswith("final interval 5 of 5")
    assert after["status"] == "completed"
    intervals = after["intervals"]
    assert [i["index"] for i in intervals] == [0, 1, 2, 3, 4]  # none skipped, none repeated
    check_judged_live(after)

    # What was stored before the kill is unchanged.
    assert intervals[0] == stored_before_kill

    judged = [epoch(i["judged"]) for i in intervals]
    fell_due_while_down = [i for i in range(5) if killed_at < dues[i] < restarted_at]
    assert fell_due_while_down == [1, 2]
    for index in fell_due_while_down:  # judged once, late, by the restarted service
        assert judged[index] >= restarted_at, (index, judged[index], restarted_at)
    assert judged[1] - dues[1] >= 8.0
    assert judged[2] - dues[2] >= 1.5
    on_time = [i for i in range(5) if dues[i] > ready_at + 0.5]
    assert on_time and on_time[-1] == 4, (on_time, ready_at)
    for index in on_time:  # due after the restart was ready: judged on time again
        assert 0.0 <= judged[index] - dues[index] < 5.0, (index, judged[index] - dues[index])
    assert judged == sorted(judged)

    # The database holds each interval once and published the final verdict once.
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                text('SELECT "index", count(*) FROM intervals WHERE analysis_id = :id GROUP BY "index"'),
                {"id": analysis_id},
            ).all()
            finals = connection.execute(
                text("SELECT count(*) FROM verdicts WHERE analysis_id = :id AND complete"),
                {"id": analysis_id},
            ).scalar_one()
    finally:
        engine.dispose()
    assert sorted((int(i), int(n)) for i, n in rows) == [(i, 1) for i in range(5)]
    assert finals == 1


def test_a_short_prometheus_outage_is_retried_later_not_at_once(
    live_prometheus: LivePrometheus, start_service: ServiceFactory, tmp_path: Path
) -> None:
    forwarder = Forwarder(live_prometheus.url)  # off: the service cannot reach Prometheus
    service = start_service(
        f"sqlite:///{tmp_path / 'outage.db'}",
        prometheus_url=forwarder.url,
        # Each attempt fails fast (no HTTP retries); five attempts max(2 s, 6 s / 4) apart span 8 s.
        settings={"KAYENTA_PROMETHEUS_RETRIES": "0", "KAYENTA_SOURCE_RETRY_LIMIT": "5"},
    )
    try:
        with httpx.Client(base_url=service.url, timeout=15.0) as client:
            analysis_id = post_analysis(client, HEALTHY, lifetime="PT12S", interval="PT6S")
            dues = due_times(get_analysis(client, analysis_id))
            # Prometheus is unreachable when the first interval falls due and for 3 s more.
            time.sleep(max(0.0, dues[0] + 3.0 - time.time()))
            outage_over = time.time()
            forwarder.switch_on()
            verdict = wait_complete(client, analysis_id, dues[-1] - time.time() + 30.0, service)
            document = get_analysis(client, analysis_id)
    finally:
        forwarder.switch_off()
    # Retries 2 s apart outlast a 3 s outage (all five at once would have failed the analysis).
    assert document["status"] == "completed", (document["status"], document["reason"])
    assert epoch(document["completed"]) >= dues[-1]
    assert verdict["verdict"] == "pass", verdict
    assert [i["index"] for i in document["intervals"]] == [0, 1]
    assert epoch(document["intervals"][0]["judged"]) >= outage_over  # judged once, after the outage
    assert forwarder.forwarded > 0
