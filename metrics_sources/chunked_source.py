"""The skeleton the bucketing sources share: set-up from the service's settings, and chunked fetches.

:class:`ChunkedSource` reads a source's own settings (``<prefix>_<field>``, a
:class:`~metrics_sources.own_settings.SourceSettings`) and runs a fetch: the window becomes the step
grid of :func:`~metrics_sources.buckets.bucket_grid`, the query is rendered (and refused) before any
request, the grid is asked in chunks and the series are stitched. A source implements three hooks:
``_prepare`` (render the query once, for the checks), ``_fetch_chunk`` (ask one chunk, parse the
answer into series) and, when its chunks are not ``max_points`` buckets, ``_chunk_points``.

:class:`ChunkedHttpSource` adds the :class:`~metrics_sources.http_retry.JsonClient` of an HTTP source,
its repr (the URL without credentials) and ``close``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Generic, Self, TypeVar

from pydantic import SecretStr

from kayenta_py.plugin import FieldError, KayentaError, MetricConfig, MetricSet, Scope, redact_url
from metrics_sources.buckets import Grid, Series, bucket_grid, chunks
from metrics_sources.http_retry import ErrorText, JsonClient, body_text
from metrics_sources.own_settings import SourceSettings

Prepared = TypeVar("Prepared")


class ChunkedSource(Generic[Prepared]):
    """A source that fetches the step grid in chunks; ``Prepared`` is what ``_prepare`` renders.

    Class attributes: ``name``, ``what`` (the server's kind in messages, ``InfluxDB``),
    ``settings_prefix``, ``settings_model``, ``setup_hint`` and ``required``: the settings that set
    the source up (all must be set). Every field of ``settings_model`` is a keyword of the
    constructor, which also takes ``pool_size``.
    """

    name: ClassVar[str]
    what: ClassVar[str]
    settings_prefix: ClassVar[str]
    settings_model: ClassVar[type[SourceSettings]]
    setup_hint: ClassVar[str]
    required: ClassVar[tuple[str, ...]]
    empty_series: ClassVar[bool] = True
    """Whether a series the answers name without a single row is kept (all NaN)."""
    max_points: int

    @classmethod
    def is_configured(cls, settings: Mapping[str, Any]) -> bool:
        """Return whether the service's settings set this source up (every ``required`` setting set)."""
        own = cls.settings_model.from_service(settings)
        return all(getattr(own, field) for field in cls.required)

    @classmethod
    def endpoint(cls, settings: Mapping[str, Any]) -> str | None:
        """Return the URL this source reads, as the service's settings give it (None: not set up)."""
        url = getattr(cls.settings_model.from_service(settings), "url", None)
        return None if url is None else str(url)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Self:
        """Return the source the service's settings describe (``<prefix>_*``, ``fetch_concurrency``)."""
        own = cls.settings_model.from_service(settings)
        if not all(getattr(own, field) for field in cls.required):
            names = [f"KAYENTA_{cls.settings_prefix}_{field}".upper() for field in cls.required]
            missing = f"{names[0]} is not set" if len(names) == 1 else f"{' and '.join(names)} must be set"
            raise FieldError("source", f"{cls.name!r} is not set up ({missing})")
        arguments = {
            key: value.get_secret_value() if isinstance(value, SecretStr) else value for key, value in own
        }
        arguments["pool_size"] = max(32, int(settings.get("fetch_concurrency", 8)))
        return cls(**arguments)

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
            raise KayentaError(f"metric {metric.name!r}: {self.what} needs start, end and step")
        first, last, step_s = bucket_grid(metric.name, start, end, step)
        prepared = self._prepare(metric, scope, first, step_s)  # refused here, before any request
        grid = Grid(first, last, step_s)
        for chunk_first, chunk_last in chunks(first, last, step_s, self._chunk_points(prepared)):
            for tags, rows in self._fetch_chunk(metric, scope, prepared, chunk_first, chunk_last, step_s):
                grid.add(tags, rows)
        return grid.metric_sets(metric.name, empty=self.empty_series)

    def _prepare(self, metric: MetricConfig, scope: Scope, first: int, step: int) -> Prepared:
        """Render the query (of the chunk starting at ``first``), raising if it cannot be sent."""
        raise NotImplementedError

    def _chunk_points(self, prepared: Prepared) -> int:
        """Buckets per chunk."""
        return self.max_points

    def _fetch_chunk(
        self, metric: MetricConfig, scope: Scope, prepared: Prepared, first: int, last: int, step: int
    ) -> Iterable[Series]:
        """Ask for the buckets ``first, first+step, ... last`` and return the answer's series."""
        raise NotImplementedError


class ChunkedHttpSource(ChunkedSource[Prepared]):
    """A :class:`ChunkedSource` that asks one HTTP server through a :class:`JsonClient`.

    Parameters
    ----------
    url : str
        Base URL of the server (a path prefix is kept).
    max_points : int
        Buckets per chunk (at least 1).
    error_text : callable
        What the server's error answers say (its own message rather than the raw body).
    timeout, retries, backoff, deadline, headers, username, password, verify_tls, pool_size
        As :class:`JsonClient`.
    """

    def __init__(
        self,
        url: str,
        *,
        max_points: int,
        timeout: float,
        retries: int,
        backoff: float,
        deadline: float,
        verify_tls: bool,
        pool_size: int,
        headers: Mapping[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
        error_text: ErrorText = body_text,
    ) -> None:
        self.max_points = self.checked_points(max_points)
        self._http = JsonClient(
            url,
            what=self.what,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            deadline=deadline,
            headers=headers,
            username=username,
            password=password,
            verify_tls=verify_tls,
            pool_size=pool_size,
            error_text=error_text,
        )
        self.url = self._http.url

    @staticmethod
    def checked_points(max_points: int) -> int:
        """Return ``max_points`` if it is at least 1, else raise :class:`KayentaError`."""
        if max_points < 1:
            raise KayentaError(f"max_points must be at least 1, got {max_points}")
        return max_points

    repr_field: ClassVar[str]
    """The attribute the repr shows after the URL (never a credential)."""

    def __repr__(self) -> str:  # never show credentials
        shown = getattr(self, self.repr_field)
        return f"{type(self).__name__}({redact_url(self.url)!r}, {self.repr_field}={shown!r})"

    def close(self) -> None:
        """Close the HTTP session."""
        self._http.close()

    def _where(self, metric: str) -> str:
        """The start of an error message: the server (without credentials) and the metric."""
        return f"{self.what} {redact_url(self.url)}: metric {metric!r}"
