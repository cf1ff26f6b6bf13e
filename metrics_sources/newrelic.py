"""New Relic metrics source: NRQL through NerdGraph (``POST /graphql``), safe templates, retries, chunking.

A metric's ``query`` is an NRQL template without time clauses, e.g. ``SELECT average(duration) FROM
Transaction WHERE appName = 'checkout' AND version = '${scope}'``; scope values are escaped for
where they stand (:mod:`metrics_sources.nrql`) or refused naming the variable. The source adds
``TIMESERIES <step> seconds SINCE <start> UNTIL <end>`` (epoch seconds, on the multiples of the
step, so every bucket is ``[t, t+step)`` on the grid) for each chunk: NRQL answers at most 366
buckets per query, so longer windows are asked in chunks and stitched. The NRQL travels as a
GraphQL variable (``$nrql: Nrql!``): it cannot change the GraphQL document either.

Series: each value column of the answer (``average.duration``; several columns are tagged
``field``), per ``facet`` (tagged ``facet``) when the query has a FACET clause.

The user API key goes in the ``API-Key`` header, never in a URL, a message or a repr; in the
service's settings it is a secret (masked everywhere).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

import requests
from pydantic import Field, SecretStr

from kayenta_py.plugin import KayentaError, MetricConfig, Scope, SourceError
from metrics_sources.buckets import Series, Tags, bucket_grid, chunks, number
from metrics_sources.chunked_source import ChunkedHttpSource
from metrics_sources.nrql import TIME_CLAUSES, TemplateError, kayenta_query, render
from metrics_sources.own_settings import SourceSettings

MAX_BUCKETS = 366  # NRQL's limit of TIMESERIES buckets per query
REGIONS = {"us": "https://api.newrelic.com", "eu": "https://api.eu.newrelic.com"}
START, END = "startEpochSeconds", "endEpochSeconds"
GRAPHQL = (
    "query KayentaPyNrql($accountId: Int!, $nrql: Nrql!) "
    "{ actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }"
)
_TRANSIENT_CLASSES = frozenset({"TIMEOUT", "INTERNAL_SERVER_ERROR", "SERVER_ERROR", "SERVICE_UNAVAILABLE"})
_TIMESERIES = re.compile(r"\bTIMESERIES\s+(\d+)\s*(second|minute|hour)s?\b", re.IGNORECASE)
_UNITS = {"second": 1, "minute": 60, "hour": 3600}

__all__ = ["NewRelicSettings", "NewRelicSource", "TemplateError"]


class NewRelicSettings(SourceSettings):
    """The newrelic source's service settings: ``newrelic_<field>`` (``KAYENTA_NEWRELIC_<FIELD>``)."""

    prefix: ClassVar[str] = "newrelic"

    api_key: SecretStr | None = Field(None, description="New Relic user API key (API-Key header)")
    account_id: int | None = Field(None, ge=1, description="the account the NRQL runs in")
    region: Literal["us", "eu"] = Field("us", description="us (api.newrelic.com) or eu (api.eu.newrelic.com)")
    url: str | None = Field(None, description="NerdGraph base URL instead of the region's (a proxy)")
    scope_key: str | None = Field(None, description="attribute Kayenta select queries match the scope on")
    location_key: str | None = Field(None, description="attribute they match the location on")
    timeout: float = Field(10.0, gt=0, description="seconds per connect and per read")
    deadline: float = Field(30.0, gt=0, description="total seconds of one request, retries included")
    retries: int = Field(3, ge=0, description="retries on connection errors, 429 and 5xx")
    max_points: int = Field(MAX_BUCKETS, ge=1, le=MAX_BUCKETS, description="TIMESERIES buckets per query")


