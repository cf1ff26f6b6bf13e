"""An offline CloudWatch for tests: moto's server mode on a free loopback port, and data put into it.

moto's server is the only CloudWatch that runs offline; it stores what ``PutMetricData`` sends and
answers ``GetMetricData`` MetricStat queries (it does not evaluate metric math or SEARCH: such
queries answer no data). :class:`MotoServer` starts ``python -m moto.server`` and stops it::

    with MotoServer() as moto:
        put_canary_data(moto.client(), start)

:class:`FaultProxy` stands in front of it and answers chosen failures (HTTP 503, throttling) or
chosen pages before passing requests on; :func:`cbor` encodes the CBOR answers botocore reads.
"""

from __future__ import annotations

import json
import math
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

import boto3
import numpy as np
import requests
from mypy_boto3_cloudwatch import CloudWatchClient
from prometheus_harness import free_port

__all__ = ["NAMESPACE", "REGION", "VERSIONS", "FaultProxy", "MotoServer", "cbor", "put_canary_data"]

REGION = "eu-west-1"
NAMESPACE = "Checkout"
VERSIONS = ("v1-base", "v1-canary", "v2-base", "v2-canary")  # v2-canary is regressed
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


class MotoServer:
    """``python -m moto.server`` on a free loopback port, as a context manager."""

    def __init__(self, ready_timeout: float = 30.0) -> None:
        self.ready_timeout = ready_timeout
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                error = self._process.stderr.read().decode(errors="replace") if self._process.stderr else ""
                raise RuntimeError(f"moto_server exited ({self._process.returncode}): {error[-2000:]}")
            try:
                requests.get(f"{self.url}/moto-api/", timeout=1)
                return self
            except requests.RequestException:
                time.sleep(0.1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"moto_server did not answer on {self.url} within {self.ready_timeout:g} s")

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()

    def client(self) -> CloudWatchClient:
        """A boto3 CloudWatch client of this server (test credentials)."""
        return boto3.client(
            "cloudwatch",
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=KEYS["aws_access_key_id"],
            aws_secret_access_key=KEYS["aws_secret_access_key"],
        )


def put_canary_data(client: CloudWatchClient, start: float, minutes: int = 60, seed: int = 16) -> None:
    """Put one hour of per-minute ``Latency`` (ms) and ``ErrorRate`` (%) for each of :data:`VERSIONS`.

    Dimensions ``Service=checkout, Version=<version>``; the v2 canary's latency is x1.6 and its
    error rate x3 (regressed), the v1 canary is like its baseline (healthy).
    """
    rng = np.random.default_rng(seed)
    data: list[Any] = []
    for version in VERSIONS:
        regressed = version == "v2-canary"
        latency = rng.normal(120.0, 6.0, minutes) * (1.6 if regressed else 1.0)
        errors = np.abs(rng.normal(0.5, 0.08, minutes)) * (3.0 if regressed else 1.0)
        for minute in range(minutes):
            stamp = datetime.fromtimestamp(start + 60 * minute + 15, UTC)
            dimensions = [{"Name": "Service", "Value": "checkout"}, {"Name": "Version", "Value": version}]
            for name, value, unit in (
                ("Latency", latency[minute], "Milliseconds"),
                ("ErrorRate", errors[minute], "Percent"),
            ):
                data.append(
                    {"MetricName": name, "Dimensions": dimensions, "Timestamp": stamp, "Value": float(value)}
                )
                data[-1]["Unit"] = unit
    for batch in range(0, len(data), 500):
        client.put_metric_data(Namespace=NAMESPACE, MetricData=data[batch : batch + 500])


# ---------------------------------------------------------------- a proxy that fails on purpose


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        proxy = self.server
        with proxy.lock:
            proxy.seen.append(body)
            answer = proxy.answers.pop(0) if proxy.answers else None
        if answer is None:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
            upstream = requests.post(proxy.upstream + self.path, data=body, headers=headers, timeout=30)
            status, payload, kind = (
                upstream.status_code,
                upstream.content,
                upstream.headers.get("Content-Type"),
            )
            smithy = upstream.headers.get("smithy-protocol")
        else:
            status, document = answer
            kind = self.headers.get("Content-Type", "application/x-amz-json-1.0")
            smithy = "rpc-v2-cbor" if "cbor" in kind else None
            payload = b"" if document is None else cbor(document) if "cbor" in kind else _json(document)
        self.send_response(status)
        self.send_header("Content-Type", kind or "application/cbor")
        if smithy:
            self.send_header("smithy-protocol", smithy)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args: Any) -> None:
        pass


class FaultProxy(ThreadingHTTPServer):
    """An HTTP server on a free loopback port answering ``answers`` first, then passing on upstream.

    Each answer is ``(status, document or None)``; the document is encoded in the request's
    protocol, botocore's JSON or rpc-v2-cbor (``__type`` names an error). ``seen`` keeps every request body.
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.lock = threading.Lock()
        self.answers: list[tuple[int, Any]] = []
        self.seen: list[bytes] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
        self.server_close()


def _json(document: Any) -> bytes:
    """The JSON protocol's encoding (datetimes as epoch seconds)."""
    return json.dumps(document, default=lambda v: v.timestamp()).encode()


def cbor(value: Any) -> bytes:
    """The CBOR encoding of JSON-like ``value`` (datetimes as tag 1, epoch seconds)."""
    if value is None:
        return b"\xf6"
    if isinstance(value, bool):
        return b"\xf5" if value else b"\xf4"
    if isinstance(value, int):
        return _head(0, value) if value >= 0 else _head(1, -1 - value)
    if isinstance(value, float):
        return b"\xfb" + struct.pack(">d", value)
    if isinstance(value, datetime):
        return b"\xc1" + cbor(float(value.timestamp()))
    if isinstance(value, str):
        raw = value.encode()
        return _head(3, len(raw)) + raw
    if isinstance(value, dict):
        return _head(5, len(value)) + b"".join(cbor(str(k)) + cbor(v) for k, v in value.items())
    if isinstance(value, Iterable):
        items = list(value)
        return _head(4, len(items)) + b"".join(cbor(v) for v in items)
    raise TypeError(f"cannot encode {type(value).__name__} as CBOR")


def _head(major: int, length: int) -> bytes:
    if length < 24:
        return bytes([major << 5 | length])
    for extra, size, fmt in ((24, 1, ">B"), (25, 2, ">H"), (26, 4, ">I"), (27, 8, ">Q")):
        if length < 256**size:
            return bytes([major << 5 | extra]) + struct.pack(fmt, length)
    raise ValueError(f"CBOR length {length} too large")


def pages(start: float, values: list[float], step: int = 60) -> Iterator[dict[str, Any]]:
    """Two GetMetricData pages of one series (``m1``), the first with a NextToken."""
    half = math.ceil(len(values) / 2)
    stamps = [datetime.fromtimestamp(start + step * i, UTC) for i in range(len(values))]
    for part, token in ((slice(0, half), "page-2-token"), (slice(half, None), None)):
        result = {"Id": "m1", "Label": "Latency", "Timestamps": stamps[part], "Values": values[part]}
        page: dict[str, Any] = {
            "MetricDataResults": [{**result, "StatusCode": "PartialData" if token else "Complete"}]
        }
        if token:
            page["NextToken"] = token
        yield page
