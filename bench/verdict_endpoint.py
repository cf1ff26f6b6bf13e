"""The verdict endpoint under load, against a bare ASGI app answering a constant JSON document.

Stores ``--analyses`` analyses (default 1,000) in a temporary SQLite database
through ``Store.create_analysis`` and ends most of them with
``Store.finish_analysis`` (pass, marginal, fail and cancelled; the rest stay
pending), then serves, each in its own child process under the same uvicorn
settings on a free loopback port:

(a) a bare ASGI app answering every request with one constant JSON document
    shaped like a verdict (no framework, no database);
(b) ``kayenta_py.http.app.create_app(service)``, the real app, whose
    ``GET /api/v1/analyses/{id}/verdict`` reads the analysis from the database.
    The analysis runner (APScheduler) is not started: no analysis is judged
    while the endpoint is timed.

A minimal HTTP/1.1 keep-alive client on asyncio (``--concurrency``
connections, each sending its next request as soon as the previous answer has
been read) sends ``--requests`` requests for random ids among the stored ones
after ``--warmup`` requests that are not counted; each request's latency is
taken from writing the request to reading the last byte of the answer. The
timed runs alternate (a, b, then b, a, ...) ``--repeats`` times. Every answer
is checked: status 200 and, for (b), the verdict, completeness and score stored
for that id. Client and servers share the machine's cores. Run from the
project root::

    .venv/bin/python bench/verdict_endpoint.py                         # 5000 requests, 16 connections
    .venv/bin/python bench/verdict_endpoint.py --concurrency 1         # latency without queueing
    .venv/bin/python bench/verdict_endpoint.py --auth                  # with a bearer token, as Argo sends it
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import random
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# What (a) answers: the size and shape of a real verdict document.
CONSTANT_DOCUMENT = json.dumps(
    {
        "verdict": "pass",
        "score": 100.0,
        "complete": True,
        "reason": "final interval 30 of 30: pass: score 100.00 >= pass threshold 95.00",
    }
).encode()

# The share of each outcome among the stored analyses: (status, verdict, weight).
OUTCOMES: tuple[tuple[str, str, int], ...] = (
    ("running", "pending", 20),
    ("completed", "pass", 50),
    ("completed", "marginal", 10),
    ("completed", "fail", 15),
    ("cancelled", "fail", 5),
)

# A config body of realistic size: the endpoint loads the whole analysis row, this JSON included.
CONFIG_BODY: dict[str, Any] = {
    "name": "checkout",
    "metrics": [
        {
            "name": "error-ratio",
            "kind": "errors",
            "critical": True,
            "query": 'sum(rate(http_requests_total{version="${scope}",code=~"5.."}[1m]))'
            ' / sum(rate(http_requests_total{version="${scope}"}[1m]))',
        },
        {
            "name": "p99-latency",
            "kind": "latency",
            "query": "histogram_quantile(0.99, sum by (le) "
            '(rate(http_request_duration_seconds_bucket{version="${scope}"}[1m])))',
        },
        {
            "name": "p50-latency",
            "kind": "latency",
            "query": "histogram_quantile(0.5, sum by (le) "
            '(rate(http_request_duration_seconds_bucket{version="${scope}"}[1m])))',
        },
        {
            "name": "cpu",
            "kind": "saturation",
            "query": 'avg(rate(container_cpu_usage_seconds_total{version="${scope}"}[1m]))',
        },
    ],
}


# ---------------------------------------------------------------- the servers (child processes)


async def bare_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answer every HTTP request with ``CONSTANT_DOCUMENT``; support the lifespan protocol."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(CONSTANT_DOCUMENT)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": CONSTANT_DOCUMENT})


def uvicorn_settings() -> dict[str, Any]:
    """The uvicorn settings both apps are served with (loop and http: uvicorn's ``auto``)."""
    return {"log_level": "warning", "access_log": False, "lifespan": "on"}


def serve(kind: str, fd: int, data_dir: str, database_url: str, token: str | None) -> int:
    """Serve app ``kind`` (``bare`` or ``verdict``) with uvicorn on the inherited listening socket ``fd``."""
    import uvicorn

    app: Any
    if kind == "bare":
        app = bare_app
    else:
        from pydantic import SecretStr

        from kayenta_py.http.app import create_app
        from kayenta_py.service.analyses import Service
        from kayenta_py.service.settings import Settings

        settings = Settings(
            data_dir=Path(data_dir),
            database_url=database_url,
            api_tokens=SecretStr(f"read:{token}") if token else None,
        )
        # manage_lifecycle=False: the app does not start the service, so the runner stays idle.
        app = create_app(Service(settings), manage_lifecycle=False)
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_settings()))
    server.run(sockets=[socket.socket(fileno=fd)])
    return 0


