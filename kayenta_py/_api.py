"""The HTTP API (FastAPI): analyses, verdicts, synchronous judging, configs, health and metrics."""

from __future__ import annotations

import hmac
import logging
import math
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Route, compile_path

from kayenta_py import _store
from kayenta_py._config import load_config
from kayenta_py._errors import ConfigError, KayentaError
from kayenta_py._flagger import flagger_router
from kayenta_py._kayenta_api import kayenta_router
from kayenta_py._limits import JsonSafeErrors
from kayenta_py._model import Thresholds, rfc3339
from kayenta_py._pipeline import judge as judge_canary
from kayenta_py._redact import redact
from kayenta_py._registry import did_you_mean
from kayenta_py._report import CONTENT_SECURITY_POLICY, render_analysis_html
from kayenta_py._service import ConfigNotFoundError, Service
from kayenta_py._store import STATUSES, AnalysisRecord, ConfigVersionRecord, IntervalRecord, StoreError
from kayenta_py._version import __version__

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
    )
    app.add_middleware(BodyLimit, limit=service.settings.max_body_bytes)
    app.add_middleware(MethodGuard, table=_method_table(app))
    read, write = _auth(service, "read"), _auth(service, "write")
    _install_error_handlers(app)
    app.openapi = lambda: _openapi(app, service)  # type: ignore[method-assign]

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
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

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
            raise HTTPException(404, str(exc)) from None

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
RETRY_AFTER_S = 5  # seconds a client should wait when the database is busy
_UNPARSABLE = "There was an error parsing the body"

_ERROR_TYPES = {
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    422: "value_error",
    500: "internal_error",
    503: "unavailable",
}
_DESCRIPTIONS = {
    401: "no bearer token, or an unknown one",
    403: "the token lacks the scope this route needs",
    404: "no such resource",
    409: "conflict with the stored state",
    413: "request body larger than KAYENTA_MAX_BODY_BYTES",
    422: "invalid input: detail[] names each field at fault",
    425: "not decided yet (Flagger: retry)",
    500: "unexpected internal error (JSON, no traceback)",
    503: "database busy or unavailable: retry after Retry-After seconds",
}
# Statuses a route answers beyond those its shape implies (auth, path, body).
_EXTRA_STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("POST", "/api/v1/configs"): (409,),
    ("POST", "/canaryConfig"): (409,),
    ("PUT", "/canaryConfig/{config_id}"): (409,),
    ("DELETE", "/canaryConfig/{config_id}"): (409,),
    ("POST", "/api/v1/flagger/{hook}"): (409, 425),
}


class Readiness(BaseModel):
    """The answer of /readyz."""

    status: Literal["ready", "not ready"]
    database: bool = Field(description="the database answers")
    writable: bool = Field(description="the database takes writes (not full, not read-only)")
    scheduler: bool = Field(description="the analysis scheduler runs")
    problem: str | None = Field(None, description="why the database is not ready")


def error_item(status: int, loc: list[str | int], msg: str, **extra: Any) -> dict[str, Any]:
    """Return one ``detail[]`` entry in FastAPI's shape: ``{type, loc, msg, ...}``."""
    kind = extra.pop("type", None) or _ERROR_TYPES.get(status, "error")
    return {"type": kind, "loc": loc, "msg": msg, **extra}


def _typed(status: int, item: Any) -> dict[str, Any]:
    """Return ``item`` (a detail entry, or any value) with ``type``, ``loc`` and ``msg``."""
    if not isinstance(item, dict):
        return error_item(status, [], str(item))
    rest = {k: v for k, v in item.items() if k not in ("type", "loc", "msg")}
    loc, msg = list(item.get("loc", [])), str(item.get("msg", ""))
    return error_item(status, loc, msg, type=item.get("type"), **rest)


