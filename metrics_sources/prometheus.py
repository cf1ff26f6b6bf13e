"""Prometheus metrics source: range queries through prometheus-api-client, safe templating,
retries with backoff, a total deadline per request, chunking of long ranges and step-grid alignment."""

from __future__ import annotations

import ast
import json
import math
import re
import socket
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import BaseModel, Field, SecretStr
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.retry import Retry

from kayenta_py import FieldError, KayentaError, MetricConfig, MetricSet, Scope, SourceError
from kayenta_py.plugin import redact_url
from metrics_sources.http_retry import root_cause
from metrics_sources.own_settings import SourceSettings
from metrics_sources.promql import build_query

MAX_POINTS = 11_000  # Prometheus refuses range queries of more points per series
RETRY_STATUSES = (429, 500, 502, 503, 504)
_STATUS = re.compile(r"HTTP Status Code (\d+) \((.*)\)$", re.DOTALL)


class PrometheusSettings(SourceSettings):
    """The prometheus source's service settings: ``prometheus_<field>`` (``KAYENTA_PROMETHEUS_<FIELD>``).

    A bad value is a :class:`~kayenta_py.plugin.FieldError` naming the setting and its variable.
    """

    prefix: ClassVar[str] = "prometheus"

    url: str | None = Field(None, description="the default Prometheus source")
    token: SecretStr | None = Field(None, description="bearer token for that Prometheus")
    timeout: float = Field(10.0, gt=0, description="seconds per connect and per read")
    deadline: float = Field(30.0, gt=0, description="total seconds of one range request, retries included")
    retries: int = Field(3, ge=0)


