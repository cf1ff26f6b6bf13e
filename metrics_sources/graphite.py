"""Graphite metrics source: the render API (``/render?format=json``), safe targets, retries, chunking.

Security rule: scope values never change a query. A metric's ``query`` is a Graphite target
template; every ``${variable}`` value (scope, location, extended parameters) must be a plain metric
path: letters, digits, ``_`` and ``-``, in dot-separated nodes (``v2``, ``eu-west-1``,
``checkout.v2``). Anything else (``*``, ``?``, ``[]``, ``{}``, ``,``, ``(``, ``)``, quotes, ``=``,
spaces, backslashes, newlines, an empty value) could add functions, arguments or wildcards and is
refused before any request, by an error naming the variable. An undefined variable is refused too.

Consolidation: the rendered target is summarized to the step, ``summarize(target, "60s", "avg")``
(the consolidation function is a setting), so its points are the buckets ``[t, t+step)`` on the
multiples of the step; a template that uses ``${interval}`` (the step, ``60s``) consolidates itself
and is sent as written. Each series is keyed by its ``target`` name: name the series that pair with
``aliasByNode``/``alias`` when a target returns several per side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar, Literal

import requests
from pydantic import Field, SecretStr

from kayenta_py.plugin import KayentaError, MetricConfig, Scope, SourceError, did_you_mean
from metrics_sources.buckets import Series, number, whole_step
from metrics_sources.chunked_source import ChunkedHttpSource
from metrics_sources.own_settings import SourceSettings

MAX_POINTS = 10_000  # buckets per series per request (graphite-web has no limit; keeps answers small)
INTERVAL = "interval"
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.-]*)\}")
_KAYENTA_VARIABLE = re.compile(r"\$(scope|location)\b")
_SAFE_PATH = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*")
Consolidation = Literal["avg", "sum", "min", "max", "last", "median"]


class TemplateError(KayentaError):
    """A Graphite target template cannot be rendered safely (undefined variable, unsafe value)."""


def render(template: str, variables: Mapping[str, str], *, generated: Mapping[str, str], what: str) -> str:
    """Substitute ``${name}`` in a target template; every value must be a plain metric path.

    ``generated`` holds the source's own values (``interval``), which win over ``variables``.

    Raises
    ------
    TemplateError
        For an undefined variable (named, with the near match) or a value that is not a plain path.
    """

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in generated:
            return generated[name]
        if name not in variables:
            known = ", ".join(sorted({*variables, *generated})) or "none"
            hint = did_you_mean(name, [*variables, *generated])
            raise TemplateError(f"{what}: undefined variable ${{{name}}}{hint} (defined: {known})")
        return safe_path(variables[name], name, what)

    return _PLACEHOLDER.sub(value, template)


def safe_path(value: str, name: str, what: str) -> str:
    """Return ``value`` if it is a plain metric path (dot-separated nodes of ``[A-Za-z0-9_-]``)."""
    if _SAFE_PATH.fullmatch(value):
        return value
    raise TemplateError(
        f"{what}: ${{{name}}} has the value {value!r}, which is not a plain Graphite metric path "
        "(letters, digits, _ and - in dot-separated nodes); wildcards, commas, parentheses, quotes "
        "and spaces could change the target and are refused"
    )


class GraphiteSettings(SourceSettings):
    """The graphite source's service settings: ``graphite_<field>`` (``KAYENTA_GRAPHITE_<FIELD>``)."""

    prefix: ClassVar[str] = "graphite"

    url: str | None = Field(None, description="graphite-web base URL, e.g. http://graphite:8080")
    username: str | None = Field(None, description="HTTP basic-auth user (with password)")
    password: SecretStr | None = Field(None, description="that user's password")
    consolidation: Consolidation = Field("avg", description="summarize() function of each step")
    timeout: float = Field(10.0, gt=0, description="seconds per connect and per read")
    deadline: float = Field(30.0, gt=0, description="total seconds of one request, retries included")
    retries: int = Field(3, ge=0, description="retries on connection errors, 429 and 5xx")
    max_points: int = Field(MAX_POINTS, ge=1, description="buckets per series per request")


