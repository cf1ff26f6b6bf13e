"""JSON over HTTP (GET, or POST of a JSON body) for metrics sources: retries with backoff on transient errors.

Transient: connection errors, timeouts, HTTP 429 and 5xx; each is retried up to ``retries`` times,
waiting ``backoff``, ``2*backoff``, ``4*backoff``... seconds (or the server's ``Retry-After``, at most
``max_wait``), all within a total ``deadline``. Permanent: any other 4xx fails at once (asking
again gets the same refusal). Every failure is a :class:`SourceError` naming the server (its URL
without credentials), the metric and what the server said.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from kayenta_py.plugin import KayentaError, SourceError, redact_url

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

ErrorText = Callable[[requests.Response], str]
"""Return what a server's error answer says (its own message, not the raw body)."""


def body_text(response: requests.Response) -> str:
    """The answer's text, shortened: the default :data:`ErrorText`."""
    return response.text.strip()[:500] or "(empty body)"


class JsonClient:
    """GET (or POST) JSON from one server with bounded retries.

    Parameters
    ----------
    url : str
        Base URL (``http://`` or ``https://`` and a host; a path prefix is kept).
    what : str
        The server's kind in messages (``InfluxDB``, ``Graphite``).
    timeout : float
        Seconds each connect or read may take.
    retries : int
        Retries of a transient failure (0: one try only).
    backoff : float
        First wait in seconds; doubled after each retry.
    deadline : float
        Total seconds of one call, its retries and waits included.
    max_wait : float
        Longest single wait (a larger ``Retry-After`` is cut to it).
    headers : mapping, optional
        Sent with every request (API keys: never shown, the client's repr names the URL only).
    username, password : str, optional
        HTTP basic auth; one without the other is an error.
    """

    def __init__(
        self,
        url: str,
        *,
        what: str,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        deadline: float = 30.0,
        max_wait: float = 10.0,
        headers: Mapping[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        verify_tls: bool = True,
        pool_size: int = 32,
        error_text: ErrorText = body_text,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")) or not url.split("://", 1)[1].split("/")[0]:
            raise KayentaError(
                f"{what} URL {redact_url(url)!r} must start with http:// or https:// and a host"
            )
        if (username is None) != (password is None):
            raise KayentaError(f"{what}: a username needs a password and a password a username")
        if not (timeout > 0 and retries >= 0 and backoff >= 0 and max_wait >= 0):
            raise KayentaError("timeout must be positive; retries, backoff and max_wait not negative")
        if not (math.isfinite(deadline) and deadline > 0):
            raise KayentaError(f"deadline must be a positive number of seconds, got {deadline!r}")
        self.url = url.rstrip("/")
        self.what = what
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self.deadline, self.max_wait = deadline, max_wait
        self._error_text = error_text
        self._sleep = sleep
        self._session = requests.Session()
        self._session.verify = verify_tls
        self._session.headers.update(headers or {})
        if username is not None and password is not None:
            self._session.auth = (username, password)
        self._session.mount(self.url, HTTPAdapter(pool_maxsize=pool_size, max_retries=0))

    def __repr__(self) -> str:
        return f"JsonClient({redact_url(self.url)!r}, retries={self.retries})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()

    def get(self, path: str, params: Mapping[str, str], *, metric: str) -> Any:
        """Return the decoded JSON of ``GET url+path?params``, retrying transient failures.

        Raises
        ------
        SourceError
            ``transient=False`` for a 4xx other than 429; otherwise transient, after the retries.
        """
        return self._request("GET", path, params=params, metric=metric)

    def post(self, path: str, body: Any, *, metric: str) -> Any:
        """Return the decoded JSON answer of ``POST url+path`` with the JSON ``body`` (as :meth:`get`)."""
        return self._request("POST", path, body=body, metric=metric)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        metric: str,
    ) -> Any:
        where = f"{self.what} {redact_url(self.url)}: metric {metric!r}"
        began = time.monotonic()
        attempt = 0
        while True:
            remaining = self.deadline - (time.monotonic() - began)
            try:
                response = self._session.request(
                    method,
                    self.url + path,
                    params=dict(params or {}),
                    json=body,
                    timeout=min(self.timeout, max(remaining, 0.001)),
                )
            except requests.exceptions.Timeout:
                failure = f"no answer within {self.timeout:g} s"
                status, wait = None, self._backoff(attempt)
            except requests.exceptions.RequestException as exc:
                failure = f"cannot connect ({root_cause(exc)})"
                status, wait = None, self._backoff(attempt)
            else:
                status = response.status_code
                if status < 400:
                    return self._decoded(response, where, metric)
                failure = f"HTTP {status}: {self._error_text(response)}"
                if status not in RETRY_STATUSES:
                    raise SourceError(
                        f"{where}: {failure}", url=self.url, metric=metric, status=status, transient=False
                    )
                wait = _retry_after(response, self._backoff(attempt))
            wait = min(wait, self.max_wait)
            spent = time.monotonic() - began
            if attempt >= self.retries or spent + wait >= self.deadline:
                why = f"after {attempt} retries" if attempt >= self.retries else f"within {self.deadline:g} s"
                raise SourceError(f"{where}: {failure} ({why})", url=self.url, metric=metric, status=status)
            self._sleep(wait)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        return float(self.backoff * 2**attempt)

    def _decoded(self, response: requests.Response, where: str, metric: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise SourceError(
                f"{where}: HTTP {response.status_code} but not JSON: {response.text.strip()[:300]!r}",
                url=self.url,
                metric=metric,
                status=response.status_code,
            ) from None


def _retry_after(response: requests.Response, default: float) -> float:
    """The answer's ``Retry-After`` in seconds (a number), else ``default``."""
    value = response.headers.get("Retry-After", "")
    try:
        seconds = float(value)
    except ValueError:
        return default
    return seconds if math.isfinite(seconds) and seconds >= 0 else default


def root_cause(exc: BaseException) -> str:
    """Return the innermost reason of a connection error, e.g. 'Connection refused'."""
    text = str(exc)
    for marker in (
        "Connection refused",
        "Name or service not known",
        "No route to host",
        "timed out",
        "Connection reset",
        "Remote end closed connection",
    ):
        if marker in text:
            return marker
    return text[:200]
