"""The HTTP API (FastAPI): analyses, verdicts, synchronous judging, configs, health and metrics."""

from __future__ import annotations

import hmac
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt

from kayenta_py._version import __version__
from kayenta_py.config.loader import load_config
from kayenta_py.config.registry import did_you_mean
from kayenta_py.engine.pipeline import judge as judge_canary
from kayenta_py.http.errors import (
    RETRY_AFTER_S,
    AsciiJSONResponse,
    BodyGuard,
    ErrorGuard,
    MethodGuard,
    install_error_handlers,
    method_table,
    one_line,
    openapi_document,
)
from kayenta_py.integrations.flagger import flagger_router
from kayenta_py.integrations.kayenta.routes import kayenta_router
from kayenta_py.model.errors import StoreError
from kayenta_py.model.limits import JsonSafeErrors
from kayenta_py.model.redact import redact
from kayenta_py.model.types import Thresholds, rfc3339
from kayenta_py.reports.html import render_analysis_html
from kayenta_py.reports.templates import CONTENT_SECURITY_POLICY
from kayenta_py.service.analyses import Service
from kayenta_py.service.store.errors import WriteConflictError
from kayenta_py.service.store.tables import STATUSES, AnalysisRecord, ConfigVersionRecord, IntervalRecord

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# ---------------------------------------------------------------- request bodies


