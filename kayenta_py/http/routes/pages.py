"""Pages for people: the analyses list at ``/``, and the API docs at ``/docs`` and ``/redoc``, offline.

The docs pages load Swagger UI and ReDoc from the service itself (the files of the
``fastapi-offline`` package, mounted at ``/static/docs``), never from a CDN, so they render
on a machine with no internet. Test: ``tests/test_pages.py`` (headless Chromium, with every
host but the service unreachable).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from kayenta_py.http.dependencies import ServiceDep, require_read
from kayenta_py.http.routes.analyses import MAX_LIMIT, MAX_OFFSET
from kayenta_py.reports.listing import ListedAnalysis, ListingPage, render_listing_html
from kayenta_py.reports.templates import CONTENT_SECURITY_POLICY
from kayenta_py.service.store.tables import STATUSES

DOCS_ASSETS = "/static/docs"
_ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"

DOCS_CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
"""The docs pages' policy: their scripts, styles and the OpenAPI document come from the service only."""

PAGE_LINKS = {
    "API docs": "/docs",
    "ReDoc": "/redoc",
    "analyses (JSON)": "/api/v1/analyses",
    "metrics": "/metrics",
}

router = APIRouter(include_in_schema=False)


def mount_docs_assets(app: FastAPI) -> None:
    """Serve Swagger UI's and ReDoc's files from the service at ``DOCS_ASSETS``."""
    app.mount(DOCS_ASSETS, StaticFiles(directory=_ASSETS_DIR), name="docs-assets")


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    """Swagger UI on the service's OpenAPI document, with its script and styles served locally."""
    page = get_swagger_ui_html(
        openapi_url=str(request.app.openapi_url),
        title="kayenta-py: API",
        swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # its default badge asks validator.swagger.io
    )
    page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return page


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    """ReDoc on the service's OpenAPI document, served locally, without web fonts."""
    page = get_redoc_html(
        openapi_url=str(request.app.openapi_url),
        title="kayenta-py: API",
        redoc_js_url=f"{DOCS_ASSETS}/redoc.standalone.js",
        redoc_favicon_url=f"{DOCS_ASSETS}/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = DOCS_CONTENT_SECURITY_POLICY
    return page


@router.get("/", dependencies=[Depends(require_read)], response_class=HTMLResponse)
def analyses_page(
    service: ServiceDep,
    status: Annotated[str | None, Query()] = None,
    config: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> HTMLResponse:
    """The analyses, newest first, filtered by status and config, with verdict badges and report links."""
    status, config = status or None, config or None  # the form's "any" sends an empty value
    if status is not None and status not in STATUSES:
        raise HTTPException(422, [{"loc": ["query", "status"], "msg": f"one of {', '.join(STATUSES)}"}])
    records, total = service.store.list_analyses(status=status, config=config, limit=limit, offset=offset)
    rows = [
        ListedAnalysis(
            id=r.id,
            status=r.status,
            verdict=r.verdict,
            score=r.score,
            config_name=r.config_name,
            baseline_scope=r.baseline_scope,
            canary_scope=r.canary_scope,
            mode=r.mode,
            start_ts=r.start_ts,
            end_ts=r.end_ts,
            reason=r.reason,
            report_url=f"/api/v1/analyses/{quote(r.id, safe='')}/report",
        )
        for r in records
    ]
    configs = sorted({c.name for c in service.store.list_configs()} | ({config} if config else set()))
    page = ListingPage(rows, total, offset, limit, status, config, STATUSES, configs)
    html = render_listing_html(page, links=PAGE_LINKS)
    return HTMLResponse(html, headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY})
