"""The local Lambda under hostile clients and handlers: a client that hangs up, a huge log
line, oversized headers, idle and stalled connections, deep JSON, foreign ARNs, a process
that is not the instance polling its Runtime API, handlers whose children hog memory or
escape the instance's process group, a too-large response."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from botocore.exceptions import ClientError

from labkit.emulator import EmulatorError, FunctionConfig, LocalLambda
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
HANDLERS = Path(__file__).resolve().parents[1] / "handlers"


def fn(name: str, handler: str, **kwargs) -> FunctionConfig:
    module = "" if "." in handler else "fault_handlers."
    return FunctionConfig(name=name, code_dir=HANDLERS, handler=module + handler, **kwargs)


@pytest.fixture(scope="module")
def lam():
    functions = [
        fn("slow", "sleep"),
        fn("slow-init", "slow_init.handler"),
        fn("echo", "echo"),
        fn("chatty", "long_line"),
        fn("spawner", "spawn_hog", memory_mb=256),
        fn("escaper", "escape", timeout_s=1.0),
        fn("maybe-big", "maybe_big"),
    ]
    with LocalLambda(functions) as running:
        yield running


@pytest.fixture(scope="module")
def client(lam: LocalLambda):
    return lam.client(max_pool_connections=20)


def raw_request(lam: LocalLambda, data: bytes, *, hang_up_after_s: float | None = None) -> bytes:
    """Send raw bytes to the service; hang up after ``hang_up_after_s`` or read the answer."""
    host, port = lam.endpoint_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(data)
        if hang_up_after_s is not None:
            time.sleep(hang_up_after_s)
            return b""
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def invoke_request(function: str, payload: dict, *, extra_headers: str = "") -> bytes:
    body = json.dumps(payload).encode()
    return (
        f"POST /2015-03-31/functions/{function}/invocations HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra_headers}\r\n"
    ).encode() + body


def test_a_client_that_hangs_up_leaves_its_instance_busy_until_the_invocation_ends(
    lam: LocalLambda, client
) -> None:
    """Lambda runs a synchronous invocation to its end whatever its caller does; the next
    callers get another instance or wait for this one, never a 500."""
    raw_request(lam, invoke_request("slow", {"seconds": 0.6}), hang_up_after_s=0.1)
    with ThreadPoolExecutor(4) as pool:
        calls = [pool.submit(client.invoke, FunctionName="slow", Payload='{"seconds": 0.05}')
                 for _ in range(4)]  # fmt: skip
        answers = [c.result() for c in calls]
    assert all(a["StatusCode"] == 200 and "FunctionError" not in a for a in answers)
    wait_for(lambda: all(i["state"] == "idle" for i in lam.instances("slow")["instances"]),
             what="the hung-up invocation to end")  # fmt: skip
    reports = [line for line in lam.logs("slow") if line.startswith("REPORT")]
    assert len(reports) == 5  # the hung-up invocation ran to its end too


def test_a_hang_up_during_init_keeps_the_init_duration(lam: LocalLambda, client) -> None:
    raw_request(lam, invoke_request("slow-init", {"instances": []}), hang_up_after_s=0.2)
    wait_for(lambda: any("Init Duration" in line for line in lam.logs("slow-init")),
             what="the hung-up cold start to report")  # fmt: skip
    answer = client.invoke(FunctionName="slow-init", Payload="{}", LogType="Tail")
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    described = lam.instances("slow-init")
    assert described["cold_starts"] == 1
    assert described["instances"][0]["init_duration_ms"] >= 900  # the init of ~1 s, kept


def test_a_40_mb_log_line_does_not_stall_the_service(lam: LocalLambda, client) -> None:
    service = psutil.Process(lam.pid)
    before = service.memory_info().rss
    chatty = threading.Thread(
        target=client.invoke, kwargs={"FunctionName": "chatty", "Payload": '{"mb": 40}'}
    )
    chatty.start()
    slowest = 0.0
    while chatty.is_alive():  # other functions are served while the line is read
        start = time.perf_counter()
        client.invoke(FunctionName="echo", Payload="{}")
        slowest = max(slowest, time.perf_counter() - start)
    chatty.join()
    assert slowest < 2.0, f"an echo took {slowest:.2f} s while a 40 MB line was logged"
    for _ in range(5):
        client.invoke(FunctionName="chatty", Payload='{"mb": 5}')
    lines = lam.logs("chatty")
    longest = max(len(line) for line in lines)
    assert longest <= 1024 * 1024 + 100  # cut at CloudWatch's event size, with a marker
    assert any(line.endswith("[truncated]") for line in lines)
    grown_mb = (service.memory_info().rss - before) / 1e6
    assert grown_mb < 80, f"the service grew {grown_mb:.0f} MB for 65 MB of log lines"


def test_oversized_headers_get_431(lam: LocalLambda) -> None:
    answer = raw_request(
        lam, invoke_request("echo", {}, extra_headers=f"X-Big: {'a' * 70_000}\r\n")
    )
    assert answer.startswith(b"HTTP/1.1 431")


def test_deeply_nested_json_is_a_bad_request(lam: LocalLambda, client) -> None:
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName="echo", Payload="[" * 100_000 + "]" * 100_000)
    assert caught.value.response["Error"]["Code"] == "InvalidRequestContentException"


@pytest.mark.parametrize(
    "arn",
    ["arn:aws:lambda:eu-west-1:000000000000:function:echo",
     "arn:aws:lambda:us-east-1:123456789012:function:echo"],
)  # fmt: skip
def test_an_arn_of_another_region_or_account_is_not_served(client, arn: str) -> None:
    with pytest.raises(ClientError) as caught:
        client.invoke(FunctionName=arn, Payload="{}")
    assert caught.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert client.invoke(FunctionName=arn.replace("eu-west-1", "us-east-1").replace(
        "123456789012", "000000000000"), Payload="{}")["StatusCode"] == 200  # fmt: skip


def test_only_the_instance_reaches_its_runtime_api(lam: LocalLambda, client) -> None:
    """Another process on the machine can neither take the instance's events nor answer
    them: its connections to the Runtime API are refused."""
    client.invoke(FunctionName="echo", Payload="{}")
    pid = lam.instances("echo")["instances"][0]["pid"]
    runtime_api = psutil.Process(pid).environ()["AWS_LAMBDA_RUNTIME_API"]
    url = f"http://{runtime_api}/2018-06-01/runtime/invocation/next"
    stolen: list[object] = []

    def steal() -> None:
        try:
            with urllib.request.urlopen(url, timeout=5) as answer:
                stolen.append(answer.read())
        except OSError as exc:
            stolen.append(exc)

    thief = threading.Thread(target=steal)
    thief.start()
    time.sleep(0.3)
    answers = [json.loads(client.invoke(FunctionName="echo", Payload=json.dumps({"n": n}))
                          ["Payload"].read()) for n in range(3)]  # fmt: skip
    thief.join()
    assert [a.get("event", {}).get("n") for a in answers] == [0, 1, 2], answers
    assert len(stolen) == 1 and isinstance(stolen[0], OSError), stolen


def test_memory_counts_the_instances_child_processes(lam: LocalLambda, client) -> None:
    answer = client.invoke(FunctionName="spawner", Payload='{"mb": 800}')
    body = json.loads(answer["Payload"].read())
    assert answer.get("FunctionError") and body["errorType"] == "Runtime.OutOfMemory"


def test_a_timeout_kills_children_that_left_the_process_group(
    lam: LocalLambda, client, tmp_path: Path
) -> None:
    pidfile = tmp_path / "child.pid"
    answer = client.invoke(FunctionName="escaper", Payload=json.dumps({"pidfile": str(pidfile)}))
    assert json.loads(answer["Payload"].read())["errorType"] == "Sandbox.Timedout"
    child = int(pidfile.read_text())
    wait_for(lambda: not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie",
             timeout_s=10, what="the escaped child to be killed")  # fmt: skip


def test_a_too_large_response_leaves_the_instance_usable(client) -> None:
    big = client.invoke(FunctionName="maybe-big", Payload='{"big": true}')
    assert json.loads(big["Payload"].read())["errorType"] == "Function.ResponseSizeTooLarge"
    small = client.invoke(FunctionName="maybe-big", Payload="{}")
    assert "FunctionError" not in small and json.loads(small["Payload"].read())["ok"]


def test_idle_and_stalled_connections_are_closed() -> None:
    import asyncio

    from labkit.emulator.httpserver import HttpServer, Response

    async def scenario() -> tuple[bytes, bytes]:
        server = HttpServer(lambda request: Response(200, b"{}"), body_limit=1024,
                            idle_timeout_s=0.3)  # fmt: skip
        host, port = await server.start()
        results = []
        for opening in (b"", b"GET / HTTP/1.1\r\nHost: x\r\n"):  # idle; headers never end
            reader, writer = await asyncio.open_connection(host, port)
            writer.write(opening)
            results.append(await asyncio.wait_for(reader.read(), timeout=10))
            writer.close()
        await server.close()
        return results[0], results[1]

    idle, stalled = asyncio.run(scenario())
    assert idle == b"" and stalled.startswith(b"HTTP/1.1 408")


def test_the_command_line_checks_port_and_warns_about_public_hosts(tmp_path: Path) -> None:
    base = [sys.executable, "-m", "labkit.emulator", "--function", f"echo={HANDLERS}",
            "--handler", "fault_handlers.echo"]  # fmt: skip
    bad = subprocess.run([*base, "--port", "99999"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "port" in bad.stderr and "0-65535" in bad.stderr
    public = subprocess.Popen([*base, "--host", "0.0.0.0", "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert public.stdout is not None and "endpoint_url" in public.stdout.readline()
    finally:
        public.terminate()
        _, err = public.communicate(timeout=30)
    assert "reachable from other machines" in err
    assert os.environ.get("AWS_LAMBDA_RUNTIME_API") is None


def test_a_port_in_use_is_reported_with_the_reason_at_once() -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    start = time.monotonic()
    with taken, pytest.raises(EmulatorError, match=r"did not start \(exit code 1\): .*in use"):
        LocalLambda(fn("echo", "echo"), port=port, startup_timeout_s=120).start()
    assert time.monotonic() - start < 60  # it did not wait out the 120 s


def test_an_interrupted_start_leaves_no_service_behind(monkeypatch) -> None:
    """A Ctrl-C while the local Lambda starts (in a notebook's kernel, which lives on) stops it."""
    import labkit.emulator.readiness as readiness

    before = {p.pid for p in psutil.Process().children()}  # the module's own local Lambda
    started: list[int] = []
    wait = readiness.threading.Thread.join

    def interrupted(thread, timeout=None) -> None:  # the Ctrl-C arrives during the wait
        started.extend(p.pid for p in psutil.Process().children() if p.pid not in before)
        wait(thread, 0.01)
        raise KeyboardInterrupt

    monkeypatch.setattr(readiness.threading.Thread, "join", interrupted)
    with pytest.raises(KeyboardInterrupt):
        LocalLambda(fn("echo", "echo")).start()
    monkeypatch.undo()
    assert started
    for pid in started:
        wait_for(lambda pid=pid: not psutil.pid_exists(pid) or psutil.Process(pid).status()
                 == psutil.STATUS_ZOMBIE, what="the interrupted service to stop")  # fmt: skip
