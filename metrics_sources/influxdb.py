"""InfluxDB 1.x metrics source: InfluxQL over HTTP ``/query``, safe templating, retries, chunking.

Security rule: scope values never change a query. A metric's ``query`` is an InfluxQL template
rendered by :mod:`metrics_sources.influxql`: a ``${variable}`` inside ``'...'`` is escaped as a
string literal, inside ``"..."`` as an identifier, inside ``/.../`` as literal regex text; outside
quotes only a plain number or identifier is allowed. Anything else is refused before any request,
by an error naming the variable.

A template holds ``${timeFilter}`` in its WHERE clause and ``GROUP BY time(${interval})``; the
source fills them for each chunk of the window, so every series lands on the step grid
``first, first+step, ... <= last`` (``first`` the first multiple of the step at or after start,
each point the aggregate of [t, t+step) within the window).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import requests
from pydantic import Field, SecretStr

from kayenta_py.plugin import KayentaError, MetricConfig, Scope, SourceError
from metrics_sources.buckets import Series, bucket_grid, number
from metrics_sources.chunked_source import ChunkedHttpSource
from metrics_sources.influxql import INTERVAL, TIME_FILTER, TemplateError, kayenta_query, render
from metrics_sources.own_settings import SourceSettings

MAX_POINTS = 10_000  # buckets per series per request (InfluxDB's max-select-buckets may be lower)


class InfluxDBSettings(SourceSettings):
    """The influxdb source's service settings: ``influxdb_<field>`` (``KAYENTA_INFLUXDB_<FIELD>``)."""

    prefix: ClassVar[str] = "influxdb"

    url: str | None = Field(None, description="InfluxDB 1.x base URL, e.g. http://influxdb:8086")
    database: str | None = Field(None, description="the database queries run in (db=)")
    username: str | None = Field(None, description="InfluxDB user (with password)")
    password: SecretStr | None = Field(None, description="that user's password")
    retention_policy: str | None = Field(None, description="retention policy (rp=); default the database's")
    timeout: float = Field(10.0, gt=0, description="seconds per connect and per read")
    deadline: float = Field(30.0, gt=0, description="total seconds of one request, retries included")
    retries: int = Field(3, ge=0, description="retries on connection errors, 429 and 5xx")
    max_points: int = Field(MAX_POINTS, ge=1, description="buckets per series per request")


