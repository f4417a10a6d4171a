"""A fake AWS Lambda for the error paths moto cannot play.

moto's Lambda answers any function name and has no provisioned concurrency, so a run against
a missing function, expired credentials or throttling cannot be tested with it. This fake
speaks the subset of the Lambda REST API the AWS backend uses, with AWS's status codes, error
headers and bodies (what botocore turns into its exception classes), and records what it was
asked. Point a boto3 Lambda client at it with ``AWS_ENDPOINT_URL_LAMBDA`` (other services, such
as STS under moto, stay where they were).
"""

from __future__ import annotations

import base64
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ACCOUNT = "123456789012"
REGION = "us-east-1"


@dataclass
class FakeFunction:
    name: str
    memory_mb: int = 1024
    variables: dict[str, str] = field(default_factory=dict)
    state: str = "Active"
    provisioned_status: str | None = None  # READY, IN_PROGRESS, ... on alias "live"
    generation: int = 0  # bumped by a configuration update: new execution environments
    warm_generation: int = -1  # the generation whose environment is warm
    updating_polls: int = 0  # GetFunction calls left that report LastUpdateStatus InProgress
    init_ms: float = 4321.0  # how long its init code runs in a new environment


class FakeLambda:
    """The fake service; use as a context manager. ``invoke_error`` makes every Invoke fail
    as AWS would: ``"expired"`` (403 ExpiredTokenException), ``"throttled"`` (429 with a
    Reason) or ``"function"`` (200 with a function error and a REPORT tail)."""

    def __init__(self, functions: list[str], invoke_error: str | None = None) -> None:
        self.functions = {name: FakeFunction(name) for name in functions}
        self.invoke_error = invoke_error
        self.calls: list[tuple[str, str, str | None]] = []  # (operation, function, qualifier)
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.endpoint_url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> FakeLambda:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def operations(self, name: str) -> list[str]:
        return [op for op, function, _ in self.calls if function == name]

    # ----- answers ---------------------------------------------------------------------
    def answer(self, method: str, path: str, query: dict[str, str], body: bytes,
               headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        match = re.fullmatch(r"/(2015-03-31|2019-09-30)/functions/([^/]+)(/[a-z-]+)?", path)
        if match is None:
            return _error(404, "UnknownOperationException", f"Unknown operation {method} {path}")
        name, tail = match.group(2), match.group(3) or ""
        operation = {("GET", ""): "GetFunction", ("GET", "/configuration"): "GetFunctionConfiguration",
                     ("PUT", "/configuration"): "UpdateFunctionConfiguration",
                     ("POST", "/invocations"): "Invoke",
                     ("GET", "/provisioned-concurrency"): "GetProvisionedConcurrencyConfig"}.get((method, tail))  # fmt: skip
        with self.lock:
            self.calls.append((str(operation), name, query.get("Qualifier")))
            function = self.functions.get(name)
            if operation == "Invoke" and self.invoke_error == "expired":
                return _error(403, "ExpiredTokenException",
                              "The security token included in the request is expired")  # fmt: skip
            if function is None:
                return _error(404, "ResourceNotFoundException",
                              f"Function not found: arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}")  # fmt: skip
            if operation in ("GetFunction", "GetFunctionConfiguration"):
                configuration = self._configuration(function)
                if function.updating_polls:
                    function.updating_polls -= 1
                    configuration["LastUpdateStatus"] = "InProgress"
                found = configuration if operation == "GetFunctionConfiguration" else {
                    "Configuration": configuration, "Code": {"RepositoryType": "ECR"}}  # fmt: skip
                return 200, {}, json.dumps(found).encode()
            if operation == "UpdateFunctionConfiguration":
                update = json.loads(body or b"{}")
                function.variables = update.get("Environment", {}).get(
                    "Variables", function.variables
                )
                function.memory_mb = int(update.get("MemorySize", function.memory_mb))
                function.generation += 1
                function.updating_polls = 1
                return (
                    200,
                    {},
                    json.dumps(
                        self._configuration(function) | {"LastUpdateStatus": "InProgress"}
                    ).encode(),
                )
            if operation == "GetProvisionedConcurrencyConfig":
                if function.provisioned_status is None:
                    return _error(404, "ProvisionedConcurrencyConfigNotFoundException", "No config")
                return 200, {}, json.dumps({"Status": function.provisioned_status}).encode()
            if operation == "Invoke":
                return self._invoke(function, body, headers)
        return _error(400, "InvalidParameterValueException", f"unsupported {method} {path}")

    def _configuration(self, function: FakeFunction) -> dict[str, Any]:
        return {"FunctionName": function.name, "MemorySize": function.memory_mb,
                "FunctionArn": f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{function.name}",
                "State": function.state, "LastUpdateStatus": "Successful", "PackageType": "Image",
                "Architectures": ["x86_64"], "Environment": {"Variables": function.variables}}  # fmt: skip

    def _invoke(self, function: FakeFunction, body: bytes,
                headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        if self.invoke_error == "throttled":
            return _error(429, "TooManyRequestsException", "Rate Exceeded.",
                          Reason="ReservedFunctionConcurrentInvocationLimitExceeded")  # fmt: skip
        request_id = str(uuid.uuid4())
        cold = function.warm_generation != function.generation
        function.warm_generation = function.generation
        init_lines, init_field, retried_ms = (
            _init_phase(function.init_ms) if cold else ([], "", 0.0)
        )
        report = (f"REPORT RequestId: {request_id}\tDuration: {3.21 + retried_ms:.2f} ms\t"
                  f"Billed Duration: {4 + int(retried_ms)} ms\t"
                  f"Memory Size: {function.memory_mb} MB\tMax Memory Used: 180 MB\t{init_field}")  # fmt: skip
        answer_headers = {"X-Amz-Executed-Version": "$LATEST", "x-amzn-RequestId": request_id}
        if self.invoke_error == "function":
            payload = {"errorType": "ValueError", "errorMessage": "injected"}
            answer_headers["X-Amz-Function-Error"] = "Unhandled"
            report += "Status: error\tError Type: ValueError\t"
        else:
            event = json.loads(body or b"{}")
            payload = {
                "predictions": [{"id": i["id"], "label": 0} for i in event.get("instances", [])]
            }
        if headers.get("x-amz-log-type") == "Tail":
            start = [f"START RequestId: {request_id}"]
            if retried_ms:  # the suppressed init is retried inside the invocation
                start.append(
                    f"INIT_REPORT Init Duration: {retried_ms:.2f} ms\tPhase: invoke\tStatus: success"
                )
            log = "\n".join([*init_lines, *start, f"END RequestId: {request_id}", report]) + "\n"
            answer_headers["X-Amz-Log-Result"] = base64.b64encode(log.encode()).decode()
        return 200, answer_headers, json.dumps(payload).encode()


INIT_LIMIT_MS = 10_000.0


def _init_phase(init_ms: float) -> tuple[list[str], str, float]:
    """A new environment's init as Lambda logs it: (init lines, the REPORT's Init Duration
    field, init time retried inside the invocation). "The Init phase is limited to 10
    seconds. If all three tasks do not complete within 10 seconds, Lambda retries the Init
    phase at the time of the first function invocation with the configured function
    timeout" (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html);
    the tries are logged as INIT_REPORT lines with their Phase and Status (the
    platform.initReport event, https://docs.aws.amazon.com/lambda/latest/dg/telemetry-schema-reference.html),
    and the REPORT then has no Init Duration."""
    lines = ["INIT_START Runtime Version: python:3.11.v80\tRuntime Version ARN: arn:aws:lambda:"
             f"{REGION}::runtime:0000"]  # fmt: skip
    if init_ms <= INIT_LIMIT_MS:
        return lines, f"Init Duration: {init_ms:.2f} ms\t", 0.0
    lines.append(f"INIT_REPORT Init Duration: {INIT_LIMIT_MS:.2f} ms\tPhase: init\tStatus: timeout")
    return lines, "", init_ms


def _error(status: int, code: str, message: str, **extra: str) -> tuple[int, dict[str, str], bytes]:
    headers = {"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())}
    return status, headers, json.dumps({"Type": "User", "message": message, **extra}).encode()


def _handler(fake: FakeLambda) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, extra, payload = fake.answer(self.command, path, params, body, headers)
            self.send_response(status)
            for name, value in ({"Content-Type": "application/json"} | extra).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_PUT = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:  # quiet
            return None

    return Handler
