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
from pydantic import Field, SecretStr, field_validator

from kayenta_py.plugin import KayentaError, MetricConfig, Scope, SourceError, did_you_mean
from metrics_sources.buckets import Series, number, whole_step
from metrics_sources.chunked_source import ChunkedHttpSource
from metrics_sources.ddquery import INTERVAL, ROLLUPS, TemplateError, kayenta_template, render, with_rollup
from metrics_sources.own_settings import SourceSettings

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


class DatadogSettings(SourceSettings):
    """The datadog source's service settings: ``datadog_<field>`` (``KAYENTA_DATADOG_<FIELD>``)."""

    prefix: ClassVar[str] = "datadog"

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


class DatadogSource(ChunkedHttpSource[str]):
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
    what = "Datadog"
    settings_prefix = DatadogSettings.prefix
    settings_model = DatadogSettings
    setup_hint = (
        "it needs datadog_api_key and datadog_app_key (KAYENTA_DATADOG_API_KEY, KAYENTA_DATADOG_APP_KEY)"
    )
    required = ("api_key", "app_key")
    repr_field = "rollup"

    @classmethod
    def endpoint(cls, settings: Mapping[str, Any]) -> str | None:
        """Return the API base URL this source reads, as the service's settings give it."""
        own = DatadogSettings.from_service(settings)
        return own.url or site_url(own.site)

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
        self.rollup = rollup
        self.checked_points(max_points)  # named before an unknown site, as it always was
        super().__init__(
            url or site_url(site),
            max_points=max_points,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            deadline=deadline,
            headers={"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key, "Accept": "application/json"},
            verify_tls=verify_tls,
            pool_size=pool_size,
            error_text=_error_text,
        )

    def render(self, metric: MetricConfig, scope: Scope, step: float | None = None) -> str:
        """Return the query ``metric`` runs for ``scope``, rolled up to ``step`` (default 60 s)."""
        what = f"metric {metric.name!r}"
        step_s = 60 if step is None else whole_step(metric.name, step)
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

    def _prepare(self, metric: MetricConfig, scope: Scope, first: int, step: int) -> str:
        return self.render(metric, scope, step)

    def _fetch_chunk(
        self, metric: MetricConfig, scope: Scope, prepared: str, first: int, last: int, step: int
    ) -> list[Series]:
        # from and to are inclusive seconds: the first bucket's start to the last bucket's last second.
        params = {"from": str(first), "to": str(last + step - 1), "query": prepared}
        return self._series(metric.name, self._http.get("/api/v1/query", params, metric=metric.name), step)

    def _series(self, metric: str, document: Any, step: int) -> list[Series]:
        where = self._where(metric)
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
