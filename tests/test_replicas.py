"""Replicas: three ``kayenta-py serve`` processes on one PostgreSQL share the analyses' intervals.

With a PostgreSQL database the service dispatches intervals as procrastinate jobs
(``kayenta_py/service/dispatch_procrastinate.py``); every replica serves the API and runs a
worker. The metrics come from a fake Prometheus that answers each range query after
``SLOW_S`` seconds, so a replica is caught in the middle of judging an interval:

- ``kill -9`` of a replica while it judges: another replica retries that job once the dead
  worker's heartbeat is ``STALLED_S`` old, and the interval is stored well within
  max(2 intervals, 60 s); every analysis completes, each interval stored exactly once, each
  final verdict written once, every analysis readable on every replica;
- ``SIGTERM`` of a replica while it judges: it hands the job back at once (its shutdown
  timeout is shorter than the fetch) and another replica stores the interval promptly;
- three replicas applying the procrastinate schema together do not race (an advisory lock).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from conftest import fresh_postgres_database
from prometheus_harness import free_port
from sqlalchemy import create_engine, text

from kayenta_py.service.dispatch_procrastinate import ensure_schema, libpq_url

SLOW_S = 2.0  # every range query of the fake Prometheus takes this long
INTERVAL_S = 5
LIFETIME_S = 30  # 6 intervals
HEARTBEAT_S = 1.0
STALLED_S = 4.0
BOUND_S = max(2 * INTERVAL_S, 60)  # the bound on a failover

CONFIG: dict[str, Any] = {
    "name": "replicas",
    "thresholds": {"pass": 95, "marginal": 75},
    "metrics": [
        {
            "name": "p99-latency",
            "kind": "latency",
            "query": 'latency_p99{version="${scope}"}',
            "judge": {"type": "mann-whitney", "min_effective": 0},
        }
    ],
}


class SlowPrometheus:
    """Answers ``/api/v1/query_range`` after ``SLOW_S`` s with one series, the same for every scope."""

    def __init__(self) -> None:
        self.port = free_port()

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, params: dict[str, list[str]]) -> None:
                time.sleep(SLOW_S)
                start, end = float(params["start"][0]), float(params["end"][0])
                step = float(params["step"][0].rstrip("s"))
                points = int((end - start) // step) + 1
                values = [
                    [start + i * step, f"{100 + 5 * math.sin((start + i * step) * 0.7):.6f}"]
                    for i in range(points)
                ]
                body = json.dumps(
                    {"status": "success", "data": {"resultType": "matrix", "result": [
                        {"metric": {}, "values": values}
                    ]}}
                ).encode()
                with contextlib.suppress(OSError):  # a replica killed while it waits
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer(parse_qs(urlparse(self.path).query))

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self._answer(parse_qs(self.rfile.read(length).decode()))

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> SlowPrometheus:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class Replica:
    """One ``kayenta-py serve`` process on a free port, its output in a log file."""

    def __init__(self, name: str, env: dict[str, str], tmp: Path) -> None:
        self.name = name
        self.port = free_port()
        self.log_path = tmp / f"{name}.log"
        self.env = {**env, "KAYENTA_REPLICA_ID": name}
        self.cwd = tmp
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spawn(self) -> None:
        script = Path(sys.executable).with_name("kayenta-py")
        command = [str(script)] if script.is_file() else [sys.executable, "-m", "kayenta_py.cli.main"]
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [*command, "serve", "--port", str(self.port), "--log-level", "info"],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_ready(self, timeout: float = 60.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                answer = httpx.get(f"{self.url}/readyz", timeout=2.0)
                if answer.status_code == 200:
                    ready: dict[str, Any] = answer.json()
                    return ready
            time.sleep(0.1)
        pytest.fail(f"{self.name} not ready after {timeout:.0f} s:\n{self.log()[-3000:]}")

    def signal(self, number: int) -> None:
        assert self.process is not None
        os.kill(self.process.pid, number)

    def wait(self, timeout: float = 30.0) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


@pytest.fixture
def database() -> Iterator[str]:
    yield from fresh_postgres_database()


def replicas_env(database_url: str, prometheus_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KAYENTA_")}
    env.update(
        KAYENTA_DATA_DIR=str(tmp / "data"),
        KAYENTA_DATABASE_URL=database_url,
        KAYENTA_PROMETHEUS_URL=prometheus_url,
        KAYENTA_DISPATCH_HEARTBEAT=str(HEARTBEAT_S),
        KAYENTA_DISPATCH_STALLED_TIMEOUT=str(STALLED_S),
        KAYENTA_DISPATCH_POLL_INTERVAL="0.5",
        KAYENTA_DISPATCH_SHUTDOWN_TIMEOUT="0.5",  # shorter than a fetch: a SIGTERM hands the job back
        PYTHONUNBUFFERED="1",
    )
    return env


def create(replica: Replica, canary: str) -> str:
    body = {
        "config": CONFIG,
        "baseline_scope": "baseline",
        "canary_scope": canary,
        "source": "prometheus",
        "lifetime": f"PT{LIFETIME_S}S",
        "interval": f"PT{INTERVAL_S}S",
        "step": 1,
        "fail_fast": False,
    }
    answer = httpx.post(f"{replica.url}/api/v1/analyses", json=body, timeout=10)
    assert answer.status_code == 201, answer.text
    analysis_id: str = answer.json()["id"]
    return analysis_id


class Db:
    def __init__(self, url: str) -> None:
        self.engine = create_engine(url)

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    def stored(self, analysis_id: str) -> set[int]:
        rows = self.rows('SELECT "index" FROM intervals WHERE analysis_id = :a', a=analysis_id)
        return {row[0] for row in rows}

    def doing(self, worker_id: int) -> list[tuple[str, int]]:
        """(analysis id, job id) of the jobs the worker runs now."""
        return [(r[0], r[1]) for r in self.rows(
            "SELECT lock, id FROM procrastinate_jobs WHERE status = 'doing' AND worker_id = :w", w=worker_id
        )]

    def workers(self) -> list[int]:
        return [r[0] for r in self.rows("SELECT id FROM procrastinate_workers ORDER BY id")]


def wait_for(check: Any, timeout: float, what: str, poll: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"{what}: not after {timeout:.0f} s")


def catch_judging(db: Db, worker_id: int, timeout: float = 20.0) -> tuple[str, int]:
    """Wait until the worker starts a job; return its analysis and the interval it judges."""
    seen = set(db.doing(worker_id))  # a job already running may be about to end
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        fresh = [(analysis, job) for analysis, job in db.doing(worker_id) if (analysis, job) not in seen]
        if fresh:
            analysis_id = fresh[0][0]
            pending = set(range(LIFETIME_S // INTERVAL_S)) - db.stored(analysis_id)
            if pending:
                return analysis_id, min(pending)
        time.sleep(0.02)
    pytest.fail(f"worker {worker_id} started no job in {timeout:.0f} s")


def test_three_replicas_survive_a_kill_and_a_clean_stop(database: str, tmp_path: Path) -> None:
    began = time.monotonic()
    db = Db(database)
    with SlowPrometheus() as prometheus, contextlib.ExitStack() as stack:
        env = replicas_env(database, prometheus.url, tmp_path)
        replicas = [Replica(f"r{i}", env, tmp_path) for i in range(3)]
        for replica in replicas:
            stack.callback(replica.stop)
        # one after the other, so their workers' ids come in their order (r0 lowest)
        for replica in replicas:
            replica.spawn()
            ready = replica.wait_ready()
            assert ready["dispatch"] == "procrastinate" and ready["worker"] is True, ready
            assert ready["replica"] == replica.name
        worker_of = dict(zip((r.name for r in replicas), db.workers(), strict=True))

        # six analyses, two created on each replica
        created: dict[str, str] = {}
        for n in range(6):
            replica = replicas[n % 3]
            created[create(replica, f"canary-{n}")] = replica.name
        for analysis_id in created:  # every analysis is readable on every replica
            for replica in replicas:
                answer = httpx.get(f"{replica.url}/api/v1/analyses/{analysis_id}", timeout=10)
                assert answer.status_code == 200, answer.text

        # kill -9 r0 just after it starts judging an interval
        analysis_id, in_flight = catch_judging(db, worker_of["r0"])
        replicas[0].signal(signal.SIGKILL)
        killed = time.monotonic()
        replicas[0].wait(10)
        wait_for(lambda: in_flight in db.stored(analysis_id), BOUND_S, "the killed replica's interval")
        failover = time.monotonic() - killed
        assert failover < BOUND_S
        assert failover < STALLED_S + 2 * HEARTBEAT_S + SLOW_S + 2, failover  # the heartbeat's timing
        print(f"kill -9: interval {in_flight + 1} of {analysis_id} stored {failover:.1f} s after the kill")
        retried = "of a replica without heartbeat"
        assert any(retried in r.log() for r in replicas[1:]), "no survivor retried the stalled job"

        # SIGTERM r1 just after it starts judging: it hands the job back, r2 stores the interval
        stopping, other = replicas[1], replicas[2]
        term_analysis, term_index = catch_judging(db, worker_of["r1"])
        stopping.signal(signal.SIGTERM)
        stopped = time.monotonic()
        assert stopping.wait(30) in (0, -signal.SIGTERM), stopping.log()[-3000:]  # uvicorn re-raises it
        wait_for(lambda: term_index in db.stored(term_analysis), 20, "the stopped replica's interval")
        handed = time.monotonic() - stopped
        print(f"SIGTERM: interval {term_index + 1} of {term_analysis} stored {handed:.1f} s after the stop")
        handed_back = re.search(
            r"replica r1 stopping: (\d+) running analysis jobs handed back", stopping.log()
        )
        assert handed_back is not None and int(handed_back.group(1)) >= 1, stopping.log()[-3000:]
        assert handed < 0.5 + SLOW_S + 3 * HEARTBEAT_S + 2, handed  # its shutdown timeout, one fetch

        # every analysis completes, on the last replica alone
        def all_complete() -> bool:
            return all(
                httpx.get(f"{other.url}/api/v1/analyses/{a}/verdict", timeout=10).json()["complete"]
                for a in created
            )

        wait_for(all_complete, LIFETIME_S + 30, "every analysis complete", poll=0.5)
        intervals = LIFETIME_S // INTERVAL_S
        for analysis_id in created:
            answer = httpx.get(f"{other.url}/api/v1/analyses/{analysis_id}", timeout=10).json()
            assert answer["status"] == "completed", answer
        counts = db.rows('SELECT analysis_id, "index", count(*) FROM intervals GROUP BY analysis_id, "index"')
        assert all(row[2] == 1 for row in counts), counts  # (the unique key's promise, checked)
        assert {row[0] for row in counts} == set(created)
        per_analysis = {a: sum(1 for row in counts if row[0] == a) for a in created}
        assert per_analysis == dict.fromkeys(created, intervals), per_analysis
        lateness = db.rows("SELECT max(judged_ts - due_ts) FROM intervals")[0][0]
        print(f"latest judgement: {lateness:.1f} s after its due time")
        assert lateness < BOUND_S
        finals = dict(db.rows("SELECT analysis_id, count(*) FROM verdicts WHERE complete GROUP BY 1"))
        assert finals == dict.fromkeys(created, 1), finals
        metrics = httpx.get(f"{other.url}/metrics", timeout=10).text
        assert f'kayenta_replica_judgements_total{{replica="{other.name}"' in metrics
        assert "kayenta_schedule_lateness_seconds_bucket" in metrics
        assert "kayenta_dispatch_queue_depth" in metrics
    assert time.monotonic() - began < 90


def test_replicas_applying_the_schema_together_do_not_race(database: str) -> None:
    conninfo = libpq_url(database)
    results: list[bool | BaseException] = []

    def apply() -> None:
        try:
            results.append(ensure_schema(conninfo))
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=apply) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results, key=str) == [False, False, True], results  # once applied, then found