def _json_safe(value: Any) -> Any:
    """Return ``value`` fit for strict JSON: non-finite floats as text, strings redacted."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def _one_line(exc: BaseException, limit: int = 200) -> str:
    text = redact(" ".join(str(exc).split("\n", 1)[0].split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _is_busy(exc: BaseException) -> bool:
    """Return whether ``exc`` says the database is busy (SQLite locked past its timeout)."""
    check = getattr(_store, "is_busy_error", None)
    if callable(check):
        return bool(check(exc))
    text = str(exc).lower()
    return isinstance(exc, DBAPIError) and ("database is locked" in text or "database is busy" in text)


def _internal_error(exc: BaseException) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    log.error("internal error %s on a request", reference, exc_info=exc)
    message = f"internal error (reference {reference} in the service log): {type(exc).__name__}: "
    message += _one_line(exc)
    return JSONResponse({"detail": [error_item(500, [], message)]}, status_code=500)


def _busy() -> JSONResponse:
    message = f"the database is busy; retry in {RETRY_AFTER_S} s"
    body = {"detail": [error_item(503, [], message, type="database_busy")]}
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _write_problem(service: Service) -> str | None:
    """Return why the database cannot take writes, or None (``Store.check_writable``, else a ping)."""
    check = getattr(service.store, "check_writable", None)
    if callable(check):
        try:
            problem = check()
        except Exception as exc:  # the check itself failing is a problem too
            return f"{type(exc).__name__}: {_one_line(exc)}"
        return None if problem is None else str(problem)
    return None if service.store.ping() else "the database does not answer"


def _install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON ``{"detail": ...}``: 422 lists ``{type, loc, msg}``; never a traceback."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        detail: Any = exc.detail
        if exc.status_code == 400 and detail == _UNPARSABLE:  # FastAPI's answer to a body not UTF-8
            body = [error_item(422, ["body"], "the body is not valid JSON (UTF-8)", type="json_invalid")]
            return JSONResponse({"detail": body}, status_code=422)
        if isinstance(detail, list):
            detail = [_typed(exc.status_code, item) for item in detail]
        elif exc.status_code == 422:
            detail = [error_item(422, [], str(detail))]
        return JSONResponse({"detail": _json_safe(detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ConfigError)
    async def _config_error(_request: Request, exc: ConfigError) -> JSONResponse:
        detail = [
            error_item(422, ["body", "config", *_path_parts(i.path)], redact(i.message)) for i in exc.issues
        ]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(KayentaError)
    async def _kayenta_error(_request: Request, exc: KayentaError) -> JSONResponse:
        field, _, message = str(exc).partition(": ")
        parts = field.split(".")
        named = message and all(p.isidentifier() for p in parts)
        loc: list[str | int] = ["body", *parts] if named else ["body"]
        return JSONResponse({"detail": [error_item(422, loc, redact(str(exc)))]}, status_code=422)

    @app.exception_handler(ConfigNotFoundError)
    async def _config_not_found(_request: Request, exc: ConfigNotFoundError) -> JSONResponse:
        return JSONResponse({"detail": [error_item(404, ["body", exc.field], exc.message)]}, status_code=404)

    unreadable = getattr(_store, "UnreadableRecord", None)
    if isinstance(unreadable, type) and issubclass(unreadable, Exception):

        @app.exception_handler(unreadable)
        async def _unreadable(_request: Request, exc: Exception) -> JSONResponse:
            log.error("unreadable stored record: %s", exc)
            record_id = getattr(exc, "record_id", None)
            item = error_item(500, [], redact(str(exc)), type="unreadable_record", record_id=record_id)
            body = {"detail": [item]}
            return JSONResponse(body, status_code=500)

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        return _busy() if _is_busy(exc) else _internal_error(exc)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        return _busy() if _is_busy(exc) else _internal_error(exc)


def _openapi(app: FastAPI, service: Service) -> dict[str, Any]:
    """The OpenAPI document: every status each route answers, JSON error schemas, bearer security."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(
        {
            "ErrorItem": {
                "type": "object",
                "properties": {
                    "type": {"type": "string"},
                    "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
                    "msg": {"type": "string"},
                    "input": {},
                    "ctx": {"type": "object"},
                },
                "required": ["type", "loc", "msg"],
            },
            "Error": {
                "type": "object",
                "properties": {
                    "detail": {
                        "anyOf": [
                            {"type": "string"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/ErrorItem"}},
                        ]
                    }
                },
                "required": ["detail"],
            },
        }
    )
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "a token of KAYENTA_API_TOKENS (read or write scope)",
        }
    }
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            _document(operation, path, method.upper(), service)
    app.openapi_schema = schema
    return schema


