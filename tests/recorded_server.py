"""A real HTTP server on a free loopback port that answers with recorded API bodies (tests/recorded/).

The recorded bodies are written from the vendors' public API documentation (no live account can
be reached here). Each test gives a ``respond(request) -> (status, body, headers)`` function that
checks the request (path, headers, query text) and fills a recorded body with its own values;
every request is kept in ``requests`` so tests can assert what the server received.
"""

from __future__ import annotations

import json
import math
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str) -> Any:
    """Return a recorded body, e.g. ``recorded("datadog/query_ok.json")`` (a fresh copy each call)."""
    return json.loads((RECORDED / name).read_text(encoding="utf-8"))


@dataclass
class Request:
    """One request the server received."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]
    body: Any = None


Answer = tuple[int, Any, dict[str, str]]


@dataclass
class RecordedServer:
    """The server: ``url``, the ``requests`` it received, and ``queue`` of answers served first."""

    respond: Callable[[Request], Answer]
    requests: list[Request] = field(default_factory=list)
    queue: list[Answer] = field(default_factory=list)
    url: str = ""


def serve(respond: Callable[[Request], Answer]) -> Iterator[RecordedServer]:
    """Run a server for a test (a generator for a pytest fixture)."""
    state = RecordedServer(respond)
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def _handle(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            request = Request(
                method,
                parts.path,
                {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()},
                {k.lower(): v for k, v in self.headers.items()},
                json.loads(raw) if raw else None,
            )
            with lock:
                state.requests.append(request)
                queued = state.queue.pop(0) if state.queue else None
            status, body, headers = queued or state.respond(request)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


LEVELS = {"v1-base": 100.0, "v1-canary": 100.0, "v2-base": 100.0, "v2-canary": 135.0}
"""Mean latency (ms) per version: v1's canary is healthy, v2's regressed by +35%."""


def value(version: str, t: float) -> float:
    """The deterministic value of ``version`` at ``t``: its level, a daily-ish wave and noise."""
    level = LEVELS.get(version)
    if level is None:
        return math.nan
    rng = np.random.default_rng([zlib.crc32(version.removesuffix("-base").removesuffix("-canary").encode()),
                                 zlib.crc32(version.encode()), int(t)])  # fmt: skip
    return float(level * (1 + 0.05 * math.sin(t / 1800.0)) + rng.normal(0, 4.0))
