"""CloudWatch metrics source: GetMetricData through boto3, scope-safe queries, retries, chunking.

The queries are built by :mod:`metrics_sources.cloudwatch_query` (expressions, MetricStats, Argo
Rollouts' metricDataQueries); scope values never change a query. Every query's ``Period`` is the
step, which must be a CloudWatch period (1, 5, 10, 30 s or a multiple of 60 s); buckets sit on
multiples of the step (``[t, t+step)``, see :mod:`metrics_sources.buckets`).

Limits: one GetMetricData call returns at most 100,800 datapoints; a window is split into chunks
of at most ``max_datapoints / len(queries)`` buckets, and each call follows its ``NextToken``
pages. Retries: throttling (``Throttling``, ``ThrottlingException``, HTTP 429), HTTP 5xx,
connection errors and timeouts are retried with exponential backoff (``backoff``, doubled each
time, at most ``max_wait``) within ``deadline``; any other error (a refused query, bad
credentials) fails at once as a permanent :class:`SourceError`. Botocore's own retries are off.

Each returned series is tagged ``id`` (its query's id) and ``label`` (CloudWatch's label).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    PartialCredentialsError,
    ReadTimeoutError,
)
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator

from kayenta_py.plugin import KayentaError, MetricConfig, Scope, SourceError
from metrics_sources.buckets import Series, number, whole_step
from metrics_sources.chunked_source import ChunkedSource
from metrics_sources.cloudwatch_query import build_queries, render_queries, valid_period
from metrics_sources.own_settings import SourceSettings

MAX_DATAPOINTS = 100_800  # datapoints one GetMetricData call returns at most
THROTTLING = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
    }
)
_TRANSPORT = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)
_REGION = re.compile(r"[a-z]{2}(-[a-z0-9]+)+")


class CloudWatchSettings(SourceSettings):
    """The cloudwatch source's service settings: ``cloudwatch_<field>`` (``KAYENTA_CLOUDWATCH_<FIELD>``)."""

    prefix: ClassVar[str] = "cloudwatch"

    region: str | None = Field(None, description="AWS region, e.g. eu-west-1 (sets the source up)")
    endpoint_url: str | None = Field(None, description="another endpoint: a VPC endpoint, moto")
    access_key_id: SecretStr | None = Field(None, description="explicit credentials (default: boto3's chain)")
    secret_access_key: SecretStr | None = Field(
        None, validate_default=True, description="the secret of access_key_id"
    )
    session_token: SecretStr | None = Field(None, description="a session token with those keys")
    profile: str | None = Field(None, description="a profile of the AWS config files")
    timeout: float = Field(10.0, gt=0, description="seconds per connect and per read")
    deadline: float = Field(30.0, gt=0, description="total seconds of one call, retries included")
    retries: int = Field(3, ge=0, description="retries on throttling, 5xx and connection errors")
    backoff: float = Field(0.5, ge=0, description="first wait before a retry, doubled each time")
    max_datapoints: int = Field(MAX_DATAPOINTS, ge=1, le=MAX_DATAPOINTS, description="datapoints per call")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str | None) -> str | None:
        if value is not None and not _REGION.fullmatch(value):
            raise ValueError(f"{value!r} is not an AWS region name (e.g. eu-west-1)")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _endpoint(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"https?://[^/\s]+", value):
            raise ValueError("must start with http:// or https:// and a host")
        return value

    @field_validator("secret_access_key")
    @classmethod
    def _keys_pair(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if (info.data.get("access_key_id") is None) != (value is None):
            raise ValueError("access_key_id and secret_access_key are given together or not at all")
        return value


class CloudWatchSource(ChunkedSource[list[dict[str, Any]]]):
    """GetMetricData queries against CloudWatch in one region.

    Parameters
    ----------
    region : str
        The AWS region (``eu-west-1``).
    endpoint_url : str, optional
        Another endpoint than the region's: a VPC endpoint, or moto's server in tests.
    access_key_id, secret_access_key, session_token : str, optional
        Explicit credentials; without them boto3's chain (environment, config files, instance or
        pod role) supplies them. ``profile`` picks a profile of the AWS config files.
    timeout, deadline, retries, backoff : float, float, int, float
        Seconds per connect or read, total seconds of one call, retries of throttling, 5xx and
        connection errors, and the first backoff (doubled each retry).
    max_datapoints : int
        Datapoints per call (GetMetricData returns at most 100,800); longer windows are chunked.
    """

    name = "cloudwatch"
    what = "CloudWatch"
    settings_prefix = CloudWatchSettings.prefix
    settings_model = CloudWatchSettings
    setup_hint = "it needs cloudwatch_region (KAYENTA_CLOUDWATCH_REGION), which is not set"
    required = ("region",)
    empty_series = False  # a query that matched nothing in the window is no series

    @classmethod
    def endpoint(cls, settings: Mapping[str, Any]) -> str | None:
        """Return the endpoint this source calls, as the service's settings give it (None: not set up)."""
        own = CloudWatchSettings.from_service(settings)
        if own.endpoint_url or not own.region:
            return own.endpoint_url
        return f"https://monitoring.{own.region}.amazonaws.com"

    def __init__(
        self,
        region: str,
        *,
        endpoint_url: str | None = None,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        timeout: float = 10.0,
        deadline: float = 30.0,
        retries: int = 3,
        backoff: float = 0.5,
        max_wait: float = 10.0,
        max_datapoints: int = MAX_DATAPOINTS,
        pool_size: int = 32,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        try:
            CloudWatchSettings(
                region=region,
                endpoint_url=endpoint_url,
                access_key_id=access_key_id,
                secret_access_key=secret_access_key,
                timeout=timeout,
                deadline=deadline,
                retries=retries,
                backoff=backoff,
                max_datapoints=max_datapoints,
            )
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in error["loc"])
            raise KayentaError(
                f"CloudWatch: {where}: {str(error['msg']).removeprefix('Value error, ')}"
            ) from None
        if session_token is not None and access_key_id is None:
            raise KayentaError("CloudWatch: a session_token needs access_key_id and secret_access_key")
        self.region, self.endpoint_url = region, endpoint_url
        self.url = endpoint_url or f"https://monitoring.{region}.amazonaws.com"
        self.deadline, self.retries, self.backoff, self.max_wait = deadline, retries, backoff, max_wait
        self.max_datapoints = max_datapoints
        self._sleep = sleep
        try:
            session = boto3.session.Session(
                aws_access_key_id=access_key_id,
                aws_secret_access_key=secret_access_key,
                aws_session_token=session_token,
                region_name=region,
                profile_name=profile,
            )
        except BotoCoreError as exc:  # an unknown profile
            raise KayentaError(f"CloudWatch: {exc}") from None
        config = Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"total_max_attempts": 1, "mode": "standard"},  # retried here, on transient errors only
            max_pool_connections=pool_size,
            user_agent_extra="kayenta-py",
        )
        self._client = session.client("cloudwatch", endpoint_url=endpoint_url, config=config)

    def __repr__(self) -> str:  # never show credentials
        return f"CloudWatchSource(region={self.region!r}, endpoint={self.url!r})"

    def close(self) -> None:
        """Close the client's connections."""
        self._client.close()

    def render(
        self,
        metric: MetricConfig,
        scope: Scope,
        start: float | None = None,
        end: float | None = None,
        step: float | None = None,
    ) -> str:
        """Return the MetricDataQueries ``metric`` sends for ``scope`` (JSON; Period the step)."""
        if step is None:
            return render_queries(build_queries(metric, scope, "<step>"))
        step_s = valid_period(metric.name, whole_step(metric.name, step))
        return render_queries(build_queries(metric, scope, step_s))

    def _prepare(self, metric: MetricConfig, scope: Scope, first: int, step: int) -> list[dict[str, Any]]:
        return build_queries(metric, scope, valid_period(metric.name, step))

    def _chunk_points(self, prepared: list[dict[str, Any]]) -> int:
        return max(1, self.max_datapoints // len(prepared))

    def _fetch_chunk(
        self,
        metric: MetricConfig,
        scope: Scope,
        prepared: list[dict[str, Any]],
        first: int,
        last: int,
        step: int,
    ) -> list[Series]:
        return self._query(metric.name, prepared, first, last + step)

    def _query(self, metric: str, queries: list[dict[str, Any]], start: int, end: int) -> list[Series]:
        """GetMetricData for [start, end), every page; (tags, [(time, value)]) per result."""
        request: dict[str, Any] = {
            "MetricDataQueries": queries,
            "StartTime": datetime.fromtimestamp(start, UTC),
            "EndTime": datetime.fromtimestamp(end, UTC),
            "ScanBy": "TimestampAscending",
            "MaxDatapoints": self.max_datapoints,
        }
        out: list[Series] = []
        while True:
            page = self._call(metric, request)
            for result in page.get("MetricDataResults") or []:
                self._check_status(metric, result, page)
                tags = (("id", str(result.get("Id", ""))), ("label", str(result.get("Label", ""))))
                found = [
                    (stamp.timestamp(), number(value))
                    for stamp, value in zip(
                        result.get("Timestamps") or [], result.get("Values") or [], strict=False
                    )
                ]
                out.append((tags, found))
            token = page.get("NextToken")
            if not token:
                return out
            request = {**request, "NextToken": token}

    def _check_status(self, metric: str, result: Mapping[str, Any], page: Mapping[str, Any]) -> None:
        status = result.get("StatusCode", "Complete")
        if status in ("Complete", "PartialData"):
            return
        said = "; ".join(
            str(m.get("Value", m)) for m in [*result.get("Messages", []), *page.get("Messages", [])]
        )
        raise SourceError(
            f"{self._where(metric)}: query {result.get('Id')!r}: {status}{': ' + said if said else ''}",
            url=self.url,
            metric=metric,
            transient=status == "InternalError",
        )

    def _where(self, metric: str) -> str:
        return f"CloudWatch {self.url}: metric {metric!r}"

    def _call(self, metric: str, request: Mapping[str, Any]) -> Mapping[str, Any]:
        """One GetMetricData call, retried on throttling, 5xx and connection errors."""
        where = self._where(metric)
        began = time.monotonic()
        attempt = 0
        while True:
            status: int | None = None
            try:
                return self._client.get_metric_data(**request)
            except ClientError as exc:
                error = exc.response.get("Error", {})
                code = str(error.get("Code", ""))
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                failure = f"{code or 'error'} (HTTP {status}): {error.get('Message') or '(no message)'}"
                if not (code in THROTTLING or status == 429 or (status is not None and status >= 500)):
                    raise SourceError(
                        f"{where}: {failure}", url=self.url, metric=metric, status=status, transient=False
                    ) from None
            except _TRANSPORT as exc:
                failure = f"cannot reach it ({type(exc).__name__}: {exc})"
            except (NoCredentialsError, PartialCredentialsError) as exc:
                raise SourceError(
                    f"{where}: {exc} (set cloudwatch_access_key_id and cloudwatch_secret_access_key, "
                    "or credentials of boto3's chain: AWS_ACCESS_KEY_ID..., a profile, a role)",
                    url=self.url,
                    metric=metric,
                    transient=False,
                ) from None
            except BotoCoreError as exc:  # a request botocore refuses to send (its parameter checks)
                raise SourceError(f"{where}: {exc}", url=self.url, metric=metric, transient=False) from None
            wait = min(self.backoff * 2**attempt, self.max_wait)
            spent = time.monotonic() - began
            if attempt >= self.retries or spent + wait >= self.deadline:
                why = f"after {attempt} retries" if attempt >= self.retries else f"within {self.deadline:g} s"
                raise SourceError(f"{where}: {failure} ({why})", url=self.url, metric=metric, status=status)
            self._sleep(wait)
            attempt += 1