class _Body(JsonSafeErrors):
    """A request body: unknown fields and non-finite numbers are refused; errors are strict JSON."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ThresholdsBody(_Body):
    """Score thresholds."""

    pass_: float = Field(95.0, alias="pass", ge=0, le=100, description="a score at or above it passes (> 0)")
    marginal: float = Field(75.0, ge=0, le=100, description="a score at or below it fails")


Duration = str | StrictFloat | StrictInt


class AnalysisRequest(_Body):
    """A live (or retrospective) canary analysis to run."""

    config: dict[str, Any] | None = Field(None, description="an inline canary config (native or Kayenta)")
    config_name: str | None = Field(None, description="the name of a stored config")
    config_version: int | None = Field(
        None,
        ge=1,
        le=2**31 - 1,
        description="pin this stored version of config_name (default: the latest at start)",
    )
    baseline_scope: str = Field(min_length=1)
    canary_scope: str = Field(min_length=1)
    scope_params: dict[str, str] = Field(default_factory=dict)
    location: str = ""
    source: str | None = Field(
        None,
        description="metrics source: prometheus or demo (default: the config's, else KAYENTA_DEFAULT_SOURCE, "
        "else prometheus when KAYENTA_PROMETHEUS_URL is set; with none, the analysis is refused)",
    )
    start: datetime | None = Field(None, description="RFC 3339; default now")
    end: datetime | None = Field(None, description="RFC 3339; a past window runs at once")
    lifetime: Duration | None = Field(None, description="ISO 8601 duration or seconds; default PT30M")
    interval: Duration | None = Field(None, description="ISO 8601 duration or seconds; default the lifetime")
    warmup: Duration | None = Field(0, description="ignored data at the start")
    lookback: Duration | None = Field(None, description="window per interval; default since start")
    step: float = Field(60.0, gt=0, description="seconds between metric points")
    thresholds: ThresholdsBody | None = None
    fail_fast: bool = Field(True, description="end with fail at the first failing interval")
    mode: Literal["fixed", "sequential"] | None = Field(
        None,
        description="sequential: anytime-valid judges that may decide early; fixed: Kayenta's test re-run "
        "each interval (default: the config's mode:, else sequential for a native config whose metrics "
        "all have sequential judges, else fixed; answers say which and why in mode, mode_reason)",
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="sequential mode: the canary's false-fail rate")
    family: Literal["bonferroni", "e-bh"] = Field("bonferroni", description="sequential mode: metric family")


class JudgeRequest(_Body):
    """A synchronous judgement of posted values."""

    config: dict[str, Any] | None = None
    config_name: str | None = None
    config_version: int | None = Field(
        None, ge=1, le=2**31 - 1, description="pin this stored version of config_name"
    )
    baseline: dict[str, list[float | None]]
    canary: dict[str, list[float | None]]
    thresholds: ThresholdsBody | None = None


class ConfigCreate(_Body):
    """A new named canary config."""

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    config: dict[str, Any]


class ConfigUpdate(_Body):
    """A new version of a canary config."""

    config: dict[str, Any]


# ---------------------------------------------------------------- app


def create_app(
    service: Service,
    *,
    manage_lifecycle: bool = True,
    on_started: Callable[[Service], None] | None = None,
) -> FastAPI:
    """Return the FastAPI app serving ``service``; it starts and stops the service with the app."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            service.start()
        if on_started is not None:
            on_started(service)
        try:
            yield
        finally:
            if manage_lifecycle:
                service.stop()

    app = FastAPI(
        title="kayenta-py",
        version=__version__,
        description="Automated canary analysis: live analyses, verdicts for rollout controllers, "
        "synchronous judging and canary configs.",
        lifespan=lifespan,
        redirect_slashes=False,  # an id of "/" (%2F) is not found, never redirected to another route
        default_response_class=AsciiJSONResponse,
    )
    app.add_middleware(BodyGuard, limit=service.settings.max_body_bytes)
    app.add_middleware(MethodGuard, table=method_table(app))
    app.add_middleware(ErrorGuard)  # outermost of ours: unexpected errors answer JSON, never re-raise
    read, write = _auth(service, "read"), _auth(service, "write")
    install_error_handlers(app)
    app.openapi = lambda: openapi_document(app, service)  # type: ignore[method-assign]

    compat = _compat_guard(service)
    app.include_router(kayenta_router(service, compat, _native_writer(service)))
    app.include_router(flagger_router(service, compat))

    # ------------------------------------------------------------ health

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Answer while the process is alive."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={200: {"model": Readiness}, 503: {"model": Readiness}})
    def readyz() -> JSONResponse:
        """Answer 200 when the database takes writes and the scheduler runs, else 503 saying why."""
        problem = _write_problem(service)
        scheduler = service.runner.scheduler.running
        ready = problem is None and scheduler
        body = Readiness(
            status="ready" if ready else "not ready",
            database=problem is None or service.store.ping(),
            writable=problem is None,
            scheduler=scheduler,
            problem=None if problem is None else redact(problem),
        )
        headers = {} if ready else {"Retry-After": str(RETRY_AFTER_S)}
        return AsciiJSONResponse(body.model_dump(), status_code=200 if ready else 503, headers=headers)

    @app.get(
        "/metrics",
        tags=["health"],
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics() -> Response:
        """The service's own Prometheus metrics."""
        service.update_gauges()
        return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)

    # ------------------------------------------------------------ analyses

    @app.post("/api/v1/analyses", status_code=201, tags=["analyses"], dependencies=[Depends(write)])
    def create_analysis(body: AnalysisRequest, request: Request) -> dict[str, Any]:
        """Start a canary analysis; a window entirely in the past is judged at once."""
        record = service.create_analysis(
            config=body.config,
            config_name=body.config_name,
            config_version=body.config_version,
            baseline_scope=body.baseline_scope,
            canary_scope=body.canary_scope,
            scope_params=body.scope_params,
            location=body.location,
            source=body.source,
            start=_epoch(body.start),
            end=_epoch(body.end),
            lifetime=body.lifetime,
            interval=body.interval,
            warmup=body.warmup,
            lookback=body.lookback,
            step=body.step,
            thresholds=_given(body.thresholds),
            fail_fast=body.fail_fast,
            mode=body.mode,
            alpha=body.alpha,
            family=body.family,
        )
        return {
            "id": record.id,
            "status": record.status,
            "mode": record.mode,
            "mode_reason": record.extra.get("mode_reason"),
            "links": _links(service, request, record.id),
        }

    @app.get("/api/v1/analyses", tags=["analyses"], dependencies=[Depends(read)])
    def list_analyses(
        request: Request,
        status: Annotated[str | None, Query(description=f"one of {', '.join(STATUSES)}")] = None,
        config: Annotated[str | None, Query(description="a stored config's name")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most {MAX_LIMIT}")] = 50,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET, description=f"at most {MAX_OFFSET}")] = 0,
    ) -> dict[str, Any]:
        """List analyses, newest first, a page at a time."""
        if status is not None and status not in STATUSES:
            raise HTTPException(422, [{"loc": ["query", "status"], "msg": f"one of {', '.join(STATUSES)}"}])
        records, total = service.store.list_analyses(status=status, config=config, limit=limit, offset=offset)
        next_offset = offset + limit if offset + limit < total else None
        return {
            "items": [analysis_summary(service, request, r) for r in records],
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": next_offset,
        }

    @app.get("/api/v1/analyses/{analysis_id}", tags=["analyses"], dependencies=[Depends(read)])
    def get_analysis(analysis_id: str, request: Request) -> dict[str, Any]:
        """An analysis with every judged interval and its per-metric results."""
        record = _analysis(service, analysis_id)
        return {
            **analysis_summary(service, request, record),
            "config": record.config_body,
            "intervals": [interval_document(i) for i in record.intervals],
        }

    @app.get("/api/v1/analyses/{analysis_id}/verdict", tags=["analyses"], dependencies=[Depends(read)])
    def get_verdict(analysis_id: str) -> dict[str, Any]:
        """The compact verdict rollout controllers poll: always 200 while the analysis exists."""
        record = _analysis(service, analysis_id, with_intervals=False)
        return verdict_document(record)

    @app.get(
        "/api/v1/analyses/{analysis_id}/report",
        tags=["analyses"],
        dependencies=[Depends(read)],
        response_class=HTMLResponse,
    )
    def get_report(analysis_id: str, request: Request) -> HTMLResponse:
        """A self-contained HTML report: verdict, metrics, plots per metric and every interval."""
        record = _analysis(service, analysis_id)
        links = _links(service, request, record.id)
        page = render_analysis_html(
            record, links={"analysis (JSON)": links["self"], "verdict (JSON)": links["verdict"]}
        )
        return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})

    @app.post("/api/v1/analyses/{analysis_id}/cancel", tags=["analyses"], dependencies=[Depends(write)])
    def cancel_analysis(analysis_id: str, request: Request) -> dict[str, Any]:
        """Stop a running analysis; its verdict becomes a final fail."""
        _analysis(service, analysis_id, with_intervals=False)
        service.runner.cancel(analysis_id, "cancelled through the API")
        return analysis_summary(service, request, _analysis(service, analysis_id, with_intervals=False))

    # ------------------------------------------------------------ judge

    @app.post("/api/v1/judge", tags=["judge"], dependencies=[Depends(write)])
    def judge(body: JudgeRequest) -> dict[str, Any]:
        """Judge posted baseline and canary values with a config, synchronously."""
        config, _, _, _ = service.resolve_config(body.config, body.config_name, body.config_version)
        thresholds = None
        given = _given(body.thresholds)
        if given is not None:
            thresholds = Thresholds(
                float(given.get("pass", config.thresholds.pass_)),
                float(given.get("marginal", config.thresholds.marginal)),
            )
        known = [m.name for m in config.metrics]
        for side, data in (("baseline", body.baseline), ("canary", body.canary)):
            for name in data:
                if name not in known:  # posted data that no metric would judge: a typo, never ignored
                    message = f"the config has no metric {name!r}{did_you_mean(name, known)}"
                    raise HTTPException(422, [{"loc": ["body", side, name], "msg": message}])
        result = judge_canary(
            config, _nan(body.baseline), _nan(body.canary), thresholds=thresholds, registry=service.registry
        )
        return result.to_dict()

    # ------------------------------------------------------------ configs

    @app.get("/api/v1/configs", tags=["configs"], dependencies=[Depends(read)])
    def list_configs() -> list[dict[str, Any]]:
        """Every stored config's latest version."""
        return [config_document(r, with_body=False) for r in service.store.list_configs()]

    @app.post("/api/v1/configs", status_code=201, tags=["configs"], dependencies=[Depends(write)])
    def create_config(body: ConfigCreate) -> dict[str, Any]:
        """Store a new config (validated) as version 1."""
        load_config(body.config, registry=service.registry, limits=service.limits)
        try:
            return config_document(service.store.create_config(body.name, body.config))
        except StoreError as exc:
            raise HTTPException(409, str(exc)) from None

    @app.get("/api/v1/configs/{name}", tags=["configs"], dependencies=[Depends(read)])
    def get_config(
        name: str, version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None
    ) -> dict[str, Any]:
        """A config's latest version, or the one asked for."""
        record = service.store.get_config(name, version)
        if record is None:
            raise HTTPException(404, f"no config {name!r}" + (f" version {version}" if version else ""))
        return config_document(record)

    @app.put("/api/v1/configs/{name}", tags=["configs"], dependencies=[Depends(write)])
    def update_config(name: str, body: ConfigUpdate) -> dict[str, Any]:
        """Store a new version of a config; earlier versions stay in its history."""
        load_config(body.config, registry=service.registry, limits=service.limits)
        try:
            return config_document(service.store.update_config(name, body.config))
        except StoreError as exc:
            raise HTTPException(409 if isinstance(exc, WriteConflictError) else 404, str(exc)) from None

    @app.delete("/api/v1/configs/{name}", status_code=204, tags=["configs"], dependencies=[Depends(write)])
    def delete_config(name: str) -> Response:
        """Delete a config (its history stays for the analyses that used it)."""
        try:
            service.store.delete_config(name)
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from None
        return Response(status_code=204)

    @app.get("/api/v1/configs/{name}/versions", tags=["configs"], dependencies=[Depends(read)])
    def config_versions(name: str) -> list[dict[str, Any]]:
        """Every version of a config, oldest first."""
        history = service.store.config_history(name)
        if not history:
            raise HTTPException(404, f"no config {name!r}")
        return [config_document(r) for r in history]

    return app


