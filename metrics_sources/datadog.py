"""Datadog metrics source: the query API v1 (``GET /api/v1/query``), safe templates, retries, chunking.

A metric's ``query`` is a Datadog query template, e.g. ``avg:trace.http.request.duration{service:web,
version:${scope}}``; scope values are checked for where they stand (:mod:`metrics_sources.ddquery`):
tag text inside braces, a metric name outside, anything else refused naming the variable.

Rollup: the query is rolled up to the step, ``.rollup(avg, 60)`` (the method is a setting), so each
point is the aggregate of ``[t, t+step)`` on the multiples of the step; a query that holds
``.rollup(`` (``.rollup(sum, ${interval})``) is sent as written. Datadog returns a bounded number of
points per series (it coarsens the rollup beyond); windows longer than ``max_points`` steps are
asked in chunks and stitched. Series are keyed by their group-by tags (``tag_set``).

Keys: the API and application keys go in the ``DD-API-KEY`` and ``DD-APPLICATION-KEY`` headers,
never in a URL, a message or a repr; in the service's settings they are secrets (masked everywhere).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from kayenta_py.plugin import (
    FieldError,
    KayentaError,
    MetricConfig,
    MetricSet,
    Scope,
    SourceError,
    did_you_mean,
    redact_url,
)
from metrics_sources.buckets import Grid, Tags, bucket_grid, chunks, number
from metrics_sources.ddquery import INTERVAL, ROLLUPS, TemplateError, kayenta_template, render, with_rollup
from metrics_sources.http_retry import JsonClient
from metrics_sources.own_settings import own_settings

MAX_POINTS = 1500  # points per series per request: Datadog coarsens the rollup of longer answers
SITES = (
    "datadoghq.com",
    "us3.datadoghq.com",
    "us5.datadoghq.com",
    "datadoghq.eu",
    "ap1.datadoghq.com",
    "ap2.datadoghq.com",
    "uk1.datadoghq.com",
    "ddog-gov.com",
    "us2.ddog-gov.com",
)
Rollup = Literal["avg", "sum", "min", "max", "count"]

__all__ = ["DatadogSettings", "DatadogSource", "TemplateError"]


def site_url(site: str) -> str:
    """Return the API base URL of a Datadog site (``datadoghq.eu`` -> ``https://api.datadoghq.eu``)."""
    site = site.strip().lower().removeprefix("app.")
    if site not in SITES:
        raise KayentaError(
            f"Datadog: unknown site {site!r}{did_you_mean(site, SITES)} (known: {', '.join(SITES)})"
        )
    return f"https://api.{site}"


class DatadogSettings(BaseModel):
    """The datadog source's service settings: ``datadog_<field>`` (``KAYENTA_DATADOG_<FIELD>``)."""

    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)

    api_key: SecretStr | None = Field(None, description="Datadog API key (DD-API-KEY)")
    app_key: SecretStr | None = Field(None, description="Datadog application key (DD-APPLICATION-KEY)")
    site: str = Field(
        "datadoghq.com", description="Datadog site: datadoghq.com, datadoghq.eu, us3.datadoghq.com..."
    )
    url: str | None = Field(None, description="API base URL instead of the site's (a proxy)")
    rollup: Rollup = Field("avg", description="rollup method of each step: avg, sum, min, max, count")
    timeout: float = Field(10.0, gt=0, description="seconds per connect and per read")
    deadline: float = Field(30.0, gt=0, description="total seconds of one request, retries included")
    retries: int = Field(3, ge=0, description="retries on connection errors, 429 and 5xx")
    max_points: int = Field(MAX_POINTS, ge=1, description="points per series per request")

    @field_validator("site")
    @classmethod
    def _known_site(cls, value: str) -> str:
        try:
            site_url(value)
        except KayentaError as exc:
            raise ValueError(str(exc).removeprefix("Datadog: ")) from None
        return value

    @classmethod
    def from_service(cls, settings: Mapping[str, Any]) -> DatadogSettings:
        """Return the ``datadog_*`` entries of the service's settings (prefix dropped)."""
        return own_settings(cls, DatadogSource.settings_prefix, settings)


