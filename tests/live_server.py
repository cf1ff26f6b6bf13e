"""A real kayenta-py HTTP server for tests: uvicorn on a free loopback port, in a background thread.

Typical use::

    with LiveServer(settings_for(tmp_path)) as server:
        httpx.get(f"{server.url}/api/v1/analyses")

Import it as ``from live_server import ...`` (tests/ is not a package; importing it under
two names would make it two modules for mypy).
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import uvicorn

from kayenta_py.http.app import create_app
from kayenta_py.service.analyses import Service
from kayenta_py.service.settings import Settings

__all__ = ["LiveServer", "settings_for"]


def settings_for(tmp: Path, **overrides: Any) -> Settings:
    """Settings with a SQLite database ``k.db`` in ``tmp`` (also the data dir), plus ``overrides``."""
    return Settings(database_url=f"sqlite:///{tmp}/k.db", data_dir=tmp, **overrides)


class LiveServer:
    """uvicorn serving ``create_app(service)`` on a free loopback port, in a background thread.

    The socket is bound (and :attr:`url` known) on construction; ``__enter__``
    starts the thread and waits until ``/readyz`` answers 200, raising
    ``RuntimeError`` when the thread dies or after ``ready_timeout`` seconds
    (the server is stopped first). ``__exit__`` asks uvicorn to exit, joins the
    thread for at most ``stop_timeout`` seconds and closes the socket.
    """

    def __init__(
        self, settings: Settings, *, ready_timeout: float = 30.0, stop_timeout: float = 15.0
    ) -> None:
        self.ready_timeout = ready_timeout
        self.stop_timeout = stop_timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.service = Service(settings)
        self.app = create_app(self.service)
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning", lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if not self.thread.is_alive():
                raise RuntimeError("the kayenta-py server thread died while starting")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"kayenta-py at {self.url} not ready after {self.ready_timeout:.0f} s")

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for the thread (at most ``stop_timeout``) and close the socket."""
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=self.stop_timeout)
        self.sock.close()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