class GraphiteSource(ChunkedHttpSource[str]):
    """Render-API queries against one graphite-web.

    Parameters
    ----------
    url : str
        Base URL of graphite-web, e.g. ``http://graphite:8080`` (a path prefix is kept).
    username, password : str, optional
        HTTP basic auth.
    consolidation : str
        ``summarize`` function per step: avg (default), sum, min, max, last, median.
    timeout, deadline, retries, backoff : float, float, int, float
        Seconds per connect or read, total seconds of one request, retries of a transient
        failure (connection, timeout, 429, 5xx) and the first backoff (doubled each retry).
    max_points : int
        Buckets per series per request; longer windows are split into chunks and stitched.
    """

    name = "graphite"
    what = "Graphite"
    settings_prefix = GraphiteSettings.prefix
    settings_model = GraphiteSettings
    setup_hint = "it needs graphite_url (KAYENTA_GRAPHITE_URL), which is not set"
    required = ("url",)
    repr_field = "consolidation"

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        consolidation: Consolidation = "avg",
        verify_tls: bool = True,
        timeout: float = 10.0,
        deadline: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_points: int = MAX_POINTS,
        pool_size: int = 32,
    ) -> None:
        if consolidation not in ("avg", "sum", "min", "max", "last", "median"):
            raise KayentaError(f"Graphite: unknown consolidation {consolidation!r} (avg, sum, min, max, ...)")
        self.consolidation = consolidation
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

    def render(self, metric: MetricConfig, scope: Scope, step: float | None = None) -> str:
        """Return the target ``metric`` renders for ``scope`` (consolidated to ``step``, default 60)."""
        what = f"metric {metric.name!r}"
        step_s = 60 if step is None else whole_step(metric.name, step)
        interval = {INTERVAL: f"{step_s}s"}
        if metric.query is not None:
            template = metric.query
        elif metric.kayenta_query is not None:  # Kayenta's template(metricName, scope="...")
            name = metric.kayenta_query.get("metricName")
            if not isinstance(name, str) or not name:
                raise TemplateError(f"{what}: query.metricName is required")
            template = _KAYENTA_VARIABLE.sub(r"${\1}", name)
        else:
            raise TemplateError(f"{what} has no query")
        target = render(template, scope.variables(), generated=interval, what=what)
        if "${" + INTERVAL + "}" in template:
            return target
        return f'summarize({target}, "{step_s}s", "{self.consolidation}")'

    def _prepare(self, metric: MetricConfig, scope: Scope, first: int, step: int) -> str:
        return self.render(metric, scope, step)

    def _fetch_chunk(
        self, metric: MetricConfig, scope: Scope, prepared: str, first: int, last: int, step: int
    ) -> list[Series]:
        # Graphite reads (from, until]: from one second before the first bucket to its last second.
        params = {"target": prepared, "from": str(first - 1), "until": str(last + step - 1), "format": "json"}
        document = self._http.get("/render", params, metric=metric.name)
        if not isinstance(document, list):
            raise SourceError(
                f"{self._where(metric.name)}: not a render answer: {str(document)[:200]}",
                url=self.url,
                metric=metric.name,
            )
        return [
            (
                (("target", str(item.get("target", ""))),),
                [(float(t), number(v)) for v, t in item.get("datapoints") or [] if t is not None],
            )
            for item in document
        ]


def _error_text(response: requests.Response) -> str:
    """graphite-web's error text (its debug pages are HTML: their first line that says something)."""
    text = response.text.strip()
    if text.startswith("<"):
        match = re.search(r"<title>(.*?)</title>", text, re.DOTALL)
        text = match.group(1).strip() if match else re.sub(r"<[^>]+>", " ", text)
    return " ".join(text.split())[:500] or "(empty body)"
