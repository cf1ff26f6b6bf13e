"""What the tests' real servers share: processes on free loopback ports, temp dirs, logs, cleanup.

A harness subclasses :class:`ServerProcesses`: ``_configure`` picks its ports and writes its
config files in ``self.tmp``, ``_launch`` spawns its processes with :meth:`ServerProcesses.spawn`,
``_ready`` says whether they all answer. :meth:`start` retries on other ports when one was taken
between choosing it and binding it; the context manager stops the processes (SIGTERM, then
SIGKILL) and removes the temp dir. :func:`canary_traffic` is the data both the InfluxDB and the
Graphite tests write: a healthy pair of versions and a regressed one.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import numpy as np
import numpy.typing as npt
import pytest

__all__ = ["VERSIONS", "ServerProcesses", "VersionTraffic", "canary_traffic", "require_installed"]

VERSIONS = ("v1-base", "v1-canary", "v2-base", "v2-canary")  # v2-canary is regressed


def require_installed(missing: list[str], how: str) -> None:
    """Skip (locally) or fail (under CI) when ``missing`` names packages the tests need."""
    if not missing:
        return
    message = f"{' and '.join(missing)} not installed: the test command installs them ({how})"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message + "; set CI=1 to fail")


class ServerProcesses:
    """Server processes with their own ports, config files and temp dir, as a context manager."""

    name = "server"

    def __init__(self, ready_timeout: float = 30.0) -> None:
        self.ready_timeout = ready_timeout
        self.tmp = Path(tempfile.mkdtemp(prefix=f"kayenta-{self.name}-"))
        self._processes: list[subprocess.Popen[bytes]] = []
        self._logs: list[IO[bytes]] = []

    def _configure(self) -> None:
        """Choose ports and write config files (called before each start attempt)."""

    def _launch(self) -> None:
        """Spawn the processes (with :meth:`spawn`)."""
        raise NotImplementedError

    def _ready(self) -> bool:
        """Return whether every process answers."""
        raise NotImplementedError

    def spawn(self, log_name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        """Start one process, its output to ``<log_name>.log`` in the temp dir."""
        log = (self.tmp / f"{log_name}.log").open("wb")
        self._logs.append(log)
        self._processes.append(subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env))

    def start(self) -> None:
        """Configure, launch and wait until ready; another set of ports if one was taken."""
        for attempt in range(3):
            self._configure()
            self._launch()
            try:
                self._wait_ready()
                return
            except RuntimeError:
                logs = self.log_tails()
                self.stop()
                if "already in use" not in logs or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            for process in self._processes:
                if process.poll() is not None:
                    logs = self.log_tails()
                    raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{logs}")
            if self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} not ready in {self.ready_timeout:g} s:\n{self.log_tails()}")

    def log_tail(self, log_name: str, lines: int = 30) -> str:
        """The last ``lines`` of one process' log."""
        path = self.tmp / f"{log_name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def log_tails(self) -> str:
        """The last lines of every log, for an error message."""
        return "\n".join(self.log_tail(path.stem) for path in sorted(self.tmp.glob("*.log")))

    def stop(self) -> None:
        """Terminate the processes (SIGTERM, then SIGKILL); idempotent."""
        processes, self._processes = self._processes, []
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        for log in self._logs:
            log.close()
        self._logs = []

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
        shutil.rmtree(self.tmp, ignore_errors=True)


@dataclass(frozen=True)
class VersionTraffic:
    """One version's points: timestamps (s), latency (ms), errors and requests per point."""

    version: str
    timestamps: npt.NDArray[np.float64]
    latency_ms: npt.NDArray[np.float64]
    errors: npt.NDArray[np.int64]
    count: npt.NDArray[np.int64]


def canary_traffic(start: float, minutes: int = 60, step_s: int = 10, seed: int = 3) -> list[VersionTraffic]:
    """Traffic of :data:`VERSIONS` from ``start``, a point every ``step_s`` seconds.

    ``v1-base``/``v1-canary`` are a healthy pair (same distributions, other draws); ``v2-canary``
    is regressed against ``v2-base``: latency 1.6x, 5% errors instead of 0.1%.
    """
    timestamps = (start + np.arange(minutes * 60 // step_s) * step_s).astype(np.float64)
    shape = 1.0 + 0.15 * np.sin(2 * math.pi * (timestamps - start) / 1800.0)
    out = []
    for index, version in enumerate(VERSIONS):
        rng = np.random.default_rng([seed, index])
        regressed = version == "v2-canary"
        count = rng.poisson(500 * shape)
        errors = rng.binomial(count, 0.05 if regressed else 0.001)
        latency = 40.0 * (1.6 if regressed else 1.0) * shape * rng.lognormal(0.0, 0.1, len(timestamps))
        out.append(VersionTraffic(version, timestamps, latency, errors, count))
    return out