# ---------------------------------------------------------------- errors, OpenAPI, methods

log = logging.getLogger("kayenta_py.api")

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000
MAX_VERSION = 2**31 - 1  # the store's version column is a 32-bit integer on PostgreSQL
class Readiness(BaseModel):
    """The answer of /readyz."""

    status: Literal["ready", "not ready"]
    database: bool = Field(description="the database answers")
    writable: bool = Field(description="the database takes writes (not full, not read-only)")
    scheduler: bool = Field(description="the analysis scheduler runs")
    problem: str | None = Field(None, description="why the database is not ready")


def _write_problem(service: Service) -> str | None:
    """Return why the database cannot take writes (``Store.check_writable``), or None."""
    try:
        return service.store.check_writable()
    except Exception as exc:  # the check itself failing is a problem too
        return f"{type(exc).__name__}: {one_line(exc)}"


def verdict_document(record: AnalysisRecord) -> dict[str, Any]:
    """Return ``{verdict, score, complete, reason}`` for rollout controllers."""
    score = record.score if record.score is not None and math.isfinite(record.score) else None
    return {"verdict": record.verdict, "score": score, "complete": record.complete, "reason": record.reason}


def analysis_summary(service: Service, request: Request, record: AnalysisRecord) -> dict[str, Any]:
    """Return an analysis without its intervals."""
    return {
        "id": record.id,
        "status": record.status,
        **verdict_document(record),
        "config_name": record.config_name,
        "config_version": record.config_version,
        "baseline_scope": record.baseline_scope,
        "canary_scope": record.canary_scope,
        "scope_params": record.scope_params,
        "location": record.location,
        "source": record.source,
        "start": rfc3339(record.start_ts),
        "end": rfc3339(record.start_ts + record.warmup_s + record.lifetime_s),
        "lifetime_s": record.lifetime_s,
        "interval_s": record.interval_s,
        "warmup_s": record.warmup_s,
        "lookback_s": record.lookback_s,
        "step_s": record.step_s,
        "thresholds": record.thresholds,
        "fail_fast": record.fail_fast,
        "mode": record.mode,
        "mode_reason": record.extra.get("mode_reason"),
        "intervals_total": record.intervals_total,
        "error": record.error,
        "created": rfc3339(record.created_ts),
        "updated": rfc3339(record.updated_ts),
        "completed": rfc3339(record.completed_ts),
        "links": _links(service, request, record.id),
    }


