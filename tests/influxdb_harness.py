"""A real InfluxDB 1.x for tests: Debian's ``influxd`` on free loopback ports, temp dirs, line protocol.

No mocks. :class:`InfluxDB` writes a config whose HTTP, RPC (``bind-address``) and data/meta/WAL
paths are its own, starts ``influxd``, waits for ``/ping``, and removes everything on exit::

    with InfluxDB() as influx:
        influx.create_database("canary")
        influx.write("canary", lines)  # line protocol, timestamps in seconds
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import numpy as np
import pytest
import requests
from prometheus_harness import free_port

__all__ = ["InfluxDB", "canary_lines", "ensure_influxd"]

VERSIONS = ("v1-base", "v1-canary", "v2-base", "v2-canary")  # v2-canary is regressed


def ensure_influxd() -> None:
    """Skip (locally) or fail (under CI) when ``influxd`` is not installed."""
    if shutil.which("influxd") is not None:
        return
    message = "influxd not found on PATH: the test command installs it (apt-get install -y influxdb)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message + "; set CI=1 to fail")


class InfluxDB:
    """An ``influxd`` process with its own config, ports and temp dirs, as a context manager."""

    def __init__(self, ready_timeout: float = 30.0) -> None:
        self.ready_timeout = ready_timeout
        self._tmp = Path(tempfile.mkdtemp(prefix="kayenta-influxdb-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.port = 0
        self.url = ""

    def _config(self) -> Path:
        self.port = free_port()
        rpc = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        path = self._tmp / "influxdb.conf"
        path.write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{self._tmp / "meta"}"
[data]
  dir = "{self._tmp / "data"}"
  wal-dir = "{self._tmp / "wal"}"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:{self.port}"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
""",
            encoding="utf-8",
        )
        return path

    def start(self) -> None:
        """Start influxd (another pair of ports if the first was taken) and wait for ``/ping``."""
        for attempt in range(3):
            config = self._config()
            self._log = (self._tmp / "influxd.log").open("wb")
            self._process = subprocess.Popen(
                ["influxd", "-config", str(config)], stdout=self._log, stderr=subprocess.STDOUT
            )
            try:
                self._wait_ready()
                return
            except RuntimeError:
                log = self.log_tail()
                self.stop()
                if "address already in use" not in log or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"influxd exited with {self._process.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/ping", timeout=1.0).status_code == 204:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"influxd at {self.url} not ready in {self.ready_timeout:g} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        path = self._tmp / "influxd.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def create_database(self, name: str) -> None:
        """``CREATE DATABASE`` (the name is the test's own, a plain identifier)."""
        answer = requests.post(f"{self.url}/query", data={"q": f'CREATE DATABASE "{name}"'}, timeout=10)
        answer.raise_for_status()

    def write(self, database: str, lines: Iterable[str]) -> None:
        """Write line-protocol points (timestamps in seconds), in batches."""
        batch: list[str] = []
        for line in [*lines, None]:
            if line is not None:
                batch.append(line)
            if batch and (line is None or len(batch) >= 5000):
                answer = requests.post(
                    f"{self.url}/write",
                    params={"db": database, "precision": "s"},
                    data="\n".join(batch).encode(),
                    timeout=30,
                )
                assert answer.status_code == 204, answer.text
                batch = []

    def stop(self) -> None:
        """Terminate influxd (SIGTERM, then SIGKILL); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)


def canary_lines(start: float, minutes: int = 60, step_s: int = 10, seed: int = 3) -> list[str]:
    """Line protocol for :data:`VERSIONS`: ``requests`` with fields latency_ms, errors, count.

    ``v1-base``/``v1-canary`` are a healthy pair (same distributions, other draws); ``v2-canary``
    is regressed against ``v2-base``: latency 1.6x, 5% errors instead of 0.1%.
    """
    lines: list[str] = []
    timestamps = start + np.arange(minutes * 60 // step_s) * step_s
    shape = 1.0 + 0.15 * np.sin(2 * math.pi * (timestamps - start) / 1800.0)
    for index, version in enumerate(VERSIONS):
        rng = np.random.default_rng([seed, index])
        regressed = version == "v2-canary"
        count = rng.poisson(500 * shape)
        errors = rng.binomial(count, 0.05 if regressed else 0.001)
        latency = 40.0 * (1.6 if regressed else 1.0) * shape * rng.lognormal(0.0, 0.1, len(timestamps))
        lines.extend(
            f"requests,version={version},region=eu latency_ms={lat:.4f},errors={e}i,count={c}i {int(t)}"
            for t, lat, e, c in zip(timestamps, latency, errors, count, strict=True)
        )
    return lines
