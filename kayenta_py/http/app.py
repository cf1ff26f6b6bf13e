"""The HTTP API (FastAPI): analyses, verdicts, synchronous judging, configs, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kayenta_py._version import __version__
from kayenta_py.config.loader import load_config
from kayenta_py.config.registry import did_you_mean
from kayenta_py.engine.pipeline import judge as judge_canary
from kayenta_py.http.dependencies import _auth, _compat_guard, _native_writer
from kayenta_py.http.documents import (
    _analysis,
    _epoch,
    _given,
    _links,
    _nan,
    _write_problem,
    analysis_summary,
    config_document,
    interval_document,
    verdict_document,
)
from kayenta_py.http.errors import RETRY_AFTER_S, AsciiJSONResponse, install_error_handlers, openapi_document
from kayenta_py.http.guards import BodyGuard, ErrorGuard, MethodGuard, method_table
from kayenta_py.http.schemas import (
    AnalysisRequest,
    ConfigCreate,
    ConfigUpdate,
    JudgeRequest,
    Readiness,
)
from kayenta_py.integrations.flagger import flagger_router
from kayenta_py.integrations.kayenta.routes import kayenta_router
from kayenta_py.model.errors import StoreError
from kayenta_py.model.redact import redact
from kayenta_py.reports.html import render_analysis_html
from kayenta_py.reports.templates import CONTENT_SECURITY_POLICY
from kayenta_py.service.analyses import Service
from kayenta_py.service.store.errors import WriteConflictError
from kayenta_py.service.store.tables import STATUSES

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


# ---------------------------------------------------------------- request bodies




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
        given = _given(body.thresholds)
        thresholds = None if given is None else config.thresholds.overridden(given)
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


