"""The emulator's HTTP/1.1 server: httptools parsing on a bare asyncio protocol.

Why not a web framework: every warm invocation crosses HTTP three times inside the emulator
(the caller's Invoke request, the instance's ``/next`` answer, its ``/response``), all on the
critical path of the round trip, and a framework's per-request work was about half of a
warm no-op's cost (the comparison is in bench/README.md, "emulator"). Parsing stays in a
library (``httptools``, the parser uvicorn uses); this module only frames requests and
responses.

A handler gets a :class:`Request` and returns a :class:`Response`, or an awaitable of one
(a coroutine for work such as an invocation, a future for a long poll such as ``/next``).
Requests on one connection are answered in order. When a client hangs up, a long poll is
cancelled, but work runs to its end (an invocation does on Lambda) and its answer is dropped.

Hostile clients are bounded: request headers over :data:`MAX_HEADER_BYTES` get 431, a
connection idle (or stalled inside a request) for ``idle_timeout_s`` is closed (408 when a
request was under way), and a server may ``admit`` only some peers.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import http
import json
import socket
import sys
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httptools

#: The request line and headers of one request, at most (Lambda's own limit is not
#: published; API Gateway and most servers allow 8-16 KB, boto3 sends under 2 KB).
MAX_HEADER_BYTES = 32 * 1024
IDLE_TIMEOUT_S = 300.0


class _HeadersTooLarge(Exception):
    """Raised from a parser callback to stop reading a request whose headers are too big."""


@dataclass
class Request:
    method: str
    path: str  # without the query string, still percent-encoded
    query: dict[str, str]
    headers: Mapping[str, str]  # names in Title-Case
    body: bytes  # at most the server's body_limit bytes
    size: int  # the full body size, also when the body was cut at body_limit


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, json.dumps(data).encode(), dict(headers or {}))


Answer = Response | Awaitable[Response]
Handler = Callable[[Request], Answer]


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses requests and writes answers in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.transport: Any = None  # uvloop's transports are not asyncio.Transport subclasses
        self.parser = httptools.HttpRequestParser(self)
        self.queue: collections.deque[tuple[Request, bool]] = collections.deque()
        self.waiting: asyncio.Future[Response] | None = None
        self.waiting_is_work = False  # whether ``waiting`` is a coroutine's task (not a poll)
        self.held: list[bytes] | None = None  # what arrived before admission was decided
        self.in_request = False  # between the first byte of a request and its end
        self.last_activity = 0.0  # loop time of the last bytes in or out
        self._idle_timer: asyncio.TimerHandle | None = None
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.header_bytes = 0
        self.body: list[bytes] = []
        self.size = self.kept = 0

    # ----- asyncio.Protocol -----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        if self.server.admit is not None:  # asked in a thread; what arrives meanwhile is held
            self.held = []  # (uvloop starts reading after connection_made, paused or not)
            peer = transport.get_extra_info("peername")
            asking = asyncio.get_running_loop().run_in_executor(None, self.server.admit, peer)
            asking.add_done_callback(self._admitted)
        sock = transport.get_extra_info("socket")
        if sock is not None:  # without it, each answer waits ~40 ms for a delayed ACK
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections.add(self)
        self.last_activity = asyncio.get_running_loop().time()
        self._check_idle()

    def _admitted(self, answer: asyncio.Future[bool]) -> None:
        if self.transport is None:
            return
        held, self.held = self.held, None
        if answer.cancelled() or answer.exception() is not None or not answer.result():
            self.transport.close()  # not a peer this server serves: nothing it sent is read
            return
        for data in held or ():
            self.data_received(data)

    def data_received(self, data: bytes) -> None:
        self.last_activity = asyncio.get_running_loop().time()
        if self.held is not None:
            self.held.append(data)
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._write(Response(400, b"upgrades are not supported"), keep_alive=False)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _HeadersTooLarge):
                message = f"request headers over {MAX_HEADER_BYTES} bytes"
                self._write(Response(431, message.encode()), keep_alive=False)
            else:
                self._write(Response(400, f"malformed HTTP: {exc}".encode()), keep_alive=False)
        except httptools.HttpParserError as exc:
            self._write(Response(400, f"malformed HTTP: {exc}".encode()), keep_alive=False)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections.discard(self)
        self.transport = None
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self.waiting is not None and not self.waiting.done() and not self.waiting_is_work:
            self.waiting.cancel()  # e.g. a runtime's /next whose process died

    def _check_idle(self) -> None:
        """Close the connection once nothing came or went for ``idle_timeout_s``, unless an
        answer is being worked on (an invocation, a long poll); a request stalled half-way
        gets 408 first. One timer per connection, re-armed only when it fires, so traffic
        costs nothing but a timestamp."""
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        quiet_s = loop.time() - self.last_activity
        if quiet_s < self.server.idle_timeout_s or self.waiting is not None or self.queue:
            wait_s = self.server.idle_timeout_s - quiet_s
            self._idle_timer = loop.call_later(
                wait_s if wait_s > 0 else self.server.idle_timeout_s, self._check_idle
            )
            return
        if self.in_request:
            self._write(Response(408, b"request not completed in time"), keep_alive=False)
        else:
            self.transport.close()

    # ----- httptools callbacks --------------------------------------------------------

    def on_message_begin(self) -> None:
        self._reset()
        self.in_request = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        self._count_header_bytes(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_header_bytes(len(name) + len(value))
        self.headers[name.decode("latin-1").title()] = value.decode("latin-1")

    def _count_header_bytes(self, n: int) -> None:
        self.header_bytes += n
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _HeadersTooLarge

    def on_headers_complete(self) -> None:
        # curl (inside awslambdaric) asks before posting a large body, and waits a second for
        # this answer if it does not come.
        if self.headers.get("Expect", "").lower() == "100-continue" and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        self.size += len(body)
        room = self.server.body_limit - self.kept
        if room > 0:  # a body past the limit is counted, not kept
            self.body.append(body[:room])
            self.kept += min(room, len(body))

    def on_message_complete(self) -> None:
        self.in_request = False
        path, _, query = self.url.decode("latin-1").partition("?")
        request = Request(
            method=self.parser.get_method().decode("latin-1"),
            path=path,
            query=dict(urllib.parse.parse_qsl(query)) if query else {},
            headers=self.headers,
            body=b"".join(self.body),
            size=self.size,
        )
        self.queue.append((request, self.parser.should_keep_alive()))
        if self.waiting is None:
            self._serve_next()

    # ----- answering ------------------------------------------------------------------

    def _serve_next(self) -> None:
        while self.queue and self.waiting is None and self.transport is not None:
            request, keep_alive = self.queue.popleft()
            try:
                answer = self.server.handler(request)
            except Exception:  # a handler bug answers 500; the server lives on
                answer = _internal_error()
            if isinstance(answer, Response):
                self._write(answer, keep_alive)
                continue
            future = asyncio.ensure_future(answer)
            self.waiting, self.waiting_is_work = future, asyncio.iscoroutine(answer)
            future.add_done_callback(functools.partial(self._answered, keep_alive=keep_alive))

    def _answered(self, future: asyncio.Future[Response], *, keep_alive: bool) -> None:
        self.waiting = None
        if future.cancelled():
            return
        error = future.exception()
        self._write(_internal_error(error) if error else future.result(), keep_alive)
        self._serve_next()

    def _write(self, response: Response, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        lines = [f"HTTP/1.1 {response.status} {http.HTTPStatus(response.status).phrase}"]
        if "Content-Type" not in response.headers:
            lines.append("Content-Type: application/json")
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        if response.status != 204:  # a 204 carries no body and must not announce one
            lines.append(f"Content-Length: {len(response.body)}")
        if not keep_alive:
            lines.append("Connection: close")
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        self.last_activity = asyncio.get_running_loop().time()
        if not keep_alive:
            self.transport.close()

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def _internal_error(error: BaseException | None = None) -> Response:
    if error is None:
        traceback.print_exc(file=sys.stderr)
    else:
        traceback.print_exception(error, file=sys.stderr)
    return json_response({"message": "internal error in the labkit emulator"}, status=500)


class HttpServer:
    """A listening socket whose requests go to ``handler``.

    ``admit``, when given, is asked (in a worker thread, so a slow answer holds up no other
    connection) about each new connection's peer address, and the connection is closed
    unread when it answers False; ``idle_timeout_s`` bounds how long a
    connection may sit without a request, or inside one, before it is closed."""

    def __init__(self, handler: Handler, *, body_limit: int, idle_timeout_s: float = IDLE_TIMEOUT_S,
                 admit: Callable[[Any], bool] | None = None) -> None:  # fmt: skip
        self.handler = handler
        self.body_limit = body_limit
        self.idle_timeout_s = idle_timeout_s
        self.admit = admit
        self.connections: set[_Connection] = set()
        self.server: asyncio.Server | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen; returns the bound (host, port)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port)
        bound = self.server.sockets[0].getsockname()
        return bound[0], bound[1]

    async def close(self) -> None:
        if self.server is None:
            return
        self.server.close()
        for connection in list(self.connections):
            connection.close()
        await self.server.wait_closed()
        self.server = None
