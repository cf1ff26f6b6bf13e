"""ASGI guards before every route: methods (405 with Allow), bodies (size, UTF-8, depth), errors (500)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import Response
from starlette.routing import Route, compile_path

from kayenta_py.http.errors import AsciiJSONResponse, Receive, Scope, Send, _send, database_error, error_item


def method_table(app: FastAPI) -> Callable[[], list[tuple[re.Pattern[str], frozenset[str]]]]:
    """Return a function giving each path's pattern and methods (the OpenAPI paths and plain routes)."""
    table: list[tuple[re.Pattern[str], frozenset[str]]] = []

    def get() -> list[tuple[re.Pattern[str], frozenset[str]]]:
        if not table:
            methods: dict[str, set[str]] = {}
            for path, operations in app.openapi()["paths"].items():
                methods.setdefault(path, set()).update(m.upper() for m in operations)
            for route in app.routes:
                if isinstance(route, Route) and route.methods:
                    methods.setdefault(route.path_format, set()).update(route.methods)
            table.extend((compile_path(path)[0], frozenset(found)) for path, found in methods.items())
        return table

    return get


class MethodGuard:
    """ASGI middleware: OPTIONS answers 204 with ``Allow``; a method a path lacks, 405 with ``Allow``."""

    def __init__(
        self,
        app: Callable[[Scope, Receive, Send], Awaitable[None]],
        table: Callable[[], list[tuple[re.Pattern[str], frozenset[str]]]],
    ) -> None:
        self.app = app
        self.table = table

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        allowed: set[str] = set()
        for pattern, methods in self.table():
            if pattern.match(path):
                allowed |= methods
        if not allowed or (method in allowed and method != "OPTIONS"):
            await self.app(scope, receive, send)
            return
        allow = ", ".join(sorted(allowed | {"OPTIONS"}))
        if method == "OPTIONS":
            response: Response = Response(status_code=204, headers={"Allow": allow})
        else:
            body = {"detail": [error_item(405, [], f"method {method} not allowed here; allowed: {allow}")]}
            response = AsciiJSONResponse(body, status_code=405, headers={"Allow": allow})
        await response(scope, receive, send)


class BodyGuard:
    """ASGI middleware checking every request body before a route sees it.

    Refused, as JSON: a body larger than ``limit`` bytes (413), a body that is not UTF-8
    (422 ``json_invalid``: every door takes JSON) and a JSON body holding a lone surrogate
    (``"\\ud800"``: valid JSON, but text no store or answer can encode; 422 naming its path).
    The body read is handed on unchanged.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            await _send(send, AsciiJSONResponse({"detail": self._too_large()}, status_code=413))
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limit:
                await _send(send, AsciiJSONResponse({"detail": self._too_large()}, status_code=413))
                return
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False
        problem = _body_problem(body)
        if problem is not None:
            await _send(send, AsciiJSONResponse({"detail": [problem]}, status_code=422))
            return

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body larger than {self.limit} bytes"


MAX_BODY_DEPTH = 64  # nesting of any request body (a config's own limit, KAYENTA_MAX_JSON_DEPTH, is lower)


def _body_problem(body: bytes) -> dict[str, Any] | None:
    """The 422 entry for a body that is not UTF-8, or JSON nested too deep or holding a lone surrogate."""
    if not body:
        return None
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        return error_item(422, ["body"], f"the body is not UTF-8 (byte {exc.start})", type="json_invalid")
    try:
        document = json.loads(text)
    except RecursionError:
        deep = f"nested more than {MAX_BODY_DEPTH} levels deep"
        return error_item(422, ["body"], deep, type="json_invalid")
    except ValueError:
        return None  # not JSON: the route says what it expected
    return _walk_problem(document)


def _walk_problem(document: Any) -> dict[str, Any] | None:
    """The first string (or key) UTF-8 cannot encode, or nesting past ``MAX_BODY_DEPTH`` (no recursion)."""
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(document, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_BODY_DEPTH:
            deep = f"nested more than {MAX_BODY_DEPTH} levels deep"
            return error_item(422, ["body", *path[:8], "..."], deep)
        if isinstance(value, str) and not _encodable(value):
            lone = "holds a lone surrogate (an unpaired \\ud800-\\udfff escape)"
            return error_item(422, ["body", *path], lone)
        if isinstance(value, dict):
            for key, item in value.items():
                if not _encodable(key):
                    return error_item(422, ["body", *path], "a key holds a lone surrogate")
                stack.append((item, (*path, key)))
        elif isinstance(value, list):
            stack.extend((item, (*path, index)) for index, item in enumerate(value))
    return None


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True




class ErrorGuard:
    """ASGI middleware answering an unhandled exception with a JSON 500 (or 503), and keeping the connection.

    Starlette's own handler for ``Exception`` answers and then re-raises, which makes the
    server drop the keep-alive connection (the client's next request is reset); this answers
    and stops there.
    """

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as exc:
            if started:  # too late for an answer: the server ends the connection
                raise
            await _send(send, database_error(exc))