def interval_document(interval: IntervalRecord) -> dict[str, Any]:
    """Return one judged interval with its per-metric results."""
    return {
        "index": interval.index,
        "window": {"start": rfc3339(interval.window_start_ts), "end": rfc3339(interval.window_end_ts)},
        "due": rfc3339(interval.due_ts),
        "judged": rfc3339(interval.judged_ts),
        "score": interval.score,
        "verdict": interval.verdict,
        "reason": interval.reason,
        "groups": interval.result.get("groups", []),
        "metrics": interval.result.get("metrics", []),
    }


def config_document(record: ConfigVersionRecord, *, with_body: bool = True) -> dict[str, Any]:
    """Return a stored config version."""
    document: dict[str, Any] = {
        "name": record.name,
        "version": record.version,
        "created": rfc3339(record.created_ts),
    }
    if with_body:
        document["config"] = record.body
    else:
        document["metrics"] = len(record.body.get("metrics", []))
    return document


def _links(service: Service, request: Request, analysis_id: str) -> dict[str, str]:
    base = (service.settings.public_url or str(request.base_url)).rstrip("/")
    own = f"{base}/api/v1/analyses/{analysis_id}"
    return {"self": own, "verdict": f"{own}/verdict", "report": f"{own}/report", "cancel": f"{own}/cancel"}


