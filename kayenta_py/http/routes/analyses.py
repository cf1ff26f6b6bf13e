"""``/api/v1/analyses``: start, list, read, report on and cancel live canary analyses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse

from kayenta_py.http.dependencies import ServiceDep, require_read, require_write
from kayenta_py.http.documents import (
    _analysis,
    _epoch,
    _given,
    _links,
    analysis_summary,
    interval_document,
    verdict_document,
)
from kayenta_py.http.schemas import AnalysisRequest
from kayenta_py.model.spec import AnalysisSpec
from kayenta_py.reports.html import render_analysis_html
from kayenta_py.reports.templates import CONTENT_SECURITY_POLICY
from kayenta_py.service.store.tables import STATUSES

MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000

router = APIRouter(tags=["analyses"])


@router.post("/api/v1/analyses", status_code=201, dependencies=[Depends(require_write)])
def create_analysis(body: AnalysisRequest, request: Request, service: ServiceDep) -> dict[str, Any]:
    """Start a canary analysis; a window entirely in the past is judged at once."""
    spec = AnalysisSpec(
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
        baseline_offset=body.baseline_offset,
        baseline_start=_epoch(body.baseline_start),
        baseline_end=_epoch(body.baseline_end),
    )
    record = service.create_analysis(spec)
    return {
        "id": record.id,
        "status": record.status,
        "mode": record.mode,
        "mode_reason": record.mode_reason or None,
        "links": _links(service, request, record.id),
    }


@router.get("/api/v1/analyses", dependencies=[Depends(require_read)])
def list_analyses(
    request: Request,
    service: ServiceDep,
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


@router.get("/api/v1/analyses/{analysis_id}", dependencies=[Depends(require_read)])
def get_analysis(analysis_id: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    """An analysis with every judged interval and its per-metric results."""
    record = _analysis(service, analysis_id)
    return {
        **analysis_summary(service, request, record),
        "config": record.config_body,
        "intervals": [interval_document(i, record.baseline_offset_s) for i in record.intervals],
    }


@router.get("/api/v1/analyses/{analysis_id}/verdict", dependencies=[Depends(require_read)])
def get_verdict(analysis_id: str, service: ServiceDep) -> dict[str, Any]:
    """The compact verdict rollout controllers poll: always 200 while the analysis exists."""
    record = _analysis(service, analysis_id, with_intervals=False)
    return verdict_document(record)


@router.get(
    "/api/v1/analyses/{analysis_id}/report",
    dependencies=[Depends(require_read)],
    response_class=HTMLResponse,
)
def get_report(analysis_id: str, request: Request, service: ServiceDep) -> HTMLResponse:
    """A self-contained HTML report: verdict, metrics, plots per metric and every interval."""
    record = _analysis(service, analysis_id)
    links = _links(service, request, record.id)
    page = render_analysis_html(
        record, links={"analysis (JSON)": links["self"], "verdict (JSON)": links["verdict"]}
    )
    return HTMLResponse(page, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})


@router.post("/api/v1/analyses/{analysis_id}/cancel", dependencies=[Depends(require_write)])
def cancel_analysis(analysis_id: str, request: Request, service: ServiceDep) -> dict[str, Any]:
    """Stop a running analysis; its verdict becomes a final fail."""
    _analysis(service, analysis_id, with_intervals=False)
    service.runner.cancel(analysis_id, "cancelled through the API")
    return analysis_summary(service, request, _analysis(service, analysis_id, with_intervals=False))
