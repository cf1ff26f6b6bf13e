"""Routes read the service through ``get_service``: a test overrides it, and each router stands alone.

``create_app`` sets ``app.state.service``; every route (native, Kayenta-compatible, Flagger) and
every guard takes it as ``ServiceDep``, so ``app.dependency_overrides[get_service]`` swaps the
service for all of them at once. Each router module can be included in a bare FastAPI app.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from kayenta_py.http.app import ROUTERS, create_app
from kayenta_py.http.dependencies import get_service
from kayenta_py.http.routes import analyses, configs, health, judge, pages
from kayenta_py.integrations import flagger
from kayenta_py.integrations.kayenta import routes as kayenta
from kayenta_py.service.analyses import Service
from kayenta_py.service.settings import Settings

READER = "dependencies-reader"
CONFIG: dict[str, Any] = {"name": "web", "metrics": [{"name": "latency", "kind": "latency"}]}
HOOK = {"name": "podinfo", "namespace": "test"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("KAYENTA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_service(tmp_path: Path) -> Iterator[Callable[..., Service]]:
    """Build real services, each on its own SQLite file (migrated, no scheduler); closed afterwards."""
    made: list[Service] = []

    def make(name: str, **settings: Any) -> Service:
        folder = tmp_path / name
        folder.mkdir()
        service = Service(Settings(database_url=f"sqlite:///{folder / 'k.db'}", data_dir=folder, **settings))
        service.store.migrate()
        made.append(service)
        return service

    yield make
    for service in made:
        service.store.close()


def test_routes_and_guards_use_the_overridden_service(make_service: Callable[..., Service]) -> None:
    served = make_service("served", api_tokens=f"write:dependencies-writer,read:{READER}")
    served.store.create_config("in-served", CONFIG)
    other = make_service("other")  # no tokens: its guards let every call through
    other.store.create_config("in-other", CONFIG)
    app = create_app(served, manage_lifecycle=False)
    assert app.state.service is served
    client = TestClient(app)

    assert client.get("/api/v1/configs").status_code == 401  # the served service's tokens
    listed = client.get("/api/v1/configs", headers={"Authorization": f"Bearer {READER}"})
    assert [c["name"] for c in listed.json()] == ["in-served"]

    app.dependency_overrides[get_service] = lambda: other
    assert [c["name"] for c in client.get("/api/v1/configs").json()] == ["in-other"]
    assert [c["id"] for c in client.get("/canaryConfig").json()] == ["in-other"]
    created = client.post("/api/v1/configs", json={"name": "new", "config": CONFIG})
    assert created.status_code == 201, created.text
    assert other.store.get_config("new") is not None
    assert served.store.get_config("new") is None
    hook = client.post("/api/v1/flagger/event", json=HOOK)
    assert (hook.status_code, hook.text) == (200, "acknowledged\n")

    app.dependency_overrides.clear()
    assert client.get("/api/v1/configs").status_code == 401
    assert client.post("/api/v1/flagger/event", json=HOOK).status_code == 401


ALONE: list[tuple[APIRouter, str, str, dict[str, Any] | None]] = [
    (health.router, "GET", "/metrics", None),
    (analyses.router, "GET", "/api/v1/analyses", None),
    (judge.router, "POST", "/api/v1/judge", {"config": CONFIG, "baseline": {}, "canary": {}}),
    (configs.router, "GET", "/api/v1/configs", None),
    (kayenta.router, "GET", "/judges", None),
    (flagger.router, "POST", "/api/v1/flagger/event", HOOK),
    (pages.router, "GET", "/", None),
]


@pytest.mark.parametrize(("router", "method", "path", "body"), ALONE, ids=[a[2] for a in ALONE])
def test_each_router_serves_from_a_bare_app(
    make_service: Callable[..., Service],
    router: APIRouter,
    method: str,
    path: str,
    body: dict[str, Any] | None,
) -> None:
    service = make_service("bare")
    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[get_service] = lambda: service
    answer = TestClient(app).request(method, path, json=body)
    assert answer.status_code == 200, answer.text
    own = {r.path for r in router.routes if isinstance(r, APIRoute) and r.include_in_schema}
    assert own <= set(app.openapi()["paths"])


def test_create_app_includes_every_router_module() -> None:
    assert sorted(map(id, ROUTERS)) == sorted(id(r) for r, *_ in ALONE)  # (a router is unhashable)
