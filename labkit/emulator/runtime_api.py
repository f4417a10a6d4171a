"""The Runtime API routes of one instance (the HTTP itself is :mod:`labkit.emulator.httpserver`).

Each instance has its own endpoint, as each Lambda sandbox does, so no route names an
instance. ``/next`` is a long poll: the instance answers with a future that it resolves when
an invocation is dispatched to it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from typing import Protocol

from labkit.emulator.httpserver import Answer, Handler, Request, Response

RUNTIME_PREFIX = "/2018-06-01/runtime"
INVOCATION_PREFIX = RUNTIME_PREFIX + "/invocation/"
ACCEPTED = Response(202, json.dumps({"status": "OK"}).encode())


class RuntimeHandler(Protocol):
    """What an instance answers on its Runtime API."""

    def runtime_next(self) -> Response | asyncio.Future[Response]: ...

    def runtime_result(
        self, request_id: str, kind: str, body: bytes, size: int, headers: Mapping[str, str]
    ) -> Response: ...

    def runtime_init_error(self, body: bytes, headers: Mapping[str, str]) -> Response: ...


def runtime_error(status: int, error_type: str, message: str) -> Response:
    body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
    return Response(status, body)


def runtime_routes(instance: RuntimeHandler) -> Handler:
    """The request handler of an instance's Runtime API."""

    def route(request: Request) -> Answer:
        path, method = request.path, request.method
        if path == INVOCATION_PREFIX + "next" and method == "GET":
            return instance.runtime_next()
        if path == RUNTIME_PREFIX + "/init/error" and method == "POST":
            return instance.runtime_init_error(request.body, request.headers)
        if path.startswith(INVOCATION_PREFIX) and method == "POST":
            request_id, _, kind = path[len(INVOCATION_PREFIX) :].partition("/")
            if kind in ("response", "error"):
                return instance.runtime_result(
                    request_id, kind, request.body, request.size, request.headers
                )
        return runtime_error(404, "NotFound", f"no route {method} {path}")

    return route
