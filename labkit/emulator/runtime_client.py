"""A Lambda runtime client in plain Python, for machines where ``awslambdaric`` does not install.

The official client (``awslambdaric``) ships wheels for Linux only; on macOS and Windows pip
falls back to a native build that needs autotools, cmake and libcurl. An instance of the local
Lambda does not need it: the Runtime API is four HTTP calls. This module speaks them with the
standard library: ``GET /next`` for an event, the handler, ``POST .../response`` or
``.../error`` (or ``/init/error`` when the handler cannot be loaded), with the same error
shapes the official client sends (``errorMessage``, ``errorType``, ``stackTrace``; import
failures as ``Runtime.ImportModuleError``, ``Runtime.HandlerNotFound``...). The official
client stays the default wherever it is installed, and always inside the container image.

Run as ``python .../labkit/emulator/runtime_client.py [--client python|awslambdaric]
[--watch-parent] module.function`` in the function's folder (by path, not ``-m``: importing
the ``labkit.emulator`` package would add ~80 ms to every cold start). ``--watch-parent`` ends the
process when its parent (the service) dies, where the operating system cannot be asked to
(Linux's ``PR_SET_PDEATHSIG``); ``--client awslambdaric`` runs the official client under that
watch. It imports nothing from labkit.
"""

from __future__ import annotations

import importlib
import json
import os
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

API = "/2018-06-01/runtime"
PARENT_POLL_S = 0.5


class LambdaContext:
    """The context object handlers receive (the attributes the official client sets)."""

    def __init__(self, request_id: str, deadline_ms: int, arn: str) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME", "")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "")
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def load_handler(spec: str) -> Callable[[Any, LambdaContext], Any]:
    """``module.function`` from the current folder (the task root), or :class:`_InitError`
    with the official client's error type."""
    module_name, _, function_name = spec.rpartition(".")
    if not module_name:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{spec}'")
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise _InitError("Runtime.ImportModuleError",
                         f"Unable to import module '{module_name}': {exc}") from exc  # fmt: skip
    except SyntaxError as exc:
        raise _InitError("Runtime.UserCodeSyntaxError",
                         f"Syntax error in module '{module_name}': {exc}") from exc  # fmt: skip
    handler = getattr(module, function_name, None)
    if handler is None:
        raise _InitError("Runtime.HandlerNotFound",
                         f"Handler '{function_name}' missing on module '{module_name}'")  # fmt: skip
    return handler  # type: ignore[no-any-return]


def _error_body(exc: BaseException, error_type: str | None = None) -> bytes:
    frames = traceback.format_list(traceback.extract_tb(exc.__traceback__)[1:])
    body = {"errorMessage": str(exc), "errorType": error_type or type(exc).__name__,
            "stackTrace": frames}  # fmt: skip
    print(f"[ERROR] {body['errorType']}: {body['errorMessage']}", flush=True)
    return json.dumps(body).encode()


class RuntimeApi:
    """One keep-alive HTTP/1.1 connection to the Runtime API, on a plain socket: the Runtime
    API's answers are small and always carry a Content-Length, and ``http.client`` alone
    costs ~24 ms of imports (its email parser) on every cold start (bench/README.md)."""

    def __init__(self, address: str) -> None:
        host, _, port = address.rpartition(":")
        self.host = address
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def call(self, method: str, path: str, body: bytes = b"",
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
        """One request; returns the status, the headers (lower-case names) and the body."""
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        head = (f"{method} {API}{path} HTTP/1.1\r\nHost: {self.host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n")  # fmt: skip
        self.sock.sendall(head.encode("latin-1") + body)
        status = int(self.reader.readline().split()[1])
        fields = {}
        while (line := self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            fields[name.strip().lower()] = value.strip()
        length = int(fields.get("content-length", "0"))
        return status, fields, self.reader.read(length) if length else b""


def serve(spec: str) -> None:
    """Load the handler, then answer invocations until the process is stopped."""
    api = RuntimeApi(os.environ["AWS_LAMBDA_RUNTIME_API"])
    try:
        handler = load_handler(spec)
    except Exception as exc:  # the official client reports any init failure the same way
        error_type = exc.error_type if isinstance(exc, _InitError) else None
        api.call("POST", "/init/error", _error_body(exc, error_type),
                 {"Lambda-Runtime-Function-Error-Type": error_type or "Runtime.Unknown"})  # fmt: skip
        sys.exit(1)
    while True:
        _, fields, event_bytes = api.call("GET", "/invocation/next")
        request_id = fields.get("lambda-runtime-aws-request-id", "")
        context = LambdaContext(request_id, int(fields.get("lambda-runtime-deadline-ms", "0")),
                                fields.get("lambda-runtime-invoked-function-arn", ""))  # fmt: skip
        try:
            result = handler(json.loads(event_bytes or b"null"), context)
            body = json.dumps(result).encode()
        except Exception as exc:
            api.call("POST", f"/invocation/{request_id}/error", _error_body(exc),
                     {"Lambda-Runtime-Function-Error-Type": "Unhandled"})  # fmt: skip
            continue
        api.call("POST", f"/invocation/{request_id}/response", body)


def watch_parent(on_death: Callable[[], object] = lambda: os._exit(0),
                 poll_s: float = PARENT_POLL_S) -> None:  # fmt: skip
    """Call ``on_death`` (default: end this process) when the parent dies; the process is
    then re-parented, so ``getppid`` changes. A daemon thread polls every ``poll_s``."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        on_death()

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main(argv: list[str] | None = None) -> None:
    """``[--client python|awslambdaric] [--watch-parent] module.function`` (parsed by hand:
    argparse would add its import to every cold start)."""
    args = list(sys.argv[1:] if argv is None else argv)
    client, watch = "python", False
    while args and args[0].startswith("--"):
        option = args.pop(0)
        if option == "--watch-parent":
            watch = True
        elif option == "--client" and args and args[0] in ("python", "awslambdaric"):
            client = args.pop(0)
        else:
            sys.exit(f"runtime_client: unknown option {option!r}")
    if len(args) != 1:
        sys.exit("usage: runtime_client.py [--client python|awslambdaric] [--watch-parent] "
                 "module.function")  # fmt: skip
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if watch:
        watch_parent()
    if client == "awslambdaric":
        from awslambdaric.__main__ import main as official

        official(["awslambdaric", args[0]])
    else:
        serve(args[0])


if __name__ == "__main__":
    sys.path[0] = os.getcwd()  # the task root, as with -m: not this file's folder
    main()