# ---------------------------------------------------------------- the stored analyses


@dataclass(frozen=True)
class Stored:
    """What the verdict endpoint must answer for one analysis."""

    verdict: str
    complete: bool
    score: float | None


def store_analyses(count: int, data_dir: Path, database_url: str, seed: int) -> dict[str, Stored]:
    """Create ``count`` analyses and end most of them; return what each one's verdict must be."""
    from kayenta_py.service.analyses import Service
    from kayenta_py.service.settings import Settings

    service = Service(Settings(data_dir=data_dir, database_url=database_url, api_tokens=None))
    store = service.store
    store.migrate()
    rng = random.Random(seed)
    weights = sum(weight for _, _, weight in OUTCOMES)
    outcomes = [
        (status, verdict)
        for status, verdict, weight in OUTCOMES
        for _ in range(round(count * weight / weights))
    ]
    outcomes = (outcomes + [("running", "pending")] * count)[:count]
    rng.shuffle(outcomes)
    expected: dict[str, Stored] = {}
    now = time.time()
    for index, (status, verdict) in enumerate(outcomes):
        record = store.create_analysis(
            kind="native",
            config_name="checkout",
            config_version=1,
            config_body=CONFIG_BODY,
            baseline_scope="checkout-stable",
            canary_scope=f"checkout-canary-{index}",
            location="",
            scope_params={"env": "prod"},
            source="prometheus",
            start_ts=now - 1800.0,
            lifetime_s=1800.0,
            interval_s=60.0,
            warmup_s=0.0,
            lookback_s=None,
            step_s=60.0,
            thresholds={"pass": 95.0, "marginal": 75.0},
            fail_fast=True,
            intervals_total=30,
            extra={},
        )
        if status == "running":
            expected[record.id] = Stored("pending", False, None)
            continue
        score = None if status == "cancelled" else _score(verdict, rng)
        reason = (
            "cancelled: the analysis was stopped before its end, so it has no passing verdict"
            if status == "cancelled"
            else f"final interval 30 of 30: {verdict}: score {score}"
        )
        store.finish_analysis(record.id, status, verdict, score, reason)
        expected[record.id] = Stored(verdict, True, score)
    store.close()
    return expected


def _score(verdict: str, rng: random.Random) -> float:
    if verdict == "pass":
        return round(rng.uniform(95.0, 100.0), 2)
    if verdict == "marginal":
        return round(rng.uniform(75.5, 94.5), 2)
    return round(rng.uniform(0.0, 75.0), 2)


# ---------------------------------------------------------------- the client


@dataclass
class RunResult:
    """One timed run: wall seconds, and per request its latency (ns), status and body."""

    kind: str
    seconds: float
    latencies_ns: list[int]
    statuses: list[int]
    bodies: list[bytes]

    @property
    def rate(self) -> float:
        """Requests per second."""
        return len(self.latencies_ns) / self.seconds


def request_bytes(port: int, analysis_id: str, token: str | None) -> bytes:
    """The bytes of one ``GET .../verdict`` request (HTTP/1.1, keep-alive)."""
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    return (
        f"GET /api/v1/analyses/{analysis_id}/verdict HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\nAccept: application/json\r\n{auth}\r\n"
    ).encode()


def parse_head(head: bytes) -> tuple[int, int]:
    """Return the status and Content-Length of a response head (``...\\r\\n\\r\\n``)."""
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return status, int(value)
    raise RuntimeError(f"answer without Content-Length: {head!r}")


async def load(
    port: int, requests: Sequence[bytes], concurrency: int
) -> tuple[float, list[int], list[int], list[bytes]]:
    """Send ``requests`` over ``concurrency`` keep-alive connections.

    Return the wall seconds, and per request its latency (ns), status and body.
    """
    count = len(requests)
    latencies = [0] * count
    statuses = [0] * count
    bodies = [b""] * count
    indices = iter(range(count))  # shared by the workers: each takes the next request to send
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(concurrency)]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for i in indices:
            began = time.perf_counter_ns()
            writer.write(requests[i])
            status, length = parse_head(await reader.readuntil(b"\r\n\r\n"))
            body = await reader.readexactly(length)
            latencies[i] = time.perf_counter_ns() - began
            statuses[i], bodies[i] = status, body

    began = time.perf_counter()
    await asyncio.gather(*(worker(reader, writer) for reader, writer in connections))
    seconds = time.perf_counter() - began
    for _, writer in connections:
        writer.close()
        await writer.wait_closed()
    return seconds, latencies, statuses, bodies


