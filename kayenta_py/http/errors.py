"""The HTTP contract: errors as JSON in FastAPI's shape, the OpenAPI document, OPTIONS and body limits.

Every error answers ``{"detail": ...}``; a 422 lists ``{type, loc, msg, input?}`` entries
(strict JSON, redacted), a busy database is a 503 with ``Retry-After``, anything unexpected a
JSON 500 with a reference that is also in the log, never a traceback. Test:
``tests/test_http_contract.py``, ``tests/test_schemathesis.py``.
"""

from __future__ import annotations

import json
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException

from kayenta_py.model.errors import ConfigError, KayentaError
from kayenta_py.model.redact import redact
from kayenta_py.service.analyses import ConfigNotFoundError, Service
from kayenta_py.service.store.errors import UnreadableRecord, is_busy_error, is_unavailable_error

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
log = logging.getLogger("kayenta_py.api")

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

class AsciiJSONResponse(JSONResponse):
    """JSON with every non-ASCII character escaped: an answer that echoes odd input always encodes."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode("ascii")


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


def one_line(exc: BaseException, limit: int = 200) -> str:
    text = redact(" ".join(str(exc).split("\n", 1)[0].split()))
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _internal_error(exc: BaseException) -> JSONResponse:
    reference = uuid.uuid4().hex[:12]
    log.error("internal error %s on a request", reference, exc_info=exc)
    message = f"internal error (reference {reference} in the service log): {type(exc).__name__}: "
    message += one_line(exc)
    return AsciiJSONResponse({"detail": [error_item(500, [], message)]}, status_code=500)


def _unavailable(what: str, kind: str) -> JSONResponse:
    message = f"{what}; retry in {RETRY_AFTER_S} s"
    body = {"detail": [error_item(503, [], message, type=kind)]}
    return AsciiJSONResponse(body, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)})


def _path_parts(path: str) -> list[str | int]:
    """Split a config path (``metrics[2].judge.effect_size``) into loc parts, as pydantic gives them."""
    parts: list[str | int] = []
    for part in filter(None, path.split(".")):
        name, _, rest = part.partition("[")
        parts += [name] if name else []
        parts += [int(i) if i.isdigit() else i for i in rest.rstrip("]").split("][") if i] if rest else []
    return parts


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error as JSON ``{"detail": ...}``: 422 lists ``{type, loc, msg}``; never a traceback."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return AsciiJSONResponse({"detail": _json_safe(jsonable_encoder(exc.errors()))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> Response:
        headers = dict(exc.headers or {})
        if exc.status_code in (204, 304):
            return Response(status_code=exc.status_code, headers=headers)
        detail: Any = exc.detail
        if exc.status_code == 400 and detail == _UNPARSABLE:  # FastAPI's answer to a body not UTF-8
            body = [error_item(422, ["body"], "the body is not valid JSON (UTF-8)", type="json_invalid")]
            return AsciiJSONResponse({"detail": body}, status_code=422)
        if isinstance(detail, list):
            detail = [_typed(exc.status_code, item) for item in detail]
        elif exc.status_code == 422:
            detail = [error_item(422, [], str(detail))]
        return AsciiJSONResponse({"detail": _json_safe(detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(ConfigError)
    async def _config_error(_request: Request, exc: ConfigError) -> JSONResponse:
        detail = [
            error_item(422, ["body", "config", *_path_parts(i.path)], redact(i.message)) for i in exc.issues
        ]
        return AsciiJSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(KayentaError)
    async def _kayenta_error(_request: Request, exc: KayentaError) -> JSONResponse:
        parts = exc.field.split(".") if exc.field else []
        named = all(p.isidentifier() for p in parts)  # a request's field, not a flag or a file
        loc: list[str | int] = ["body", *parts] if named else ["body"]
        return AsciiJSONResponse({"detail": [error_item(422, loc, redact(str(exc)))]}, status_code=422)

    @app.exception_handler(ConfigNotFoundError)
    async def _config_not_found(_request: Request, exc: ConfigNotFoundError) -> JSONResponse:
        item = error_item(404, ["body", exc.field], redact(exc.message))
        return AsciiJSONResponse({"detail": [item]}, status_code=404)

    @app.exception_handler(UnreadableRecord)
    async def _unreadable(_request: Request, exc: UnreadableRecord) -> JSONResponse:
        log.error("unreadable stored record: %s", exc)
        item = error_item(500, [], redact(str(exc)), type="unreadable_record", record_id=exc.record_id)
        return AsciiJSONResponse({"detail": [item]}, status_code=500)

    @app.exception_handler(DBAPIError)
    async def _database_error(_request: Request, exc: DBAPIError) -> JSONResponse:
        return database_error(exc)

    # Anything else unexpected: ErrorGuard (a handler for Exception would re-raise and drop the connection).


def openapi_document(app: FastAPI, service: Service) -> dict[str, Any]:
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
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    places = {p.get("in") for p in parameters}
    _add_error_responses(operation, _error_statuses(operation, path, method, guard, places))
    security = _security(path, method, guard, service)
    if security is not None:
        operation["security"] = security


def _error_statuses(
    operation: Mapping[str, Any], path: str, method: str, guard: str | None, places: set[Any]
) -> set[int]:
    """The error statuses an operation can answer, from its guard, parameters and body."""
    statuses = {500} if path == "/healthz" else {500, 503}
    statuses |= set(_EXTRA_STATUSES.get((method, path), ()))
    if guard is not None:
        statuses |= {401, 403}
    if "path" in places:
        statuses.add(404)
    if method in ("POST", "PUT", "PATCH"):
        statuses |= {413, 422}  # BodyGuard reads any body: too large, not UTF-8, a lone surrogate
    if "requestBody" in operation:
        statuses |= {404, 413, 422}  # 404: a body may name a stored config that does not exist
    if places:
        statuses.add(422)
    return statuses


def _add_error_responses(operation: dict[str, Any], statuses: set[int]) -> None:
    """Document each error status with the Error schema (and plain text where the route speaks it)."""
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


def _security(
    path: str, method: str, guard: str | None, service: Service
) -> list[dict[str, list[str]]] | None:
    """The operation's security requirement under the service's settings (None: none to declare)."""
    tokens = bool(service.settings.tokens())
    if guard == "compat" and service.settings.compat_endpoints_open:
        if tokens and method in ("PUT", "DELETE", "POST") and path.startswith("/canaryConfig"):
            return [{}, {"bearer": []}]  # a config created natively needs a write token
        return None
    if guard is not None and tokens:
        return [{"bearer": []}]
    return None


# ---------------------------------------------------------------- documents


def database_error(exc: BaseException) -> JSONResponse:
    """503 with Retry-After when the store is busy or cannot write now, else a JSON 500."""
    if is_busy_error(exc):
        return _unavailable("the database is busy", "database_busy")
    if is_unavailable_error(exc):
        return _unavailable(f"the database cannot write now ({one_line(exc, 120)})", "database_unavailable")
    return _internal_error(exc)


async def _send(send: Send, response: JSONResponse) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": response.status_code,
            "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in response.headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": response.body})
