"""The emulator's HTTP server, driven over raw sockets: framing, order, limits, failures."""

from __future__ import annotations

import asyncio

from labkit.emulator.httpserver import HttpServer, Request, Response, json_response


async def _exchange(handler, raw: bytes, *, body_limit: int = 1024, reads: int = 1) -> bytes:
    """Send ``raw`` on one connection; return everything the server answers (until it
    closes, or ``reads`` complete answers have arrived)."""
    server = HttpServer(handler, body_limit=body_limit)
    host, port = await server.start()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(raw)
        await writer.drain()
        received = b""
        while received.count(b"HTTP/1.1 ") < reads or not _complete(received, reads):
            chunk = await asyncio.wait_for(reader.read(65536), 5)
            if not chunk:
                break
            received += chunk
        writer.close()
        return received
    finally:
        await server.close()


def _complete(data: bytes, reads: int) -> bool:
    """Whether ``data`` holds ``reads`` whole answers (headers and Content-Length bytes)."""
    for _ in range(reads):
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            return False
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n")
             if line.lower().startswith(b"content-length:")),
            0,  # a 204 announces no body
        )  # fmt: skip
        if len(rest) < length:
            return False
        data = rest[length:]
    return True


def _echo(request: Request) -> Response:
    return json_response({
        "method": request.method, "path": request.path, "query": request.query,
        "body": request.body.decode(), "size": request.size,
        "header": request.headers.get("X-Amz-Log-Type"),
    })  # fmt: skip


def test_request_parts_reach_the_handler_and_the_answer_is_framed() -> None:
    raw = (b"POST /a/b%3Ac?Qualifier=%24LATEST HTTP/1.1\r\nHost: x\r\nx-amz-log-type: Tail\r\n"
           b"Content-Length: 5\r\n\r\nhello")  # fmt: skip
    answer = asyncio.run(_exchange(_echo, raw))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert (
        b"Content-Type: application/json" in head
        and f"Content-Length: {len(body)}".encode() in head
    )
    assert body == (b'{"method": "POST", "path": "/a/b%3Ac", "query": {"Qualifier": "$LATEST"}, '
                    b'"body": "hello", "size": 5, "header": "Tail"}')  # fmt: skip


def test_body_past_the_limit_is_counted_not_kept() -> None:
    raw = b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n" + b"a" * 20
    answer = asyncio.run(_exchange(_echo, raw, body_limit=8))
    assert b'"body": "aaaaaaaa", "size": 20' in answer


def test_pipelined_requests_are_answered_in_order_even_when_the_first_is_slow() -> None:
    async def handler(request: Request):
        if request.path == "/slow":
            await asyncio.sleep(0.05)
        return Response(200, request.path.encode(), {"Content-Type": "text/plain"})

    def route(request: Request):
        return handler(request)

    raw = b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = asyncio.run(_exchange(route, raw, reads=2))
    assert answer.index(b"/slow") < answer.index(b"/fast")


def test_malformed_http_gets_400_and_the_connection_closes() -> None:
    answer = asyncio.run(_exchange(_echo, b"NOT HTTP AT ALL\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 400 Bad Request") and b"Connection: close" in answer


def test_a_failing_handler_answers_500_and_the_server_keeps_serving() -> None:
    def route(request: Request) -> Response:
        if request.path == "/boom":
            raise RuntimeError("bug")
        return Response(204)

    raw = b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\nGET /ok HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = asyncio.run(_exchange(route, raw, reads=2))
    assert answer.startswith(b"HTTP/1.1 500 Internal Server Error")
    assert b"HTTP/1.1 204 No Content" in answer


def test_connection_close_is_honoured() -> None:
    raw = b"GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    answer = asyncio.run(_exchange(_echo, raw, reads=5))  # reads until the server closes
    assert answer.count(b"HTTP/1.1 200") == 1 and b"Connection: close" in answer


def test_expect_100_continue_is_answered_before_the_body() -> None:
    async def scenario() -> tuple[bytes, bytes]:
        server = HttpServer(_echo, body_limit=1024)
        host, port = await server.start()
        try:
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(b"POST /x HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                         b"Content-Length: 3\r\n\r\n")  # fmt: skip
            interim = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            writer.write(b"abc")
            final = await asyncio.wait_for(reader.readuntil(b'"header": null}'), 2)
            writer.close()
            return interim, final
        finally:
            await server.close()

    interim, final = asyncio.run(scenario())
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 OK") and b'"body": "abc"' in final