class PrometheusSource:
    """Range queries against one Prometheus server.

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://prometheus:9090`` (a path prefix is kept).
    bearer_token : str, optional
        Sent as ``Authorization: Bearer ...``.
    username, password : str, optional
        HTTP basic auth.
    verify_tls : bool
        Verify the server's TLS certificate (default True).
    timeout : float
        Seconds each connect or read of an HTTP request may take (default 10).
    deadline : float
        Total seconds one range request may take, its retries included (default 30):
        a server that answers a byte at a time is cut off when the deadline passes.
    retries : int
        Retries with exponential backoff on connection errors, timeouts, 429
        and 5xx (default 3); ``Retry-After`` is honoured.
    backoff : float
        Backoff factor in seconds: waits of backoff, 2*backoff, 4*backoff...
    max_points : int
        Points per series per request; longer ranges are split into chunks
        and stitched (Prometheus' own limit is 11,000).
    pool_size : int
        HTTP connections kept open, at least the analysis' fetch concurrency.

    Notes
    -----
    Every series becomes a :class:`MetricSet` keyed by its labels (without
    ``__name__``), on the full step grid ``start, start+step, ... <= end``:
    a missing sample stays NaN at its place instead of shifting the others.
    """

    name = "prometheus"
    settings_prefix: ClassVar[str] = "prometheus"
    settings_model: ClassVar[type[BaseModel]] = PrometheusSettings
    setup_hint: ClassVar[str] = "it needs prometheus_url (KAYENTA_PROMETHEUS_URL), which is not set"

    @classmethod
    def is_configured(cls, settings: Mapping[str, Any]) -> bool:
        """Return whether the service's settings set this source up (``prometheus_url`` is set)."""
        return bool(PrometheusSettings.from_service(settings).url)

    @classmethod
    def endpoint(cls, settings: Mapping[str, Any]) -> str | None:
        """Return the URL this source reads, as the service's settings give it (None: not set up)."""
        return PrometheusSettings.from_service(settings).url

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> PrometheusSource:
        """Return the source the service's settings describe (``prometheus_*``, ``fetch_concurrency``)."""
        own = PrometheusSettings.from_service(settings)
        if not own.url:
            raise FieldError("source", "'prometheus' is not set up (KAYENTA_PROMETHEUS_URL is not set)")
        return cls(
            own.url,
            bearer_token=own.token.get_secret_value() if own.token else None,
            timeout=own.timeout,
            retries=own.retries,
            deadline=own.deadline,
            pool_size=max(32, int(settings.get("fetch_concurrency", 8))),
        )

    def __init__(
        self,
        url: str,
        *,
        bearer_token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        verify_tls: bool = True,
        timeout: float = 10.0,
        deadline: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_points: int = MAX_POINTS,
        pool_size: int = 32,
    ) -> None:
        if not re.match(r"^https?://[^/\s]+", url):
            raise KayentaError(f"Prometheus URL {url!r} must start with http:// or https:// and name a host")
        if (username is None) != (password is None):
            raise KayentaError("basic auth needs both a username and a password")
        if timeout <= 0 or retries < 0 or backoff < 0 or max_points < 1:
            raise KayentaError("timeout and max_points must be positive; retries and backoff not negative")
        if not (math.isfinite(deadline) and deadline > 0):
            raise KayentaError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.deadline = deadline
        self.retries = retries
        self.max_points = max_points
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "POST"}),
            raise_on_status=False,  # after the last retry, report Prometheus' own answer
            respect_retry_after_header=True,
        )
        headers = {"Authorization": f"Bearer {bearer_token}"} if bearer_token else None
        auth = (username, password) if username is not None and password is not None else None
        session = requests.Session()
        session.verify = verify_tls
        self._client = PrometheusConnect(
            url=self.url, headers=headers, retry=retry, auth=auth, timeout=timeout, session=session
        )
        # Concurrent fetches share the session: give it a pool as large as the concurrency.
        session.mount(self.url, _DeadlineAdapter(max_retries=retry, pool_maxsize=pool_size))

    def __repr__(self) -> str:  # never show credentials
        return f"PrometheusSource({redact_url(self.url)!r}, timeout={self.timeout}, retries={self.retries})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._client.close()

    def render(self, metric: MetricConfig, scope: Scope) -> str:
        """Return the PromQL ``metric`` runs for ``scope``."""
        return build_query(metric, scope)

    def fetch(
        self,
        metric: MetricConfig,
        scope: Scope | str,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> list[MetricSet]:
        """Run the metric's range query for ``scope`` over [start, end] every ``step`` seconds."""
        if isinstance(scope, str):
            scope = Scope(scope)
        if start is None or end is None or step is None:
            raise KayentaError(f"metric {metric.name!r}: Prometheus needs start, end and step")
        if not all(map(math.isfinite, (start, end, step))) or step <= 0 or end < start:
            raise KayentaError(
                f"metric {metric.name!r}: need finite start, end and step, step > 0 and end >= start"
            )
        query = self.render(metric, scope)
        grid_start, grid_end = round(start), round(end)
        points = int((grid_end - grid_start) // step) + 1
        grid = grid_start + step * np.arange(points, dtype=np.float64)
        series: dict[tuple[tuple[str, str], ...], np.ndarray[Any, np.dtype[np.float64]]] = {}
        for first in range(0, points, self.max_points):
            last = min(points, first + self.max_points) - 1
            for labels, values in self._query(metric.name, query, grid[first], grid[last], step):
                key = tuple(sorted((k, v) for k, v in labels.items() if k != "__name__"))
                column = series.setdefault(key, np.full(points, math.nan))
                for timestamp, value in values:
                    index = round((float(timestamp) - grid_start) / step)
                    if 0 <= index < points:
                        column[index] = float(value)
        return [MetricSet(metric.name, values, dict(key), grid) for key, values in series.items()]

    def _query(
        self, metric: str, query: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[list[Any]]]]:
        """One range request; every failure becomes a SourceError naming the URL and the metric.

        An HTTP 4xx other than 429 is permanent (``transient=False``): asking again gets the same
        refusal. The request, its retries included, is cut off at ``deadline`` seconds.
        """
        where = f"Prometheus {redact_url(self.url)}: metric {metric!r}"
        watch = _Deadline(self.deadline)
        try:
            with watch.active():
                result = self._client.custom_query_range(
                    query,
                    start_time=datetime.fromtimestamp(start, UTC),
                    end_time=datetime.fromtimestamp(end, UTC),
                    step=_format_step(step),
                )
        except PrometheusApiClientException as exc:
            status = _status(str(exc))
            raise SourceError(
                f"{where}: {_api_error(str(exc))}",
                url=self.url,
                metric=metric,
                status=status,
                transient=status is None or status == 429 or status >= 500,
            ) from None
        except (requests.exceptions.RequestException, ValueError, KeyError) as exc:
            raise self._failure(where, metric, exc, expired=watch.expired) from None
        return [(item.get("metric", {}), item.get("values", [])) for item in result]

    def _failure(self, where: str, metric: str, exc: Exception, *, expired: bool) -> SourceError:
        """The SourceError for a failed request (all transient: another try may work)."""
        if expired:
            text = f"no complete answer within the deadline of {self.deadline:g} s"
        elif isinstance(exc, requests.exceptions.Timeout):
            text = f"no answer within {self.timeout:g} s (after {self.retries} retries)"
        elif isinstance(exc, requests.exceptions.ConnectionError):
            text = f"cannot connect after {self.retries} retries ({root_cause(exc)})"
        else:
            text = f"{type(exc).__name__}: {exc}"
        return SourceError(f"{where}: {text}", url=self.url, metric=metric)


class _Deadline:
    """A total deadline for one request: when it passes, the connection in use is shut down.

    A per-read timeout never fires on a server that sends a byte every few seconds; shutting
    the socket down from a timer thread ends the blocked read (and every retry after it) at once.
    """

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._conn: HTTPConnection | None = None
        self._lock = threading.Lock()

    @contextmanager
    def active(self) -> Iterator[None]:
        """Run the block under the deadline (connections opened in this thread report to it)."""
        timer = threading.Timer(self.seconds, self._expire)
        timer.daemon = True
        _Deadline._current.watch = self
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            _Deadline._current.watch = None

    @classmethod
    def attach(cls, conn: HTTPConnection) -> None:
        """Tell this thread's deadline (if any) which connection the request now uses."""
        watch: _Deadline | None = getattr(cls._current, "watch", None)
        if watch is None:
            return
        with watch._lock:
            watch._conn = conn
            if watch.expired:
                _shut(conn)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            if self._conn is not None:
                _shut(self._conn)


def _shut(conn: HTTPConnection) -> None:
    sock = getattr(conn, "sock", None)
    if sock is not None:
        with suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection the request's deadline watches (and shuts when it passes)."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        _Deadline.attach(self)
        super().request(*args, **kwargs)

    def getresponse(self) -> Any:
        _Deadline.attach(self)
        return super().getresponse()


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The same over TLS (the watch runs before HTTPSConnection's own methods)."""


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class _DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections obey the calling thread's :class:`_Deadline`."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


def _status(message: str) -> int | None:
    """The HTTP status of a prometheus-api-client error message (None if it names none)."""
    match = _STATUS.match(message)
    return int(match.group(1)) if match else None


def _format_step(step: float) -> str:
    return str(int(step)) if float(step).is_integer() else repr(float(step))


def _api_error(message: str) -> str:
    """Turn prometheus-api-client's ``HTTP Status Code N (b'...')`` into Prometheus' own error text."""
    match = _STATUS.match(message)
    if match is None:
        return message
    status, body = match.groups()
    try:
        raw = ast.literal_eval(body)
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    except (ValueError, SyntaxError):
        text = body
    try:
        document = json.loads(text)
        detail = f"{document.get('errorType', 'error')}: {document.get('error', text)}"
    except (ValueError, AttributeError):
        detail = text.strip()[:500] or "(empty body)"
    return f"HTTP {status}: {detail}"
