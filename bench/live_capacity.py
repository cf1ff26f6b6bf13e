"""Capacity of live analyses: judgements per second and lateness, embedded against replicas.

For each setup, ``N`` live analyses of ``M`` metrics (demo source, generated data) run at one
interval, their starts spread evenly over one interval so their intervals fall due at a steady
rate (``N / interval`` a second). Each setup is real ``kayenta-py serve`` processes on a fresh
database:

* ``embedded``: SQLite, one process, the in-process APScheduler (the single-instance default);
* ``pg-1``: PostgreSQL, one replica, procrastinate jobs;
* ``pg-3``: PostgreSQL, three replicas sharing the jobs.

The analyses are created through the HTTP API (round-robin over the replicas); the figures come
from the database afterwards: every stored interval's ``judged_ts - due_ts`` (its lateness:
fetch, judge and store included) and, over the steady window (from the first interval due to
the last), the judgements stored per second. An interval not stored by the end counts as
unjudged (its lateness is not known: the table says how many). Ratios are against ``embedded``.

The issue's target: 2,000 analyses of 10 metrics at a 1-minute interval, p99 lateness <= 5 s on
one 2-core instance, near-linear with replicas. Scale it down to run in a few minutes::

    .venv/bin/python bench/live_capacity.py                           # 2000 x 10 metrics, 60 s
    .venv/bin/python bench/live_capacity.py --analyses 300 --interval 20 --intervals 3

The three replicas share this machine's cores, so ``pg-3`` measures contention for the same CPUs
plus the coordination cost, not the scaling of three instances on three machines; pass
``--cpus`` to pin every process to some cores (``taskset``) and see what one instance's share
gives. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN = os.environ.get("KAYENTA_BENCH_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
METRIC_KINDS = (
    ("error-ratio", "errors"),
    ("p50-latency", "latency"),
    ("p99-latency", "latency"),
    ("p95-latency", "latency"),
    ("cpu-utilization", "saturation"),
    ("memory-utilization", "saturation"),
    ("orders-per-minute", "business"),
    ("checkout-conversion", "business"),
    ("requests-per-second", "custom"),
    ("response-time", "latency"),
)


@dataclass
class Figures:
    """One setup's outcome."""

    name: str
    replicas: int
    expected: int
    stored: int
    rate: float
    median: float
    p99: float
    worst: float
    mode: str