def _document(operation: dict[str, Any], path: str, method: str, service: Service) -> None:
    """Add to one operation its error statuses and its security requirement."""
    tags = set(operation.get("tags", []))
    guard = None if "health" in tags else "compat" if tags & {"kayenta", "flagger"} else "native"
    parameters = [p for p in operation.get("parameters", []) if p.get("name", "").lower() != "authorization"]
    places = {p.get("in") for p in parameters}
    statuses = {500} if path == "/healthz" else {500, 503}
    statuses |= set(_EXTRA_STATUSES.get((method, path), ()))
    if guard is not None:
        statuses |= {401, 403}
    if "path" in places:
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {404, 413, 422}  # 404: a body may name a stored config that does not exist
    if places:
        statuses.add(422)
    responses = operation.setdefault("responses", {})
    error = {"schema": {"$ref": "#/components/schemas/Error"}}
    content: dict[str, Any] = {"application/json": error}
    if any("text/plain" in r.get("content", {}) for r in responses.values()):
        content = {"application/json": error, "text/plain": {"schema": {"type": "string"}}}
    for status in sorted(statuses):
        entry: dict[str, Any] = {"description": _DESCRIPTIONS[status], "content": content}
        if status == 503:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds"}}
        if str(status) not in responses or status == 422:
            responses[str(status)] = entry
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    tokens = bool(service.settings.tokens())
    if guard == "compat" and service.settings.compat_endpoints_open:
        if tokens and method in ("PUT", "DELETE", "POST") and path.startswith("/canaryConfig"):
            operation["security"] = [{}, {"bearer": []}]  # a config created natively needs a write token
    elif guard is not None and tokens:
        operation["security"] = [{"bearer": []}]


def _method_table(app: FastAPI) -> Callable[[], list[tuple[re.Pattern[str], frozenset[str]]]]:
    """Return a function giving each path's pattern and methods (the OpenAPI paths and plain routes)."""
    table: list[tuple[re.Pattern[str], frozenset[str]]] = []

    def get() -> list[tuple[re.Pattern[str], frozenset[str]]]:
        if not table:
            methods: dict[str, set[str]] = {}
            for path, operations in app.openapi()["paths"].items():
                methods.setdefault(path, set()).update(m.upper() for m in operations)
            for route in app.routes:
                if isinstance(route, Route) and route.methods:
                    methods.setdefault(route.path_format, set()).update(route.methods)
            table.extend((compile_path(path)[0], frozenset(found)) for path, found in methods.items())
        return table

    return get


class MethodGuard:
    """ASGI middleware: OPTIONS answers 204 with ``Allow``; a method a path lacks, 405 with ``Allow``."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        table: Callable[[], list[tuple[re.Pattern[str], frozenset[str]]]],
    ) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        allowed: set[str] = set()
        for pattern, methods in self.table():
            if pattern.match(path):
                allowed |= methods
        if not allowed or (method in allowed and method != "OPTIONS"):
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        if method == "OPTIONS":
            response: Response = Response(status_code=204, headers={"Allow": allow})
        else:
            body = {"detail": [error_item(405, [], f"method {method} not allowed here; allowed: {allow}")]}
            response = JSONResponse(body, status_code=405, headers={"Allow": allow})
        await response(scope, receive, send)


# ---------------------------------------------------------------- documents


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


def _path_parts(path: str) -> list[str | int]:
    """Split a config path (``metrics[2].judge.effect_size``) into loc parts, as pydantic gives them."""
    parts: list[str | int] = []
    for part in filter(None, path.split(".")):
        name, _, rest = part.partition("[")
        parts += [name] if name else []
        parts += [int(i) if i.isdigit() else i for i in rest.rstrip("]").split("][") if i] if rest else []
    return parts


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


class BodyLimit:
    """ASGI middleware refusing request bodies larger than ``limit`` bytes with a JSON 413."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit() or int(length) > self.limit:
                await self._too_large(send)
                return
            await self.app(scope, receive, send)
            return
        # No length given (chunked): read the body first, refuse it as soon as it is too large.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await self._too_large(send)
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        body = JSONResponse({"detail": f"request body larger than {self.limit} bytes"}, status_code=413).body
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