def event_loop_factory() -> tuple[Callable[[], asyncio.AbstractEventLoop] | None, str]:
    """The client's event loop: uvloop when installed (as uvicorn's ``auto`` picks for the servers)."""
    try:
        import uvloop
    except ImportError:
        return None, "asyncio"
    return uvloop.new_event_loop, "uvloop"


def check(result: RunResult, ids: Sequence[str], expected: dict[str, Stored]) -> str | None:
    """Return a description of the first wrong answer of a run, or None if all are right."""
    for i, (status, body) in enumerate(zip(result.statuses, result.bodies, strict=True)):
        if status != 200:
            return f"request {i} ({ids[i]}): status {status}: {body[:200]!r}"
        if result.kind == "bare":
            if body != CONSTANT_DOCUMENT:
                return f"request {i}: unexpected body {body[:200]!r}"
            continue
        document = json.loads(body)
        want = expected[ids[i]]
        got = Stored(document["verdict"], document["complete"], document["score"])
        if got != want:
            return f"request {i} ({ids[i]}): got {got}, stored {want}"
    return None


# ---------------------------------------------------------------- orchestration


@dataclass
class Server:
    """A child process serving one app."""

    kind: str
    port: int
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        """Ask uvicorn to shut down (SIGTERM), then kill it if it lingers."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(kind: str, data_dir: Path, database_url: str, token: str | None) -> Server:
    """Start a child process serving ``kind`` on a listening socket bound here to a free loopback port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = int(sock.getsockname()[1])
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--serve",
        kind,
        "--fd",
        str(sock.fileno()),
        "--data-dir",
        str(data_dir),
        "--database-url",
        database_url,
    ]
    environment = dict(os.environ)
    if token:
        environment["KAYENTA_BENCH_TOKEN"] = token  # not on the command line, where ps would show it
    process = subprocess.Popen(command, pass_fds=[sock.fileno()], env=environment)
    sock.close()  # the child holds its own copy
    return Server(kind, port, process)


