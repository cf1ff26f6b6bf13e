"""``/api/v1/configs``: stored canary configs, validated on every write, each version kept."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query
from fastapi.responses import Response

from kayenta_py.config.loader import load_config
from kayenta_py.http.dependencies import ServiceDep, require_read, require_write
from kayenta_py.http.documents import config_document
from kayenta_py.http.schemas import ConfigCreate, ConfigUpdate
from kayenta_py.model.errors import StoreError
from kayenta_py.service.store.errors import WriteConflictError

MAX_VERSION = 2**31 - 1  # the store's version column is a 32-bit integer on PostgreSQL

router = APIRouter(tags=["configs"])


@router.get("/api/v1/configs", dependencies=[Depends(require_read)])
def list_configs(service: ServiceDep) -> list[dict[str, Any]]:
    """Every stored config's latest version."""
    return [config_document(r, with_body=False) for r in service.store.list_configs()]


@router.post("/api/v1/configs", status_code=201, dependencies=[Depends(require_write)])
def create_config(body: ConfigCreate, service: ServiceDep) -> dict[str, Any]:
    """Store a new config (validated) as version 1."""
    load_config(body.config, registry=service.registry, limits=service.limits)
    try:
        return config_document(service.store.create_config(body.name, body.config))
    except StoreError as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/api/v1/configs/{name}", dependencies=[Depends(require_read)])
def get_config(
    name: str, service: ServiceDep, version: Annotated[int | None, Query(ge=1, le=MAX_VERSION)] = None
) -> dict[str, Any]:
    """A config's latest version, or the one asked for."""
    record = service.store.get_config(name, version)
    if record is None:
        raise HTTPException(404, f"no config {name!r}" + (f" version {version}" if version else ""))
    return config_document(record)


@router.put("/api/v1/configs/{name}", dependencies=[Depends(require_write)])
def update_config(name: str, body: ConfigUpdate, service: ServiceDep) -> dict[str, Any]:
    """Store a new version of a config; earlier versions stay in its history."""
    load_config(body.config, registry=service.registry, limits=service.limits)
    try:
        return config_document(service.store.update_config(name, body.config))
    except StoreError as exc:
        raise HTTPException(409 if isinstance(exc, WriteConflictError) else 404, str(exc)) from None


@router.delete("/api/v1/configs/{name}", status_code=204, dependencies=[Depends(require_write)])
def delete_config(name: str, service: ServiceDep) -> Response:
    """Delete a config (its history stays for the analyses that used it)."""
    try:
        service.store.delete_config(name)
    except StoreError as exc:
        raise HTTPException(404, str(exc)) from None
    return Response(status_code=204)


@router.get("/api/v1/configs/{name}/versions", dependencies=[Depends(require_read)])
def config_versions(name: str, service: ServiceDep) -> list[dict[str, Any]]:
    """Every version of a config, oldest first."""
    history = service.store.config_history(name)
    if not history:
        raise HTTPException(404, f"no config {name!r}")
    return [config_document(r) for r in history]
