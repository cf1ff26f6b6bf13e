"""What routes depend on: bearer-token scopes, the Kayenta-compatibility guard, native config writers."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Annotated

from fastapi import Header, HTTPException, Request

from kayenta_py.service.analyses import Service


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