class InfluxDBSource(ChunkedHttpSource[None]):
    """InfluxQL queries against one InfluxDB 1.x server.

    Parameters
    ----------
    url : str
        Base URL, e.g. ``http://influxdb:8086`` (a path prefix is kept).
    database : str
        The database (``db``) every query runs in.
    username, password : str, optional
        InfluxDB credentials (HTTP basic auth).
    retention_policy : str, optional
        ``rp``: the retention policy queried (default: the database's default).
    timeout, deadline, retries, backoff : float, float, int, float
        Seconds per connect or read, total seconds of one request, retries of a transient
        failure (connection, timeout, 429, 5xx) and the first backoff (doubled each retry).
    max_points : int
        Buckets per series per request; longer windows are split into chunks and stitched.
    """

    name = "influxdb"
    what = "InfluxDB"
    settings_prefix = InfluxDBSettings.prefix
    settings_model = InfluxDBSettings
    setup_hint = (
        "it needs influxdb_url and influxdb_database (KAYENTA_INFLUXDB_URL, KAYENTA_INFLUXDB_DATABASE)"
    )
    required = ("url", "database")
    repr_field = "database"

    def __init__(
        self,
        url: str,
        *,
        database: str,
        username: str | None = None,
        password: str | None = None,
        retention_policy: str | None = None,
        verify_tls: bool = True,
        timeout: float = 10.0,
        deadline: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_points: int = MAX_POINTS,
        pool_size: int = 32,
    ) -> None:
        if not database:
            raise KayentaError("InfluxDB: a database is required")
        self.database = database
        self.retention_policy = retention_policy
        super().__init__(
            url,
            max_points=max_points,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            deadline=deadline,
            username=username,
            password=password,
            verify_tls=verify_tls,
            pool_size=pool_size,
            error_text=_error_text,
        )

    def render(
        self,
        metric: MetricConfig,
        scope: Scope,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> str:
        """Return the InfluxQL ``metric`` runs for ``scope`` (for the window, when one is given)."""
        if start is None or end is None or step is None:
            fragments = {TIME_FILTER: "time >= <start> AND time < <end>", INTERVAL: "<step>"}
        else:
            first, last, step_s = bucket_grid(metric.name, start, end, step)
            fragments = _fragments(first, last, step_s)
        return self._render(metric, scope, fragments)

    def _render(self, metric: MetricConfig, scope: Scope, fragments: dict[str, str]) -> str:
        what = f"metric {metric.name!r}"
        variables = scope.variables()
        if metric.query is not None:
            template, native = metric.query, True
        elif metric.kayenta_query is not None:
            template, own = kayenta_query(metric.kayenta_query, scope.scope, what=what)
            fragments, native = {**fragments, **own}, False
        else:
            raise TemplateError(f"{what} has no query")
        if "${" + TIME_FILTER + "}" not in template:
            raise TemplateError(f"{what}: the InfluxQL template needs ${{{TIME_FILTER}}} in its WHERE clause")
        if native and "${" + INTERVAL + "}" not in template:
            raise TemplateError(f"{what}: the InfluxQL template needs GROUP BY time(${{{INTERVAL}}})")
        return render(template, variables, generated=fragments, what=what)

    def _prepare(self, metric: MetricConfig, scope: Scope, first: int, step: int) -> None:
        self._render(metric, scope, _fragments(first, first, step))

    def _fetch_chunk(
        self, metric: MetricConfig, scope: Scope, prepared: None, first: int, last: int, step: int
    ) -> list[Series]:
        return self._query(metric.name, self._render(metric, scope, _fragments(first, last, step)))

    def _query(self, metric: str, query: str) -> list[Series]:
        """One ``/query`` request; every series of every statement, as (tags, [(time, value)])."""
        params = {"db": self.database, "epoch": "s", "q": query}
        if self.retention_policy:
            params["rp"] = self.retention_policy
        document = self._http.get("/query", params, metric=metric)
        where = self._where(metric)
        if not isinstance(document, dict):
            raise SourceError(f"{where}: not an InfluxDB answer: {str(document)[:200]}", url=self.url)
        if document.get("error"):
            raise SourceError(f"{where}: {document['error']}", url=self.url, metric=metric, transient=False)
        out = []
        for result in document.get("results") or []:
            if result.get("error"):  # a statement InfluxDB refused: the same every time
                raise SourceError(
                    f"{where}: {result['error']}", url=self.url, metric=metric, status=200, transient=False
                )
            for item in result.get("series") or []:
                out.extend(_series(item))
        return out


def _series(item: Mapping[str, Any]) -> list[Series]:
    """One InfluxDB series: a (tags, rows) per value column (more than one: tagged ``field``)."""
    columns: list[str] = list(item.get("columns") or [])
    if "time" not in columns:
        return []
    at = columns.index("time")
    tags = {str(k): str(v) for k, v in (item.get("tags") or {}).items()}
    value_columns = [i for i, name in enumerate(columns) if i != at]
    out = []
    for i in value_columns:
        key = {**tags, "field": columns[i]} if len(value_columns) > 1 else tags
        rows = [(float(row[at]), number(row[i])) for row in item.get("values") or []]
        out.append((tuple(sorted(key.items())), rows))
    return out


def _fragments(first: int, last: int, step: int) -> dict[str, str]:
    return {TIME_FILTER: f"time >= {first}s AND time < {last + step}s", INTERVAL: f"{step}s"}


def _error_text(response: requests.Response) -> str:
    """InfluxDB's own error message (``{"error": "..."}``), else the body."""
    try:
        document = response.json()
    except ValueError:
        return response.text.strip()[:500] or "(empty body)"
    if isinstance(document, dict) and document.get("error"):
        return str(document["error"])
    return str(document)[:500]
