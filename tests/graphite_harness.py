"""A real Graphite for tests: Debian's carbon-cache and graphite-web on free loopback ports, temp storage.

No mocks. :class:`Graphite` writes a carbon config (line, pickle and cache-query ports of its own, a
temp whisper dir, 10 s points kept 2 days) and graphite-web settings (the same storage, carbon's
cache as CARBONLINK so points are visible before they are flushed), starts ``carbon-cache`` and
graphite-web's WSGI application under a small threaded server with Debian's Python (where
graphite-web and Django live), and removes everything on exit::

    with Graphite() as graphite:
        graphite.send(["app.v1.latency_ms 41.5 1796266800"])  # the plaintext protocol
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time

import requests
from prometheus_harness import free_port
from server_process import VERSIONS, ServerProcesses, canary_traffic, require_installed

__all__ = ["VERSIONS", "Graphite", "canary_lines", "ensure_graphite"]

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's graphite-web and Django are installed for it

_SERVER = """
import os, sys
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
os.environ["DJANGO_SETTINGS_MODULE"] = "graphite.settings"
os.environ["GRAPHITE_SETTINGS_MODULE"] = "kayenta_graphite_settings"
from graphite.wsgi import application
class Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
make_server("127.0.0.1", int(sys.argv[1]), application, Server, Quiet).serve_forever()
"""


def ensure_graphite() -> None:
    """Skip (locally) or fail (under CI) when carbon-cache or graphite-web is not installed."""
    missing = [] if shutil.which("carbon-cache") else ["graphite-carbon"]
    code = "import django, importlib.util, sys; sys.exit(importlib.util.find_spec('graphite.wsgi') is None)"
    probe = [SYSTEM_PYTHON, "-c", code] if os.path.exists(SYSTEM_PYTHON) else None
    if probe is None or subprocess.run(probe, capture_output=True, check=False, timeout=30).returncode:
        missing.append("graphite-web")
    require_installed(missing, "apt-get install -y graphite-carbon graphite-web")


class Graphite(ServerProcesses):
    """carbon-cache and graphite-web with their own ports and temp storage, as a context manager."""

    name = "graphite"

    def __init__(self, ready_timeout: float = 30.0) -> None:
        super().__init__(ready_timeout)
        self.line_port = self.web_port = 0
        self.url = ""

    def _configure(self) -> None:
        self.line_port, pickle, cache, self.web_port = (free_port() for _ in range(4))
        self.url = f"http://127.0.0.1:{self.web_port}"
        (self.tmp / "whisper").mkdir(exist_ok=True)
        (self.tmp / "log").mkdir(exist_ok=True)
        (self.tmp / "storage-schemas.conf").write_text("[default]\npattern = .*\nretentions = 10s:2d\n")
        (self.tmp / "carbon.conf").write_text(
            f"""[cache]
STORAGE_DIR = {self.tmp}/
LOCAL_DATA_DIR = {self.tmp}/whisper/
CONF_DIR = {self.tmp}/
LOG_DIR = {self.tmp}/log/
PID_DIR = {self.tmp}/
DATABASE = whisper
ENABLE_LOGROTATION = False
MAX_CACHE_SIZE = inf
MAX_UPDATES_PER_SECOND = 10000
MAX_CREATES_PER_MINUTE = inf
LINE_RECEIVER_INTERFACE = 127.0.0.1
LINE_RECEIVER_PORT = {self.line_port}
ENABLE_UDP_LISTENER = False
PICKLE_RECEIVER_INTERFACE = 127.0.0.1
PICKLE_RECEIVER_PORT = {pickle}
CACHE_QUERY_INTERFACE = 127.0.0.1
CACHE_QUERY_PORT = {cache}
LOG_UPDATES = False
LOG_CREATES = False
WHISPER_FALLOCATE_CREATE = False
"""
        )
        (self.tmp / "kayenta_graphite_settings.py").write_text(
            f"""SECRET_KEY = "kayenta-py-tests"
STORAGE_DIR = "{self.tmp}/"
WHISPER_DIR = "{self.tmp}/whisper/"
LOG_DIR = "{self.tmp}/log/"
INDEX_FILE = "{self.tmp}/index"
CARBONLINK_HOSTS = ["127.0.0.1:{cache}"]
DATABASES = {{"default": {{"NAME": "{self.tmp}/graphite.db", "ENGINE": "django.db.backends.sqlite3"}}}}
DEFAULT_XFILES_FACTOR = 0
"""
        )
        (self.tmp / "serve.py").write_text(_SERVER)

    def _launch(self) -> None:
        carbon = self.tmp / "carbon.conf"
        self.spawn(
            "carbon",
            ["carbon-cache", f"--config={carbon}", f"--pidfile={self.tmp}/carbon.pid",
             f"--logdir={self.tmp}/log", "--nodaemon", "start"],
        )  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(self.tmp)}
        self.spawn("web", [SYSTEM_PYTHON, str(self.tmp / "serve.py"), str(self.web_port)], env)

    def _ready(self) -> bool:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.line_port)) != 0:
                return False
        with contextlib.suppress(requests.RequestException):
            probe_url = f"{self.url}/render?target=none&format=json"
            return requests.get(probe_url, timeout=2).status_code == 200
        return False

    def send(self, lines: list[str]) -> None:
        """Send points with carbon's plaintext protocol (``path value timestamp`` lines)."""
        with socket.create_connection(("127.0.0.1", self.line_port), timeout=10) as connection:
            connection.sendall(("\n".join(lines) + "\n").encode())

    def wait_for(self, target: str, start: float, end: float, points: int, timeout: float = 20.0) -> None:
        """Wait until ``target`` shows ``points`` non-null points in (start, end] (carbon has them)."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            answer = requests.get(
                f"{self.url}/render",
                params={"target": target, "from": str(int(start)), "until": str(int(end)), "format": "json"},
                timeout=10,
            ).json()
            seen = sum(1 for series in answer for value, _ in series["datapoints"] if value is not None)
            if seen >= points:
                return
            time.sleep(0.2)
        raise RuntimeError(f"{target}: {seen} of {points} points visible after {timeout:g} s")


def canary_lines(start: float, minutes: int = 60, step_s: int = 10, seed: int = 3) -> list[str]:
    """Plaintext lines of :func:`server_process.canary_traffic`: ``app.<version>.latency_ms``,
    ``.errors``, ``.count``."""
    lines: list[str] = []
    for v in canary_traffic(start, minutes, step_s, seed):
        for t, lat, e, c in zip(v.timestamps, v.latency_ms, v.errors, v.count, strict=True):
            lines += [
                f"app.{v.version}.latency_ms {lat:.4f} {int(t)}",
                f"app.{v.version}.errors {e} {int(t)}",
                f"app.{v.version}.count {c} {int(t)}",
            ]
    return lines