class NewRelicSource(ChunkedHttpSource[None]):
    """NRQL queries through NerdGraph against one New Relic account.

    Parameters
    ----------
    api_key : str
        A user API key (``NRAK-...``) allowed to query the account.
    account_id : int
        The account the NRQL runs in.
    region : str
        ``us`` (default, ``https://api.newrelic.com``) or ``eu``.
    url : str, optional
        NerdGraph base URL instead of the region's (a proxy, or a test server).
    scope_key, location_key : str, optional
        The attributes Kayenta ``select`` queries match the scope and location on (the scope's
        ``_scope_key``/``_location_key`` parameters win).
    timeout, deadline, retries, backoff : float, float, int, float
        Seconds per connect or read, total seconds of one request, retries of a transient
        failure (connection, timeout, 429, 5xx) and the first backoff (doubled each retry).
    max_points : int
        TIMESERIES buckets per query, at most 366; longer windows are split into chunks.
    """

    name = "newrelic"
    what = "New Relic"
    settings_prefix = NewRelicSettings.prefix
    settings_model = NewRelicSettings
    setup_hint = (
        "it needs newrelic_api_key and newrelic_account_id (KAYENTA_NEWRELIC_API_KEY, "
        "KAYENTA_NEWRELIC_ACCOUNT_ID)"
    )
    required = ("api_key", "account_id")
    repr_field = "account_id"

    @classmethod
    def endpoint(cls, settings: Mapping[str, Any]) -> str | None:
        """Return the NerdGraph base URL this source uses, as the service's settings give it."""
        own = NewRelicSettings.from_service(settings)
        return own.url or REGIONS[own.region]

    def __init__(
        self,
        api_key: str,
        *,
        account_id: int,
        region: Literal["us", "eu"] = "us",
        url: str | None = None,
        scope_key: str | None = None,
        location_key: str | None = None,
        verify_tls: bool = True,
        timeout: float = 10.0,
        deadline: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_points: int = MAX_BUCKETS,
        pool_size: int = 32,
    ) -> None:
        if not api_key:
            raise KayentaError("New Relic: an API key is required")
        if isinstance(account_id, bool) or not isinstance(account_id, int) or account_id < 1:
            raise KayentaError(f"New Relic: account_id must be a positive integer, got {account_id!r}")
        if region not in REGIONS:
            raise KayentaError(f"New Relic: unknown region {region!r} (us, eu)")
        if not 1 <= max_points <= MAX_BUCKETS:
            raise KayentaError(f"max_points must be between 1 and {MAX_BUCKETS}, got {max_points}")
        self.account_id = account_id
        self.scope_key, self.location_key = scope_key, location_key
        super().__init__(
            url or REGIONS[region],
            max_points=max_points,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            deadline=deadline,
            headers={"API-Key": api_key, "Accept": "application/json"},
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
        """Return the NRQL ``metric`` runs for ``scope`` (for the window's first chunk, when one is given)."""
        if start is None or end is None or step is None:
            return self._render(metric, scope, None, None, 60 if step is None else int(step))
        first, last, step_s = bucket_grid(metric.name, start, end, step)
        chunk_first, chunk_last = next(chunks(first, last, step_s, self.max_points), (first, first))
        return self._render(metric, scope, chunk_first, chunk_last + step_s, step_s)

    def _render(
        self, metric: MetricConfig, scope: Scope, since: int | None, until: int | None, step: int
    ) -> str:
        what = f"metric {metric.name!r}"
        if metric.query is not None:
            template, timed = metric.query, False
        elif metric.kayenta_query is not None:
            template, timed = kayenta_query(
                metric.kayenta_query,
                metric.filter_template,
                scope,
                scope_key=self.scope_key,
                location_key=self.location_key,
                what=what,
            )
        else:
            raise TemplateError(f"{what} has no query")
        times = {START: "<start>", END: "<end>"} if since is None else {START: str(since), END: str(until)}
        query, code = render(template, scope.variables(), generated=times, what=what)
        if timed:
            _check_own_time_clauses(template, code, step, what)
            return query
        if found := TIME_CLAUSES.search(code):
            raise TemplateError(
                f"{what}: the NRQL template holds {found.group(1).upper()}; leave out TIMESERIES, SINCE, "
                "UNTIL and COMPARE WITH: the source adds them for the window and step"
            )
        window = "SINCE <start> UNTIL <end>" if since is None else f"SINCE {since} UNTIL {until}"
        return f"{query}\nTIMESERIES {step} seconds {window}"

    def _prepare(self, metric: MetricConfig, scope: Scope, first: int, step: int) -> None:
        self._render(metric, scope, first, first + step, step)

    def _fetch_chunk(
        self, metric: MetricConfig, scope: Scope, prepared: None, first: int, last: int, step: int
    ) -> list[Series]:
        nrql = self._render(metric, scope, first, last + step, step)
        body = {"query": GRAPHQL, "variables": {"accountId": self.account_id, "nrql": nrql}}
        return self._series(metric.name, self._http.post("/graphql", body, metric=metric.name))

    def _series(self, metric: str, document: Any) -> list[Series]:
        where = self._where(metric)
        if not isinstance(document, dict):
            raise SourceError(
                f"{where}: not a NerdGraph answer: {str(document)[:200]}", url=self.url, metric=metric
            )
        errors = document.get("errors") or []
        if errors:
            classes = {
                str((e.get("extensions") or {}).get("errorClass", "")) for e in errors if isinstance(e, dict)
            }
            message = "; ".join(str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in errors)
            raise SourceError(
                f"{where}: NerdGraph: {message[:500]}",
                url=self.url,
                metric=metric,
                status=200,
                transient=bool(classes & _TRANSIENT_CLASSES),
            )
        try:
            results = document["data"]["actor"]["account"]["nrql"]["results"]
        except (KeyError, TypeError):
            raise SourceError(
                f"{where}: no data.actor.account.nrql.results in the answer: {str(document)[:200]}",
                url=self.url,
                metric=metric,
            ) from None
        series: dict[Tags, list[tuple[float, float]]] = {}
        columns = _value_columns(results or [])
        for row in results or []:
            if not isinstance(row, dict) or row.get("beginTimeSeconds") is None:
                continue
            facet = row.get("facet")
            base = (
                {"facet": ",".join(map(str, facet)) if isinstance(facet, list) else str(facet)}
                if facet
                else {}
            )
            for column in columns:
                tags = {**base, "field": column} if len(columns) > 1 else base
                value = _column(row, column)
                series.setdefault(tuple(sorted(tags.items())), []).append(
                    (float(row["beginTimeSeconds"]), value)
                )
        return list(series.items())


def _value_columns(results: list[Any]) -> list[str]:
    """The answer's value columns (numbers, nulls or one level of nested numbers, e.g. percentiles)."""
    columns: dict[str, None] = {}
    for row in results:
        if not isinstance(row, dict):
            continue
        for key, value in row.items():
            if key in ("beginTimeSeconds", "endTimeSeconds", "facet") or isinstance(value, str | bool | list):
                continue
            if isinstance(value, dict):
                columns.update({f"{key}.{sub}": None for sub in value})
            else:
                columns[key] = None
    return list(columns)


def _column(row: Mapping[str, Any], column: str) -> float:
    if column in row:
        return number(row[column])
    key, _, sub = column.rpartition(".")
    nested = row.get(key)
    return number(nested.get(sub)) if isinstance(nested, dict) else float("nan")


def _check_own_time_clauses(template: str, code: str, step: int, what: str) -> None:
    """A Kayenta template times itself: it needs the window's variables and a TIMESERIES of the step."""
    for name in (START, END):
        if "${" + name + "}" not in template:
            raise TemplateError(f"{what}: the NRQL template needs SINCE ${{{START}}} UNTIL ${{{END}}}")
    match = _TIMESERIES.search(code)
    if match is None:
        raise TemplateError(f"{what}: the NRQL template needs TIMESERIES {step} seconds (the step)")
    seconds = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if seconds != step:
        raise TemplateError(
            f"{what}: the template's TIMESERIES is {seconds} s but the step is {step} s; "
            f"make them agree (TIMESERIES {step} seconds, or --step {seconds})"
        )


def _error_text(response: requests.Response) -> str:
    """NerdGraph's own error messages (``{"errors": [{"message": ...}]}``), else the body."""
    try:
        document = response.json()
    except ValueError:
        return re.sub(r"\s+", " ", response.text.strip())[:500] or "(empty body)"
    if isinstance(document, dict) and isinstance(document.get("errors"), list):
        messages = [str(e.get("message", e)) if isinstance(e, dict) else str(e) for e in document["errors"]]
        return "; ".join(messages)[:500] or "(no message)"
    return str(document)[:500]
