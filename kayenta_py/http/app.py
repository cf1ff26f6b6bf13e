"""The HTTP API (FastAPI): the app that serves the native, Kayenta-compatible and Flagger routers.

The routes live in module-level routers (``kayenta_py/http/routes/``, ``integrations/kayenta/routes.py``,
``integrations/flagger.py``); each reads the service through ``ServiceDep``
(``kayenta_py/http/dependencies.py``), which returns the ``app.state.service`` set here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import APIRouter, FastAPI

from kayenta_py._version import __version__
from kayenta_py.http.errors import AsciiJSONResponse, install_error_handlers, openapi_document
from kayenta_py.http.guards import BodyGuard, ErrorGuard, MethodGuard, method_table
from kayenta_py.http.routes import analyses, configs, health, judge, pages
from kayenta_py.http.routes.analyses import MAX_LIMIT, MAX_OFFSET
from kayenta_py.http.routes.configs import MAX_VERSION
from kayenta_py.integrations import flagger
from kayenta_py.integrations.kayenta import routes as kayenta
from kayenta_py.service.analyses import Service

__all__ = ["MAX_LIMIT", "MAX_OFFSET", "MAX_VERSION", "ROUTERS", "create_app"]

# In this order: the OpenAPI document lists the paths as the routers are included.
ROUTERS: tuple[APIRouter, ...] = (
    kayenta.router,
    flagger.router,
    health.router,
    analyses.router,
    judge.router,
    configs.router,
    pages.router,
)


def create_app(
    service: Service,
    *,
    manage_lifecycle: bool = True,
    on_started: Callable[[Service], None] | None = None,
) -> FastAPI:
    """Return the FastAPI app serving ``service``; it starts and stops the service with the app."""
    app = FastAPI(
        title="kayenta-py",
        version=__version__,
        description="Automated canary analysis: live analyses, verdicts for rollout controllers, "
        "synchronous judging and canary configs.",
        lifespan=_lifespan(service, manage_lifecycle, on_started),
        redirect_slashes=False,  # an id of "/" (%2F) is not found, never redirected to another route
        default_response_class=AsciiJSONResponse,
        docs_url=None,  # served offline by pages.router, with local assets
        redoc_url=None,
    )
    app.state.service = service  # what ServiceDep gives every route
    app.add_middleware(BodyGuard, limit=service.settings.max_body_bytes)
    app.add_middleware(MethodGuard, table=method_table(app))
    app.add_middleware(ErrorGuard)  # outermost of ours: unexpected errors answer JSON, never re-raise
    install_error_handlers(app)
    app.openapi = lambda: openapi_document(app, service)  # type: ignore[method-assign]
    for router in ROUTERS:
        app.include_router(router)
    pages.mount_docs_assets(app)
    return app


def _lifespan(
    service: Service, manage_lifecycle: bool, on_started: Callable[[Service], None] | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """The app's lifespan: start ``service`` (unless ``manage_lifecycle`` is false), then stop it."""

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

    return lifespan
