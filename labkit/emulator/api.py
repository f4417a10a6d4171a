"""The Lambda Invoke API (the subset boto3 and the AWS CLI use) and a small admin API.

Errors use AWS's shapes (``x-amzn-errortype`` header and a JSON body with ``Type`` and
``message``), so botocore raises the right exception classes. The HTTP server underneath is
:mod:`labkit.emulator.httpserver`.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
import uuid
from collections.abc import Callable
from typing import Any

from labkit.emulator import event_sources
from labkit.emulator.config import ACCOUNT_ID, REGION
from labkit.emulator.httpserver import Answer, Request, Response, json_response
from labkit.emulator.instance import MAX_PAYLOAD_BYTES
from labkit.emulator.network import RoundTrips
from labkit.emulator.service import FunctionService, Throttled

FUNCTIONS = "/2015-03-31/functions"
MAPPINGS = "/2015-03-31/event-source-mappings"
BODY_LIMIT = MAX_PAYLOAD_BYTES + 1  # bytes kept of a request body: enough to tell it is too big


def _aws_error(status: int, error_type: str, message: str, **extra: Any) -> Response:
    body = {"Type": "User", "message": message, **extra}
    headers = {"x-amzn-errortype": error_type, "x-amzn-RequestId": str(uuid.uuid4())}
    return json_response(body, status=status, headers=headers)


class InvokeApi:
    """Routes requests to the function services by name (or ARN)."""

    def __init__(
        self, services: dict[str, FunctionService], network: RoundTrips | None = None,
        sqs_endpoint_url: str | None = None,
    ) -> None:  # fmt: skip
        """``network``: a round trip drawn per invocation and slept, half on the way in and
        half on the way out (:mod:`labkit.emulator.network`). ``sqs_endpoint_url``: the SQS
        that event-source mappings poll (:mod:`labkit.emulator.event_sources`)."""
        self.services = services
        self.network = network
        self.sqs_endpoint_url = sqs_endpoint_url
        self.mappings: dict[str, event_sources.Pollers] = {}
        self._background: set[asyncio.Task[Any]] = set()
        # (method, path pattern, route, whether the pattern names a function)
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Answer], bool]] = [
            ("POST", re.compile(FUNCTIONS + r"/([^/]+)/invocations"), InvokeApi.invoke, True),
            ("GET", re.compile(FUNCTIONS + "/?"), InvokeApi.list_functions, False),
            ("GET", re.compile(FUNCTIONS + r"/([^/]+)"), InvokeApi.get_function, True),
            ("GET", re.compile(FUNCTIONS + r"/([^/]+)/configuration"),
             InvokeApi.get_configuration, True),
            ("POST", re.compile(MAPPINGS + "/?"), InvokeApi.create_mapping, False),
            ("GET", re.compile(MAPPINGS + "/?"), InvokeApi.list_mappings, False),
            ("GET", re.compile(MAPPINGS + r"/([0-9a-f-]+)"), InvokeApi.get_mapping, False),
            ("DELETE", re.compile(MAPPINGS + r"/([0-9a-f-]+)"), InvokeApi.delete_mapping, False),
            ("GET", re.compile("/labkit/health"), InvokeApi.health, False),
            ("GET", re.compile(r"/labkit/functions/([^/]+)/logs"), InvokeApi.logs, True),
            ("GET", re.compile(r"/labkit/functions/([^/]+)/instances"), InvokeApi.instances, True),
            ("PUT", re.compile(r"/labkit/functions/([^/]+)/provisioned"),
             InvokeApi.provisioned, True),
        ]  # fmt: skip

    def handle(self, request: Request) -> Answer:
        """Route ``request``; a route naming a function gets its service, or a 404 in AWS's
        shape when there is none."""
        for method, pattern, route, names_function in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None or method != request.method:
                continue
            if not names_function:
                return route(self, request)
            service = self._service(match.group(1), request.query.get("Qualifier"))
            if isinstance(service, Response):
                return service
            return route(self, request, service)
        return _aws_error(404, "UnknownOperationException",
                          f"Unknown operation {request.method} {request.path}")  # fmt: skip

    def _service(self, quoted: str, qualifier: str | None) -> FunctionService | Response:
        """The service a function name or ARN names. An ARN must name this service's region
        and account, as Lambda serves only its own; ``$LATEST`` is the only qualifier."""
        raw = urllib.parse.unquote(quoted)
        parts = raw.split(":")
        name = raw
        if raw.startswith("arn:"):
            if len(parts) < 7 or parts[2:6] != ["lambda", REGION, ACCOUNT_ID, "function"]:
                return _aws_error(404, "ResourceNotFoundException",
                                  f"Function not found: {raw} (this local Lambda is region "
                                  f"{REGION}, account {ACCOUNT_ID})")  # fmt: skip
            name = parts[6]
            qualifier = qualifier or (parts[7] if len(parts) > 7 else None)
        service = self.services.get(name)
        if service is None or qualifier not in (None, "$LATEST"):
            what = f"{name}:{qualifier}" if qualifier else name
            return _aws_error(404, "ResourceNotFoundException",
                              f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{what}")  # fmt: skip
        return service

    def invoke(self, request: Request, service: FunctionService) -> Answer:
        answer = self._invoke(request, service)
        return self._across_network(answer) if self.network is not None else answer

    async def _across_network(self, answer: Answer) -> Response:
        """The request travels to the service and the answer back: half a round trip each
        way, slept (no CPU), outside the function's Duration and its instance's time."""
        assert self.network is not None
        half = self.network.next_s() / 2
        await asyncio.sleep(half)
        response = answer if isinstance(answer, Response) else await answer
        await asyncio.sleep(half)
        return response

    def _invoke(self, request: Request, service: FunctionService) -> Answer:
        if request.size > MAX_PAYLOAD_BYTES:
            return _too_large(request.size)
        payload = request.body
        if payload:
            try:
                json.loads(payload)
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                return _aws_error(400, "InvalidRequestContentException",
                                  f"Could not parse request body into json: {exc}")  # fmt: skip
            except RecursionError:
                return _aws_error(400, "InvalidRequestContentException",
                                  "Could not parse request body into json: nested too deeply")  # fmt: skip
        else:
            payload = b"{}"
        kind = request.headers.get("X-Amz-Invocation-Type", "RequestResponse")
        if kind == "DryRun":
            return Response(204, headers={"X-Amz-Executed-Version": "$LATEST"})
        if kind == "Event":
            task = asyncio.create_task(self._invoke_async(service, payload))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return Response(202, headers={"x-amzn-RequestId": str(uuid.uuid4())})
        if kind != "RequestResponse":
            return _aws_error(400, "InvalidParameterValueException",
                              f"Unsupported invocation type {kind!r}")  # fmt: skip
        return self._invoke_now(
            service, payload, tail=request.headers.get("X-Amz-Log-Type") == "Tail"
        )

    async def _invoke_now(self, service: FunctionService, payload: bytes, tail: bool) -> Response:
        # A caller that hangs up does not end this (the HTTP server lets work run to its end,
        # as Lambda does): its instance stays busy until then and its figures are logged.
        try:
            result = await service.invoke(payload)
        except Throttled as exc:
            return _aws_error(429, "TooManyRequestsException", str(exc),
                              Reason="ReservedFunctionConcurrentInvocationLimitExceeded")  # fmt: skip
        headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": result.request_id}
        if result.outcome.error_type is not None:
            headers["X-Amz-Function-Error"] = "Unhandled"
        if tail:
            headers["X-Amz-Log-Result"] = result.log_result
        return Response(200, result.outcome.body, headers)

    async def _invoke_async(self, service: FunctionService, payload: bytes) -> None:
        """Event invocations wait for capacity (Lambda's internal queue) instead of failing."""
        while True:
            try:
                await service.invoke(payload)
                return
            except Throttled:
                await asyncio.sleep(0.05)

    async def create_mapping(self, request: Request) -> Response:
        """``CreateEventSourceMapping`` for an SQS queue: checked as AWS checks it, then its
        pollers start (202, as AWS answers)."""
        try:
            body = json.loads(request.body or b"{}")
        except ValueError as exc:
            return _aws_error(400, "InvalidRequestContentException", str(exc))
        found = self._service(urllib.parse.quote(str(body.get("FunctionName", ""))), None)
        if isinstance(found, Response):
            return found
        if not self.sqs_endpoint_url:
            return _aws_error(400, "InvalidParameterValueException",
                              "this local Lambda has no SQS to poll: start it with "
                              "sqs_endpoint_url (labkit.emulator.queues.LocalSqs)")  # fmt: skip
        try:
            mapping = event_sources.parse(body, found.config.arn, found.config.name)
        except event_sources.MappingError as exc:
            return _aws_error(400, "InvalidParameterValueException", str(exc))
        pollers = event_sources.Pollers(mapping, found.invoke, self.sqs_endpoint_url, REGION,
                                        found.config.concurrency)  # fmt: skip
        try:
            await pollers.start()
        except Exception as exc:  # the queue does not exist
            return _aws_error(400, "InvalidParameterValueException",
                              f"cannot poll {mapping.event_source_arn}: {exc}")  # fmt: skip
        self.mappings[mapping.uuid] = pollers
        return json_response(mapping.describe(), status=202)

    def list_mappings(self, request: Request) -> Response:
        return json_response({"EventSourceMappings": [p.mapping.describe()
                                                      for p in self.mappings.values()]})  # fmt: skip

    def get_mapping(self, request: Request) -> Response:
        pollers = self.mappings.get(request.path.rsplit("/", 1)[1])
        if pollers is None:
            return _aws_error(
                404, "ResourceNotFoundException", "The resource you requested does not exist."
            )
        # "labkit": what AWS does not report (boto3 drops it; see LocalLambda.mapping)
        m = pollers.mapping
        return json_response(m.describe() | {"labkit": {
            "invocations": m.invocations, "batches": m.batches, "pollers": m.pollers,
            "peak_pollers": m.peak_pollers}})  # fmt: skip

    async def delete_mapping(self, request: Request) -> Response:
        pollers = self.mappings.pop(request.path.rsplit("/", 1)[1], None)
        if pollers is None:
            return _aws_error(
                404, "ResourceNotFoundException", "The resource you requested does not exist."
            )
        await pollers.stop()
        return json_response(pollers.mapping.describe() | {"State": "Deleting"}, status=202)

    async def close_mappings(self) -> None:
        for pollers in self.mappings.values():
            await pollers.stop()

    def list_functions(self, request: Request) -> Response:
        return json_response(
            {"Functions": [_configuration(s) for s in self.services.values()], "NextMarker": None}
        )

    def get_function(self, request: Request, service: FunctionService) -> Response:
        return json_response({
            "Configuration": _configuration(service),
            "Code": {"RepositoryType": "Local", "Location": str(service.config.code_dir)},
            "Concurrency": {"ReservedConcurrentExecutions": service.config.concurrency},
            "Tags": {"labkit": "local"},
        })  # fmt: skip

    def get_configuration(self, request: Request, service: FunctionService) -> Response:
        return json_response(_configuration(service))

    def health(self, request: Request) -> Response:
        return json_response({"status": "ok", "functions": sorted(self.services)})

    def logs(self, request: Request, service: FunctionService) -> Response:
        try:
            since = int(request.query.get("since", "0"))
        except ValueError as exc:
            return _aws_error(400, "InvalidParameterValueException", str(exc))
        lines, position = service.logs.since(since)
        return json_response({"lines": lines, "next": position})

    def instances(self, request: Request, service: FunctionService) -> Response:
        return json_response(service.describe())

    def provisioned(self, request: Request, service: FunctionService) -> Answer:
        try:
            count = int(json.loads(request.body)["count"])
        except (ValueError, KeyError, TypeError) as exc:
            return _aws_error(400, "InvalidParameterValueException", str(exc))
        return self._set_provisioned(service, count)

    async def _set_provisioned(self, service: FunctionService, count: int) -> Response:
        try:
            await service.set_provisioned(count)
        except ValueError as exc:
            return _aws_error(400, "InvalidParameterValueException", str(exc))
        return json_response(service.describe())


def _too_large(size: int) -> Response:
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
