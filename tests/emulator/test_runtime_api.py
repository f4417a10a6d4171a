"""The Runtime API of one instance, driven by the test acting as the runtime."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from labkit.emulator.config import FunctionConfig
from labkit.emulator.instance import Instance, Invocation

SILENT = Path(__file__).resolve().parents[1] / "handlers" / "silent_runtime"
NEXT = "/2018-06-01/runtime/invocation/next"


async def _scenario() -> dict[str, object]:
    config = FunctionConfig(name="rt", code_dir=SILENT)
    exited: list[Instance] = []
    instance = Instance(
        config,
        provisioned=False,
        on_log=lambda i, line: None,
        on_exit=exited.append,
        isolated=False,
    )  # the test is the runtime
    await instance.start()
    base = f"http://{instance.runtime_api}"
    seen: dict[str, object] = {}
    try:
        async with aiohttp.ClientSession() as http:
            poll = asyncio.create_task(http.get(base + NEXT))
            await asyncio.wait_for(instance.ready, 5)
            seen["init_ms"] = instance.init_duration_ms
            invocation = Invocation(b'{"hello": 1}', deadline_ms=123)
            invocation.outcome = asyncio.get_running_loop().create_future()
            instance.dispatch(invocation)
            response = await poll
            seen["next_status"] = response.status
            seen["headers"] = dict(response.headers)
            seen["body"] = await response.json(content_type=None)
            rid = response.headers["Lambda-Runtime-Aws-Request-Id"]
            again = await http.get(base + NEXT)  # out of order: the invocation has no result yet
            seen["next_again"] = again.status
            unknown = await http.post(
                f"{base}/2018-06-01/runtime/invocation/nope/response", data=b"{}"
            )
            seen["unknown"] = unknown.status
            error = await http.post(
                f"{base}/2018-06-01/runtime/invocation/{rid}/error",
                data=json.dumps({"errorType": "MyError", "errorMessage": "went wrong"}),
            )
            seen["error_status"] = error.status
            seen["outcome"] = await asyncio.wait_for(invocation.outcome, 5)
            twice = await http.post(
                f"{base}/2018-06-01/runtime/invocation/{rid}/response", data=b"{}"
            )
            seen["twice"] = twice.status
            init_late = await http.post(f"{base}/2018-06-01/runtime/init/error", data=b"{}")
            seen["init_late"] = init_late.status
    finally:
        await instance.close()
    return seen


def test_runtime_api_headers_status_codes_and_error_type_from_body() -> None:
    seen = asyncio.run(_scenario())
    assert seen["init_ms"] is not None and seen["init_ms"] > 0
    assert seen["next_status"] == 200
    headers = seen["headers"]
    assert headers["Lambda-Runtime-Deadline-Ms"] == "123"
    assert headers["Lambda-Runtime-Invoked-Function-Arn"].endswith(":function:rt")
    assert headers["Lambda-Runtime-Trace-Id"].startswith("Root=1-")
    assert headers["Content-Type"] == "application/json"
    assert seen["body"] == {"hello": 1}
    assert seen["next_again"] == 403
    assert seen["unknown"] == 400
    assert seen["error_status"] == 202
    outcome = seen["outcome"]
    assert outcome.error_type == "MyError"  # read from the body: no error-type header was sent
    assert json.loads(outcome.body)["errorMessage"] == "went wrong"
    assert seen["twice"] == 403
    assert seen["init_late"] == 403