def wait_ready(server: Server, path: str, token: str | None, timeout: float = 60.0) -> float:
    """Wait until ``server`` answers ``path`` with 200; return the seconds it took."""
    began = time.perf_counter()
    request = urllib.request.Request(f"http://127.0.0.1:{server.port}{path}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"the {server.kind} server exited with status {server.process.returncode}")
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                if answer.status == 200:
                    return time.perf_counter() - began
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.perf_counter() - began > timeout:
            raise RuntimeError(f"the {server.kind} server did not answer within {timeout:.0f} s")
        time.sleep(0.05)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of sorted values, nearest rank."""
    rank = max(1, math.ceil(q * len(sorted_values)))
    return sorted_values[rank - 1]


def usable_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse the command line (the ``--serve`` options are internal: the child processes use them)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=5000, help="timed requests per run (default 5000)")
    parser.add_argument("--concurrency", type=int, default=16, help="keep-alive connections (default 16)")
    parser.add_argument("--warmup", type=int, default=500, help="uncounted requests before each run (500)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each app, alternating (3)")
    parser.add_argument("--analyses", type=int, default=1000, help="stored analyses (default 1000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the outcomes and request ids (7)")
    parser.add_argument(
        "--auth", action="store_true", help="configure a read token and send it (as Argo Rollouts does)"
    )
    parser.add_argument("--serve", choices=("bare", "verdict"), help=argparse.SUPPRESS)
    parser.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("requests", "concurrency", "repeats", "analyses"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must not be negative")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark (or, with the internal ``--serve``, be one of its servers)."""
    args = parse_args(argv)
    if args.serve:
        return serve(
            args.serve, args.fd, args.data_dir, args.database_url, os.environ.get("KAYENTA_BENCH_TOKEN")
        )

    import uvicorn

    token = secrets.token_urlsafe(24) if args.auth else None
    loop_factory, loop_name = event_loop_factory()
    server_loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    server_http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    results: dict[str, list[RunResult]] | None = None
    with tempfile.TemporaryDirectory(prefix="kayenta-bench-") as tmp:
        data_dir = Path(tmp)
        database_url = f"sqlite:///{data_dir / 'kayenta.db'}"
        began = time.perf_counter()
        expected = store_analyses(args.analyses, data_dir, database_url, args.seed)
        stored_s = time.perf_counter() - began
        ids = sorted(expected)
        tally = {
            v: sum(1 for s in expected.values() if s.verdict == v)
            for v in ("pass", "marginal", "fail", "pending")
        }
        print(
            f"verdict endpoint: {len(ids)} stored analyses in SQLite (WAL), verdicts "
            + ", ".join(f"{v} {n}" for v, n in tally.items())
            + f"; stored in {stored_s:.2f} s (not timed below)"
        )
        print(
            f"server: uvicorn {uvicorn.__version__} (loop {server_loop}, http {server_http}, "
            "log_level warning, access_log off), one child process per app; analysis runner not started"
        )
        print(
            f"client: HTTP/1.1 keep-alive over asyncio ({loop_name}), {args.concurrency} connections, "
            f"{args.requests} requests per run after {args.warmup} uncounted, random ids among the "
            f"{len(ids)}; bearer token {'sent' if token else 'off'}"
        )
        print(
            f"cores: os.cpu_count() = {os.cpu_count()}, usable: {usable_cores()} "
            "(the client and the server under test share them)"
        )

        servers = {kind: start_server(kind, data_dir, database_url, token) for kind in ("bare", "verdict")}
        try:
            ready = {
                "bare": wait_ready(servers["bare"], "/", token),
                "verdict": wait_ready(servers["verdict"], f"/api/v1/analyses/{ids[0]}/verdict", token),
            }
            print(f"servers ready in {ready['bare']:.2f} s (a) and {ready['verdict']:.2f} s (b)")
            with asyncio.Runner(loop_factory=loop_factory) as runner:
                # Every stored analysis once, through (b), before timing: all must answer as stored.
                port = servers["verdict"].port
                seconds, latencies, statuses, bodies = runner.run(
                    load(port, [request_bytes(port, i, token) for i in ids], args.concurrency)
                )
                failure = check(RunResult("verdict", seconds, latencies, statuses, bodies), ids, expected)
                if failure:
                    print(f"FAIL: {failure}", file=sys.stderr)
                    return 1
                print(f"check: all {len(ids)} stored analyses answered as stored (not timed)")
                results = run_rounds(runner, servers, ids, expected, args, token)
        finally:
            for server in servers.values():
                server.stop()
    if results is None:
        return 1
    report(results)
    return 0


def run_rounds(
    runner: asyncio.Runner,
    servers: dict[str, Server],
    ids: Sequence[str],
    expected: dict[str, Stored],
    args: argparse.Namespace,
    token: str | None,
) -> dict[str, list[RunResult]] | None:
    """The timed runs, alternating the order each round; None if an answer was wrong."""
    rng = random.Random(args.seed)
    results: dict[str, list[RunResult]] = {"bare": [], "verdict": []}
    for round_index in range(args.repeats):
        # The same random ids for both apps within a round.
        warm_ids = rng.choices(ids, k=args.warmup)
        timed_ids = rng.choices(ids, k=args.requests)
        order = ("bare", "verdict") if round_index % 2 == 0 else ("verdict", "bare")
        for kind in order:
            port = servers[kind].port
            if warm_ids:
                runner.run(load(port, [request_bytes(port, i, token) for i in warm_ids], args.concurrency))
            requests = [request_bytes(port, i, token) for i in timed_ids]
            seconds, latencies, statuses, bodies = runner.run(load(port, requests, args.concurrency))
            result = RunResult(kind, seconds, latencies, statuses, bodies)
            failure = check(result, timed_ids, expected)
            if failure:
                print(f"FAIL: ({kind}) {failure}", file=sys.stderr)
                return None
            results[kind].append(result)
    return results


def report(results: dict[str, list[RunResult]]) -> None:
    """Print each run, then req/s (median of the runs) and p50/p99 latency (all timed requests)."""
    labels = {"bare": "(a) bare ASGI, constant JSON", "verdict": "(b) verdict endpoint"}
    summary: dict[str, tuple[float, float, float]] = {}
    for kind in ("bare", "verdict"):
        runs = results[kind]
        print(f"{labels[kind]} runs, req/s in order: " + " ".join(f"{r.rate:.0f}" for r in runs))
        latencies = sorted(ns / 1e6 for r in runs for ns in r.latencies_ns)
        summary[kind] = (
            statistics.median(r.rate for r in runs),
            percentile(latencies, 0.50),
            percentile(latencies, 0.99),
        )
    print(f"{'':<32}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for kind in ("bare", "verdict"):
        rate, p50, p99 = summary[kind]
        print(f"{labels[kind]:<32}{rate:>10.0f}{p50:>10.2f}{p99:>10.2f}")
    (rate_a, p50_a, p99_a), (rate_b, p50_b, p99_b) = summary["bare"], summary["verdict"]
    print(
        f"{'ratio (a)/(b) req/s; (b)/(a) ms':<32}{rate_a / rate_b:>9.1f}x{p50_b / p50_a:>9.1f}x"
        f"{p99_b / p99_a:>9.1f}x"
    )
    count = len(results["bare"])
    print(
        f"(req/s: median of {count} runs; p50/p99: over all {count * len(results['bare'][0].latencies_ns)} "
        "timed requests of each app; client and server share the cores above)"
    )


if __name__ == "__main__":
    sys.exit(main())
