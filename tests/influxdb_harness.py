"""A real InfluxDB 1.x for tests: Debian's ``influxd`` on free loopback ports, temp dirs, line protocol.

No mocks. :class:`InfluxDB` writes a config whose HTTP, RPC (``bind-address``) and data/meta/WAL
paths are its own, starts ``influxd``, waits for ``/ping``, and removes everything on exit::

    with InfluxDB() as influx:
        influx.create_database("canary")
        influx.write("canary", lines)  # line protocol, timestamps in seconds
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable

import requests
from prometheus_harness import free_port
from server_process import VERSIONS, ServerProcesses, canary_traffic, require_installed

__all__ = ["VERSIONS", "InfluxDB", "canary_lines", "ensure_influxd"]


def ensure_influxd() -> None:
    """Skip (locally) or fail (under CI) when ``influxd`` is not installed."""
    require_installed([] if shutil.which("influxd") else ["influxdb"], "apt-get install -y influxdb")


class InfluxDB(ServerProcesses):
    """An ``influxd`` process with its own config, ports and temp dirs, as a context manager."""

    name = "influxdb"

    def __init__(self, ready_timeout: float = 30.0) -> None:
        super().__init__(ready_timeout)
        self.port = 0
        self.url = ""

    def _configure(self) -> None:
        self.port = free_port()
        rpc = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        (self.tmp / "influxdb.conf").write_text(
            f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{self.tmp / "meta"}"
[data]
  dir = "{self.tmp / "data"}"
  wal-dir = "{self.tmp / "wal"}"
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

    def _launch(self) -> None:
        self.spawn("influxd", ["influxd", "-config", str(self.tmp / "influxdb.conf")])

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/ping", timeout=1.0).status_code == 204
        except requests.RequestException:
            return False

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


def canary_lines(start: float, minutes: int = 60, step_s: int = 10, seed: int = 3) -> list[str]:
    """Line protocol of :func:`server_process.canary_traffic`: ``requests`` with latency_ms, errors, count."""
    return [
        f"requests,version={v.version},region=eu latency_ms={lat:.4f},errors={e}i,count={c}i {int(t)}"
        for v in canary_traffic(start, minutes, step_s, seed)
        for t, lat, e, c in zip(v.timestamps, v.latency_ms, v.errors, v.count, strict=True)
    ]
