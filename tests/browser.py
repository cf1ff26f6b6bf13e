"""Debian's headless Chromium for tests, and a way to prove a page fetched nothing from elsewhere.

- ``chromium`` (a pytest fixture): the browser's path; without it the test skips, or fails when
  ``CI`` is set.
- :func:`chromium_run`: one headless run (``--dump-dom``, ``--screenshot``...) with a fresh profile.
- :class:`RecordingProxy` and :func:`offline_args`: Chromium's every name lookup fails except
  127.0.0.1's, and every request that is not to the loopback goes to a local proxy that records
  it and answers 502; with ``--log-net-log`` :func:`netlog_urls` lists every URL the browser
  asked for. A page that needs the internet then shows it twice: in the proxy's record and in
  the net log.

Import it as ``from browser import ...`` (tests/ is not a package). Test modules import the
fixture by name: ``from browser import chromium``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType

import pytest

__all__ = ["CHATTER_SINK", "RecordingProxy", "chromium", "chromium_run", "netlog_urls", "offline_args"]


@pytest.fixture(scope="module")
def chromium() -> str:
    """The path of Debian's Chromium (skip without it, or fail when ``CI`` is set)."""
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None
    )
    if found is None:
        message = "Debian's chromium is not installed (scripts/test installs it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message + "; set CI=1 to fail instead")
    return found


def chromium_run(
    binary: str, profile: Path, *args: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium once with the profile directory ``profile`` and ``args``."""
    command = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--force-color-profile=srgb",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--window-size=1280,2000",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


class _Recorder(BaseHTTPRequestHandler):
    """Record the request line of any method (CONNECT included) and answer 502."""

    def _record(self) -> None:
        proxy: RecordingProxy = self.server.proxy  # type: ignore[attr-defined]
        with proxy.lock:
            proxy.requests.append(f"{self.command} {self.path}")
        self.send_response(502, "not leaving this machine")
        self.send_header("Content-Length", "0")
        self.send_header("Connection", "close")
        self.end_headers()

    do_GET = do_POST = do_HEAD = do_PUT = do_OPTIONS = do_CONNECT = _record  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the test reads :attr:`RecordingProxy.requests` instead."""


class RecordingProxy:
    """A local HTTP proxy on a free loopback port that records every request and answers 502."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
        self.server.proxy = self  # type: ignore[attr-defined]
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingProxy:
        self.thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


CHATTER_SINK = "http://127.0.0.1:9/"
"""Where the browser's own background requests go (a closed port): not the page's, not the internet."""


def offline_args(proxy: RecordingProxy, netlog: Path) -> tuple[str, ...]:
    """Chromium flags: only 127.0.0.1 resolves, the rest goes to ``proxy``; log the net to ``netlog``.

    Chromium itself asks Google for component updates, account cookies and the network time
    (Debian's build has API keys); those go to :data:`CHATTER_SINK` or are off, so that the
    proxy's record holds only what a page asked for.
    """
    return (
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--proxy-server={proxy.url}",
        f"--component-updater=url-source={CHATTER_SINK}",
        f"--gaia-url={CHATTER_SINK}",
        "--disable-features=NetworkTimeServiceQuerying,AutofillServerCommunication",
        f"--log-net-log={netlog}",
        "--net-log-capture-mode=Default",
    )


def netlog_urls(netlog: Path) -> set[str]:
    """Every URL a Chromium net log (``--log-net-log``) shows a request for."""
    text = netlog.read_text(encoding="utf-8").rstrip().rstrip(",")
    if not text.endswith("}"):  # a log cut short ends inside its list of events
        text = text.rstrip("]").rstrip().rstrip(",") + "]}"
    urls: set[str] = set()
    for event in json.loads(text).get("events", []):
        params = event.get("params") or {}
        for key in ("url", "original_url", "location"):
            value = params.get(key)
            if isinstance(value, str) and "://" in value:
                urls.add(value)
    return urls