def config(metrics: int, mode: str | None = None) -> dict[str, Any]:
    """A native config of ``metrics`` metrics the demo source serves (kinds cycle when more than 10).

    In mode sequential the error ratios are judged as series (``sequential-rank``): the demo source
    serves no request counts for ``sequential-count``'s ``traffic_query``.
    """
    chosen = [METRIC_KINDS[i % len(METRIC_KINDS)] for i in range(metrics)]
    ranked = {"judge": {"type": "sequential-rank"}} if mode == "sequential" else {}
    return {
        "name": "capacity",
        "thresholds": {"pass": 95, "marginal": 75},
        "metrics": [
            {
                "name": name if i < len(METRIC_KINDS) else f"{name}-{i}",
                "kind": kind,
                **({"direction": "decrease"} if kind == "business" else {}),
                **(ranked if kind == "errors" else {}),
            }
            for i, (name, kind) in enumerate(chosen)
        ],
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def fresh_database(kind: str, workdir: Path) -> Iterator[str]:
    """Yield the URL of an empty SQLite file or PostgreSQL database (dropped afterwards)."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'capacity.db'}"
        return
    name = f"kayenta_capacity_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"), {"n": name}
            )
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


class Replica:
    """One ``kayenta-py serve`` process."""

    def __init__(self, url: str, name: str, workdir: Path, args: argparse.Namespace, dispatch: str) -> None:
        self.port = free_port()
        self.name = name
        self.log = (workdir / f"{name}.log").open("w")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(workdir),
            "KAYENTA_DATABASE_URL": url,
            "KAYENTA_DATA_DIR": str(workdir),
            "KAYENTA_DEFAULT_SOURCE": "demo",
            "KAYENTA_DISPATCH": dispatch,
            "KAYENTA_REPLICA_ID": name,
            "KAYENTA_DISPATCH_CONCURRENCY": str(args.concurrency),
            "KAYENTA_SOURCE_WORKERS": str(args.concurrency),
            "KAYENTA_MAX_INTERVALS": "100000",
        }
        if args.poll is not None:
            env["KAYENTA_DISPATCH_POLL_INTERVAL"] = str(args.poll)
        command = [str(Path(sys.executable).with_name("kayenta-py")), "serve", "--port", str(self.port)]
        command += ["--log-level", "warning"]
        if args.cpus:
            command = ["taskset", "-c", args.cpus, *command]
        self.process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"{self.name} exited with {self.process.returncode}; see {self.log.name}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        raise SystemExit(f"{self.name} not ready within {timeout} s; see {self.log.name}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def create_analyses(replicas: list[Replica], args: argparse.Namespace, first_start: float) -> str:
    """POST the analyses, starts spread evenly over one interval from ``first_start``; return the mode."""
    body = config(args.metrics, args.mode)

    def post(i: int) -> str:
        start = first_start + args.interval * i / args.analyses
        request: dict[str, Any] = {
            "config": body,
            "baseline_scope": "baseline",
            "canary_scope": f"canary-{i}",
            "source": "demo",
            "start": datetime.fromtimestamp(start, UTC).isoformat(),
            "lifetime": args.interval * args.intervals,
            "interval": args.interval,
            "step": args.step,
            "fail_fast": False,  # every analysis runs all its intervals: a steady load
        }
        if args.mode:
            request["mode"] = args.mode
        if args.lookback:
            request["lookback"] = args.lookback
        replica = replicas[i % len(replicas)]
        for attempt in range(5):
            try:
                answer = httpx.post(f"{replica.url}/api/v1/analyses", json=request, timeout=60)
            except httpx.TransportError:
                time.sleep(1 + attempt)
                continue
            if answer.status_code == 201:
                return str(answer.json().get("mode", "?"))
            raise SystemExit(f"creating analysis {i}: HTTP {answer.status_code}: {answer.text[:500]}")
        raise SystemExit(f"creating analysis {i}: the service did not answer")

    with ThreadPoolExecutor(max_workers=8) as pool:
        modes = set(pool.map(post, range(args.analyses)))
    return ",".join(sorted(modes))


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_setup(name: str, database: str, replicas: int, args: argparse.Namespace) -> Figures:
    """Start the replicas on a fresh database, run the analyses through, return the figures."""
    dispatch = "embedded" if database == "sqlite" else "procrastinate"
    workdir = Path(tempfile.mkdtemp(prefix=f"capacity-{name}-"))
    try:
        with fresh_database(database, workdir) as url:
            started = [Replica(url, f"{name}-r{i}", workdir, args, dispatch) for i in range(replicas)]
            try:
                for replica in started:
                    replica.wait_ready()
                # Creation takes a while at 2,000 analyses: the first start leaves room for it.
                lead = args.lead if args.lead is not None else max(10.0, args.analyses * 0.03)
                first_start = time.time() + lead
                began = time.monotonic()
                mode = create_analyses(started, args, first_start)
                created_in = time.monotonic() - began
                if time.time() > first_start + args.interval:  # the first intervals fell due meanwhile
                    print(f"  {name}: creating took {created_in:.0f} s, past the first due time", flush=True)
                last_due = first_start + args.interval * (1 + args.intervals)
                time.sleep(max(0.0, last_due + args.drain - time.time()))
                figures = measure(name, url, replicas, args, first_start, mode)
            finally:
                for replica in started:
                    replica.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return figures


def measure(
    name: str, url: str, replicas: int, args: argparse.Namespace, first_start: float, mode: str
) -> Figures:
    """Read every stored interval's lateness and the steady-window rate from the database.

    An interval due but not stored by now counts with ``now - due`` (a lower bound of its
    lateness) in the ``p99`` column; ``median`` and ``max`` are of the stored ones.
    """
    engine = create_engine(url)
    now = time.time()
    try:
        with engine.connect() as connection:
            rows = connection.execute(text("SELECT due_ts, judged_ts FROM intervals")).all()
            total = connection.execute(text("SELECT sum(intervals_total) FROM analyses")).scalar_one()
            schedules = connection.execute(
                text("SELECT start_ts + warmup_s, interval_s, intervals_total FROM analyses")
            ).all()
    finally:
        engine.dispose()
    lateness = [judged - due for due, judged in rows]
    due_times = sorted(base + (i + 1) * every for base, every, count in schedules for i in range(count))
    stored_dues = sorted(due for due, _ in rows)
    unjudged = [now - due for due in due_times[len(stored_dues) :] if due <= now]
    window = (first_start + args.interval, first_start + args.interval * (1 + args.intervals))
    in_window = sum(1 for _, judged in rows if window[0] <= judged < window[1])
    return Figures(
        name=name,
        replicas=replicas,
        expected=int(total or 0),
        stored=len(rows),
        rate=in_window / (window[1] - window[0]),
        median=statistics.median(lateness) if lateness else float("nan"),
        p99=quantile(lateness + unjudged, 0.99),
        worst=max(lateness) if lateness else float("nan"),
        mode=mode,
    )


def table(results: list[Figures], args: argparse.Namespace) -> str:
    offered = args.analyses / args.interval
    base = next((r for r in results if r.name == "embedded"), None)
    lines = [
        f"{args.analyses} analyses x {args.metrics} metrics, interval {args.interval:g} s, "
        f"{args.intervals} intervals each, step {args.step:g} s; offered {offered:.1f} judgements/s",
        "",
        "| setup | replicas | mode | stored / expected | judgements/s | x embedded | lateness median s "
        "| p99 s | x embedded | max s (stored) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rate_ratio = f"{r.rate / base.rate:.2f}" if base and base.rate else "-"
        p99_ratio = f"{r.p99 / base.p99:.2f}" if base and base.p99 else "-"
        lines.append(
            f"| {r.name} | {r.replicas} | {r.mode} | {r.stored} / {r.expected} | {r.rate:.1f} | {rate_ratio} "
            f"| {r.median:.2f} | {r.p99:.2f} | {p99_ratio} | {r.worst:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--analyses", type=int, default=2000, help="concurrent live analyses (default 2000)")
    parser.add_argument("--metrics", type=int, default=10, help="metrics per analysis (default 10)")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between intervals (default 60)")
    parser.add_argument("--intervals", type=int, default=3, help="intervals per analysis (default 3)")
    parser.add_argument("--step", type=float, default=10.0, help="seconds between metric points (default 10)")
    parser.add_argument(
        "--lookback", type=float, default=None, help="seconds per window (default: cumulative)"
    )
    parser.add_argument(
        "--mode",
        choices=("fixed", "sequential"),
        default="fixed",
        help="fixed (default: every interval judged, a steady load) or sequential (may decide early)",
    )
    parser.add_argument("--concurrency", type=int, default=8, help="intervals judged at once per replica")
    parser.add_argument("--setups", default="embedded,pg-1,pg-3", help="comma-separated: embedded,pg-1,pg-3")
    parser.add_argument("--lead", type=float, default=None, help="seconds from creation to the first start")
    parser.add_argument("--drain", type=float, default=15.0, help="seconds after the last due time to wait")
    parser.add_argument("--poll", type=float, default=None, help="procrastinate's poll seconds (default 1)")
    parser.add_argument("--cpus", default=None, help="pin every process to these cores (taskset -c)")
    args = parser.parse_args(argv)
    setups = {"embedded": ("sqlite", 1), "pg-1": ("postgresql", 1), "pg-3": ("postgresql", 3)}
    results = []
    for name in args.setups.split(","):
        database, replicas = setups[name]
        print(f"running {name} ...", flush=True)
        results.append(run_setup(name, database, replicas, args))
        print(table(results, args), flush=True)
    print()
    print(table(results, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