class DatadogSource:
    """Metric queries against one Datadog site.

    Parameters
    ----------
    api_key, app_key : str
        The organisation's API key and an application key allowed to query timeseries.
    site : str
        ``datadoghq.com`` (default), ``datadoghq.eu``, ``us3.datadoghq.com``...: the API is
        ``https://api.<site>``.
    url : str, optional
        API base URL instead of the site's (a proxy, or a test server).
    rollup : str
        Rollup method of each step: avg (default), sum, min, max, count.
    timeout, deadline, retries, backoff : float, float, int, float
        Seconds per connect or read, total seconds of one request, retries of a transient
        failure (connection, timeout, 429, 5xx) and the first backoff (doubled each retry).
    max_points : int
        Points per series per request; longer windows are split into chunks and stitched.
    """

    name = "datadog"
    settings_prefix: ClassVar[str] = "datadog"
    settings_model: ClassVar[type[BaseModel]] = DatadogSettings
    setup_hint: ClassVar[str] = (
        "it needs datadog_api_key and datadog_app_key (KAYENTA_DATADOG_API_KEY, KAYENTA_DATADOG_APP_KEY)"
    )

    @classmethod
    def is_configured(cls, settings: Mapping[str, Any]) -> bool:
        """Return whether the service's settings set this source up (both keys set)."""
        own = DatadogSettings.from_service(settings)
        return bool(own.api_key and own.app_key)

    @classmethod
    def endpoint(cls, settings: Mapping[str, Any]) -> str | None:
        """Return the API base URL this source reads, as the service's settings give it."""
        own = DatadogSettings.from_service(settings)
        return own.url or site_url(own.site)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> DatadogSource:
        """Return the source the service's settings describe (``datadog_*``, ``fetch_concurrency``)."""
        own = DatadogSettings.from_service(settings)
        if not (own.api_key and own.app_key):
            raise FieldError(
                "source",
                "'datadog' is not set up (KAYENTA_DATADOG_API_KEY and KAYENTA_DATADOG_APP_KEY must be set)",
            )
        return cls(
            own.api_key.get_secret_value(),
            own.app_key.get_secret_value(),
            site=own.site,
            url=own.url,
            rollup=own.rollup,
            timeout=own.timeout,
            deadline=own.deadline,
            retries=own.retries,
            max_points=own.max_points,
            pool_size=max(32, int(settings.get("fetch_concurrency", 8))),
        )

    def __init__(
        self,
        api_key: str,
        app_key: str,
        *,
        site: str = "datadoghq.com",
        url: str | None = None,
        rollup: Rollup = "avg",
        verify_tls: bool = True,
        timeout: float = 10.0,
        deadline: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_points: int = MAX_POINTS,
        pool_size: int = 32,
    ) -> None:
        if not api_key or not app_key:
            raise KayentaError("Datadog: an API key and an application key are required")
        if rollup not in ROLLUPS:
            raise KayentaError(f"Datadog: unknown rollup {rollup!r} ({', '.join(ROLLUPS)})")
        if max_points < 1:
            raise KayentaError(f"max_points must be at least 1, got {max_points}")
        self.rollup = rollup
        self.max_points = max_points
        self._http = JsonClient(
            url or site_url(site),
            what="Datadog",
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            deadline=deadline,
            headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key, "Accept": "application/json"},
            verify_tls=verify_tls,
            pool_size=pool_size,
            error_text=_error_text,
        )
        self.url = self._http.url

    def __repr__(self) -> str:  # never show the keys
        return f"DatadogSource({redact_url(self.url)!r}, rollup={self.rollup!r})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._http.close()

    def render(self, metric: MetricConfig, scope: Scope, step: float | None = None) -> str:
        """Return the query ``metric`` runs for ``scope``, rolled up to ``step`` (default 60 s)."""
        what = f"metric {metric.name!r}"
        step_s = 60 if step is None else bucket_grid(metric.name, 0, float(step), step)[2]
        method: str | None = None
        if metric.query is not None:
            template = metric.query
        elif metric.kayenta_query is not None:
            template, method = kayenta_template(metric.kayenta_query, metric.filter_template, what=what)
        else:
            raise TemplateError(f"{what} has no query")
        query = render(template, scope.variables(), generated={INTERVAL: str(step_s)}, what=what)
        if "${" + INTERVAL + "}" in template:
            return query
        return with_rollup(query, method or self.rollup, step_s, what=what)

    def fetch(
        self,
        metric: MetricConfig,
        scope: Scope | str,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> list[MetricSet]:
        """Run the metric's query for ``scope`` over [start, end], one point per ``step`` seconds."""
        if isinstance(scope, str):
            scope = Scope(scope)
        if start is None or end is None or step is None:
            raise KayentaError(f"metric {metric.name!r}: Datadog needs start, end and step")
        first, last, step_s = bucket_grid(metric.name, start, end, step)
        query = self.render(metric, scope, step_s)  # refused here, before any request
        grid = Grid(first, last, step_s)
        for chunk_first, chunk_last in chunks(first, last, step_s, self.max_points):
            # from and to are inclusive seconds: the first bucket's start to the last bucket's last second.
            params = {"from": str(chunk_first), "to": str(chunk_last + step_s - 1), "query": query}
            document = self._http.get("/api/v1/query", params, metric=metric.name)
            for tags, rows in self._series(metric.name, document, step_s):
                grid.add(tags, rows)
        return grid.metric_sets(metric.name)

    def _series(self, metric: str, document: Any, step: int) -> list[tuple[Tags, list[tuple[float, float]]]]:
        where = f"Datadog {redact_url(self.url)}: metric {metric!r}"
        if not isinstance(document, dict) or not isinstance(document.get("series", []), list):
            raise SourceError(
                f"{where}: not a query answer: {str(document)[:200]}", url=self.url, metric=metric
            )
        if document.get("status") == "error" or document.get("error"):
            message = document.get("error") or "status error"
            raise SourceError(f"{where}: {message}", url=self.url, metric=metric, status=200, transient=False)
        items = document.get("series") or []
        several = len({item.get("query_index", 0) for item in items}) > 1
        out = []
        for item in items:
            interval = item.get("interval")
            if isinstance(interval, int | float) and not isinstance(interval, bool) and interval != step:
                raise SourceError(  # coarser points would sit on every n-th bucket of the grid
                    f"{where}: Datadog answered with {interval:g} s points for a {step} s step (it coarsens "
                    "answers with too many points); lower datadog_max_points or use a longer step",
                    url=self.url,
                    metric=metric,
                    status=200,
                    transient=False,
                )
            tags = dict(_tag(t) for t in item.get("tag_set") or [])
            if several:
                tags["query_index"] = str(item.get("query_index", 0))
            rows = [
                (float(point[0]) / 1000.0, number(point[1]))
                for point in item.get("pointlist") or []
                if isinstance(point, list) and len(point) == 2 and point[0] is not None
            ]
            out.append((tuple(sorted(tags.items())), rows))
        return out


def _tag(text: str) -> tuple[str, str]:
    key, _, value = str(text).partition(":")
    return key, value


def _error_text(response: requests.Response) -> str:
    """Datadog's own error messages (``{"errors": ["..."]}``), else the body."""
    try:
        document = response.json()
    except ValueError:
        return re.sub(r"\s+", " ", response.text.strip())[:500] or "(empty body)"
    if isinstance(document, dict) and isinstance(document.get("errors"), list):
        return "; ".join(str(e) for e in document["errors"])[:500] or "(no message)"
    return str(document)[:500]
