"""What routes depend on: the service, bearer-token scopes, the Kayenta-compatibility guard, native writes.

Every route takes the service as a ``ServiceDep`` parameter: ``get_service`` returns
``request.app.state.service`` (set by ``create_app``), and a test swaps it with
``app.dependency_overrides[get_service]``. The guards are dependencies too: a native route
names its scope (``dependencies=[Depends(require_read)]`` or ``require_write``); the Kayenta and
Flagger routers depend on ``require_compat``.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from kayenta_py.service.analyses import Service


def get_service(request: Request) -> Service:
    """The service the app serves (``app.state.service``, set by ``create_app``)."""
    service: Service = request.app.state.service
    return service


ServiceDep = Annotated[Service, Depends(get_service)]
Authorization = Annotated[str | None, Header(include_in_schema=False)]


def check_token(service: Service, scope: str, authorization: str | None) -> None:
    """Demand a bearer token with ``scope`` when tokens are configured (401 without one, 403 short of it)."""
    tokens = service.settings.tokens()
    if not tokens:
        return
    scheme, _, presented = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise HTTPException(401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"})
    presented = presented.strip()
    match = next(
        (t for t in tokens if hmac.compare_digest(t.token.get_secret_value().encode(), presented.encode())),
        None,
    )
    if match is None:
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not match.allows(scope):
        raise HTTPException(403, f"this token has the {match.scope} scope; {scope} is required")


def require_read(service: ServiceDep, authorization: Authorization = None) -> None:
    """A native route that reads: a token with the read (or write) scope when tokens are configured."""
    check_token(service, "read", authorization)


def require_write(service: ServiceDep, authorization: Authorization = None) -> None:
    """A native route that writes: a token with the write scope when tokens are configured."""
    check_token(service, "write", authorization)


def require_compat(request: Request, service: ServiceDep, authorization: Authorization = None) -> None:
    """Authorize Kayenta-compatible and Flagger calls: reads need read, the rest write.

    Argo Rollouts' kayenta provider and Flagger's webhooks send no credentials; with
    ``compat_endpoints_open`` these endpoints skip the token check (protect them by network).
    """
    if service.settings.compat_endpoints_open:
        return
    check_token(service, "read" if request.method in ("GET", "HEAD") else "write", authorization)


def native_write(service: Service, config_id: str, authorization: str | None) -> None:
    """Check that a Kayenta-compatible call may change the native config ``config_id``.

    Those endpoints may be open to clients without a token (``compat_endpoints_open``); a config
    created through the native API is changed through them only with a write token, and never
    when no tokens are configured.
    """
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
                    "msg": f"{message}, and KAYENTA_API_TOKENS is not set; use /api/v1/configs/{config_id}",
                }
            ],
        )
    try:
        check_token(service, "write", authorization)
    except HTTPException as exc:
        detail = [{"loc": ["header", "authorization"], "msg": f"{message}: {exc.detail}"}]
        raise HTTPException(exc.status_code, detail, headers=exc.headers) from None
