"""Health routes: ``/healthz`` (alive), ``/readyz`` (takes writes, schedules), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from kayenta_py.http.dependencies import ServiceDep
from kayenta_py.http.documents import _write_problem
from kayenta_py.http.errors import RETRY_AFTER_S, AsciiJSONResponse
from kayenta_py.http.schemas import Readiness
from kayenta_py.model.redact import redact

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """Answer while the process is alive."""
    return {"status": "ok"}


@router.get("/readyz", responses={200: {"model": Readiness}, 503: {"model": Readiness}})
def readyz(service: ServiceDep) -> JSONResponse:
    """Answer 200 when the database takes writes, the scheduler runs and the dispatcher's worker is
    up (procrastinate: it reached its queue within a few heartbeats), else 503 saying why."""
    problem = _write_problem(service)
    scheduler = service.runner.scheduler.running
    dispatch = service.runner.dispatcher.state()
    ready = problem is None and scheduler and dispatch.healthy
    body = Readiness(
        status="ready" if ready else "not ready",
        database=problem is None or service.store.ping(),
        writable=problem is None,
        scheduler=scheduler,
        problem=None if problem is None else redact(problem),
        dispatch=dispatch.engine,
        worker=dispatch.healthy,
        worker_problem=None if dispatch.problem is None else redact(dispatch.problem),
        replica=service.replica_id,
        notifiers={name: notifier.describe() for name, notifier in service.notifiers.items()},
    )
    headers = {} if ready else {"Retry-After": str(RETRY_AFTER_S)}
    return AsciiJSONResponse(body.model_dump(), status_code=200 if ready else 503, headers=headers)


@router.get(
    "/metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics(service: ServiceDep) -> Response:
    """The service's own Prometheus metrics."""
    service.update_gauges()
    return Response(generate_latest(service.metrics_registry), media_type=CONTENT_TYPE_LATEST)