def _analysis(service: Service, analysis_id: str, *, with_intervals: bool = True) -> AnalysisRecord:
    record = service.store.get_analysis(analysis_id, with_intervals=with_intervals)
    if record is None:
        raise HTTPException(404, f"no analysis {analysis_id!r}")
    return record


def _given(thresholds: ThresholdsBody | None) -> dict[str, float] | None:
    """Return the thresholds a body gave: only its keys (a missing one is the config's, not 95 or 75)."""
    return None if thresholds is None else thresholds.model_dump(by_alias=True, exclude_unset=True)


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _nan(values: dict[str, list[float | None]]) -> dict[str, list[float]]:
    return {name: [math.nan if v is None else v for v in series] for name, series in values.items()}


def _auth(service: Service, scope: str) -> Callable[..., None]:
    """Return a dependency that demands a bearer token with ``scope`` when tokens are configured."""

    def check(authorization: Annotated[str | None, Header(include_in_schema=False)] = None) -> None:
        tokens = service.settings.tokens()
        if not tokens:
            return
        scheme, _, presented = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
        presented = presented.strip()
        match = next(
            (
                t
                for t in tokens
                if hmac.compare_digest(t.token.get_secret_value().encode(), presented.encode())
            ),
            None,
        )
        if match is None:
            raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
        if not match.allows(scope):
            raise HTTPException(403, f"this token has the {match.scope} scope; {scope} is required")

    check.kayenta_guard = scope  # type: ignore[attr-defined]  # read by the OpenAPI document
    return check


def _compat_guard(service: Service) -> Callable[..., None]:
    """Authorize Kayenta-compatible and Flagger calls: reads need read, the rest write.

    Argo Rollouts' kayenta provider and Flagger's webhooks send no credentials; with
    ``compat_endpoints_open`` these endpoints skip the token check (protect them by network).
    """
    read, write = _auth(service, "read"), _auth(service, "write")

    def check(
        request: Request, authorization: Annotated[str | None, Header(include_in_schema=False)] = None
    ) -> None:
        if service.settings.compat_endpoints_open:
            return
        (read if request.method in ("GET", "HEAD") else write)(authorization)

    check.kayenta_guard = "compat"  # type: ignore[attr-defined]
    return check


def _native_writer(service: Service) -> Callable[[str, str | None], None]:
    """Return a check that a Kayenta-compatible call may change the native config ``config_id``.

    Those endpoints may be open to clients without a token (``compat_endpoints_open``); a config
    created through the native API is changed through them only with a write token, and never
    when no tokens are configured.
    """
    write = _auth(service, "write")

    def check(config_id: str, authorization: str | None) -> None:
        message = (
            f"config {config_id!r} was created through the native API (/api/v1/configs): "
            "the Kayenta-compatible endpoints change it only with a write token"
        )
        if not service.settings.tokens():
            raise HTTPException(
                403,
                [
                    {
                        "loc": ["path", "config_id"],
                        "msg": f"{message}, and KAYENTA_API_TOKENS is not set; "
                        f"use /api/v1/configs/{config_id}",
                    }
                ],
            )
        try:
            write(authorization)
        except HTTPException as exc:
            detail = [{"loc": ["header", "authorization"], "msg": f"{message}: {exc.detail}"}]
            raise HTTPException(exc.status_code, detail, headers=exc.headers) from None

    return check
