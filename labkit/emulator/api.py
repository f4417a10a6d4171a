"""The Lambda Invoke API (the subset boto3 and the AWS CLI use) and a small admin API.

Errors use AWS's shapes (``x-amzn-errortype`` header and a JSON body with ``Type`` and
``message``), so botocore raises the right exception classes.
"""

from __future__ import annotations

import asyncio
import functools
import json
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from labkit.emulator.instance import MAX_PAYLOAD_BYTES
from labkit.emulator.service import FunctionService, Throttled

FUNCTIONS = "/2015-03-31/functions"


def _aws_error(status: int, error_type: str, message: str, **extra: Any) -> web.Response:
    body = {"Type": "User", "message": message, **extra}
    headers = {"x-amzn-errortype": error_type, "x-amzn-RequestId": str(uuid.uuid4())}
    return web.json_response(body, status=status, headers=headers)


Handler = Callable[["InvokeApi", web.Request, FunctionService], Awaitable[web.StreamResponse]]


def _with_service(
    handler: Handler,
) -> Callable[[InvokeApi, web.Request], Awaitable[web.StreamResponse]]:
    """Resolve the function the path names (name or ARN) before ``handler`` runs; answer
    ResourceNotFoundException when there is none."""

    @functools.wraps(handler)
    async def resolved(self: InvokeApi, request: web.Request) -> web.StreamResponse:
        service = self._service(request)
        if isinstance(service, web.Response):
            return service
        return await handler(self, request, service)

    return resolved


class InvokeApi:
    """Routes requests to the function services by name (or ARN)."""

    def __init__(self, services: dict[str, FunctionService]) -> None:
        self.services = services
        self._background: set[asyncio.Task[Any]] = set()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=2 * MAX_PAYLOAD_BYTES)
        app.router.add_post(FUNCTIONS + "/{name}/invocations", self.invoke)
        app.router.add_get(FUNCTIONS + "/", self.list_functions)
        app.router.add_get(FUNCTIONS, self.list_functions)
        app.router.add_get(FUNCTIONS + "/{name}", self.get_function)
        app.router.add_get(FUNCTIONS + "/{name}/configuration", self.get_configuration)
        app.router.add_get("/labkit/health", self.health)
        app.router.add_get("/labkit/functions/{name}/logs", self.logs)
        app.router.add_get("/labkit/functions/{name}/instances", self.instances)
        app.router.add_put("/labkit/functions/{name}/provisioned", self.provisioned)
        return app

    def _service(self, request: web.Request) -> FunctionService | web.Response:
        raw = urllib.parse.unquote(request.match_info["name"])
        name = raw.split(":")[6] if raw.startswith("arn:") and raw.count(":") >= 6 else raw
        qualifier = request.query.get("Qualifier")
        service = self.services.get(name)
        if service is None or qualifier not in (None, "$LATEST"):
            what = f"{name}:{qualifier}" if qualifier else name
            return _aws_error(404, "ResourceNotFoundException",
                              f"Function not found: arn:aws:lambda:us-east-1:000000000000:function:{what}")  # fmt: skip
        return service

    @_with_service
    async def invoke(self, request: web.Request, service: FunctionService) -> web.StreamResponse:
        if request.content_length is not None and request.content_length > MAX_PAYLOAD_BYTES:
            return _too_large(request.content_length)
        payload = await request.read()
        if len(payload) > MAX_PAYLOAD_BYTES:
            return _too_large(len(payload))
        if payload:
            try:
                json.loads(payload)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return _aws_error(400, "InvalidRequestContentException",
                                  f"Could not parse request body into json: {exc}")  # fmt: skip
        else:
            payload = b"{}"
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return web.Response(status=204, headers={"X-Amz-Executed-Version": "$LATEST"})
        if kind == "Event":
            task = asyncio.create_task(self._invoke_async(service, payload))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return web.Response(status=202, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        if kind != "RequestResponse":
            return _aws_error(400, "InvalidParameterValueException",
                              f"Unsupported invocation type {kind!r}")  # fmt: skip
        try:
            result = await service.invoke(payload)
        except Throttled as exc:
            return _aws_error(429, "TooManyRequestsException", str(exc),
                              Reason="ReservedFunctionConcurrentInvocationLimitExceeded")  # fmt: skip
        headers = {
            "X-Amz-Executed-Version": "$LATEST",
            "x-amzn-RequestId": result.request_id,
            "Content-Type": "application/json",
        }
        if result.outcome.error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if request.headers.get("X-Amz-Log-Type") == "Tail":
            headers["X-Amz-Log-Result"] = result.log_result
        return web.Response(body=result.outcome.body, headers=headers)

    async def _invoke_async(self, service: FunctionService, payload: bytes) -> None:
        """Event invocations wait for capacity (Lambda's internal queue) instead of failing."""
        while True:
            try:
                await service.invoke(payload)
                return
            except Throttled:
                await asyncio.sleep(0.05)

    async def list_functions(self, request: web.Request) -> web.Response:
        return web.json_response(
            {"Functions": [_configuration(s) for s in self.services.values()], "NextMarker": None}
        )

    @_with_service
    async def get_function(self, request: web.Request, service: FunctionService) -> web.Response:
        return web.json_response({
            "Configuration": _configuration(service),
            "Code": {"RepositoryType": "Local", "Location": str(service.config.code_dir)},
            "Concurrency": {"ReservedConcurrentExecutions": service.config.concurrency},
            "Tags": {"labkit": "local"},
        })  # fmt: skip

    @_with_service
    async def get_configuration(
        self, request: web.Request, service: FunctionService
    ) -> web.Response:
        return web.json_response(_configuration(service))

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "functions": sorted(self.services)})

    @_with_service
    async def logs(self, request: web.Request, service: FunctionService) -> web.Response:
        lines, position = service.logs.since(int(request.query.get("since", "0")))
        return web.json_response({"lines": lines, "next": position})

    @_with_service
    async def instances(self, request: web.Request, service: FunctionService) -> web.Response:
        return web.json_response(service.describe())

    @_with_service
    async def provisioned(self, request: web.Request, service: FunctionService) -> web.Response:
        try:
            count = int((await request.json())["count"])
            await service.set_provisioned(count)
        except (ValueError, KeyError, TypeError) as exc:
            return _aws_error(400, "InvalidParameterValueException", str(exc))
        return web.json_response(service.describe())


def _too_large(size: int) -> web.Response:
    return _aws_error(413, "RequestTooLargeException",
                      f"Request must be smaller than {MAX_PAYLOAD_BYTES} bytes for the "
                      f"InvokeFunction operation (got {size})")  # fmt: skip


def _configuration(service: FunctionService) -> dict[str, Any]:
    config = service.config
    return {
        "FunctionName": config.name,
        "FunctionArn": config.arn,
        "PackageType": "Image",
        "Handler": config.handler,
        "MemorySize": config.memory_mb,
        "Timeout": int(config.timeout_s)
        if float(config.timeout_s).is_integer()
        else config.timeout_s,
        "Version": "$LATEST",
        "State": "Active",
        "LastUpdateStatus": "Successful",
        "Architectures": ["x86_64"],
        "Environment": {"Variables": dict(config.environment)},
        "Description": f"labkit embedded local Lambda: {config.code_dir}",
    }
