"""The embedded local Lambda through real clients: boto3, the AWS CLI, the runtime client."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import pytest
from botocore.exceptions import ClientError

from labkit.aws.image import build_bundle
from labkit.data import make_event, synthetic_mnist
from labkit.emulator import FunctionConfig, LocalLambda
from tests.conftest import wait_for

pytestmark = pytest.mark.slow
HANDLERS = Path(__file__).resolve().parents[1] / "handlers"


def fn(name: str, handler: str, **kwargs) -> FunctionConfig:
    return FunctionConfig(
        name=name, code_dir=HANDLERS, handler=f"fault_handlers.{handler}", **kwargs
    )


def tail(response: dict) -> str:
    return base64.b64decode(response["LogResult"]).decode()


def payload(response: dict) -> dict:
    return json.loads(response["Payload"].read())


@pytest.fixture(scope="module")
def lam(tmp_path_factory: pytest.TempPathFactory):
    # Set in the emulator's own environment: it must never reach an instance.
    os.environ["AWS_LAMBDA_MAX_CONCURRENCY"] = "4"
    functions = [
        fn("echo", "echo"),
        fn("boom", "boom"),
        fn("die", "die"),
        fn("slow", "sleep", timeout_s=1.0),
        fn("hog", "hog", memory_mb=256),
        fn("big", "big_response"),
        fn("limited", "sleep", concurrency=3),
        fn("short-lived", "noop", keep_alive_s=0.3),
        fn("warm", "noop", provisioned=1),
        FunctionConfig(
            name="broken-init", code_dir=HANDLERS, handler="init_fails.handler", timeout_s=20
        ),
        FunctionConfig(name="custom", code_dir=HANDLERS / "custom_runtime"),
    ]
    try:
        with LocalLambda(functions) as running:
            yield running
    finally:
        os.environ.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)


@pytest.fixture(scope="module")
def client(lam: LocalLambda):
    return lam.client(max_pool_connections=20)


def test_invoke_round_trip_with_log_tail(lam: LocalLambda, client) -> None:
    first = client.invoke(FunctionName="echo", Payload=json.dumps({"n": 1}), LogType="Tail")
    second = client.invoke(FunctionName="echo", Payload=json.dumps({"n": 2}), LogType="Tail")
    assert first["StatusCode"] == 200 and first["ExecutedVersion"] == "$LATEST"
    assert "FunctionError" not in first
    body = payload(second)
    assert body["event"] == {"n": 2} and body["function"] == "echo" and body["memory"] == "1024"
    assert 0 < body["remaining_ms"] <= 60_000
    assert body["max_concurrency_env"] is None  # never leaked to the instance
    cold, warm = tail(first), tail(second)
    assert "Init Duration:" in cold and "Init Duration:" not in warm
    lines = warm.strip().splitlines()
    assert lines[0] == f"START RequestId: {body['request_id']} Version: $LATEST"
    assert lines[1] == "echo 2"
    assert lines[2] == f"END RequestId: {body['request_id']}"
    assert lines[3].startswith(f"REPORT RequestId: {body['request_id']}\tDuration: ")
    assert "\tBilled Duration: " in lines[3] and "\tMemory Size: 1024 MB\t" in lines[3]
    assert "Max Memory Used: " in lines[3]
    assert any(line == "echo 2" for line in lam.logs("echo"))


def test_function_arn_is_accepted(client) -> None:
    arn = "arn:aws:lambda:us-east-1:000000000000:function:echo"
    assert client.invoke(FunctionName=arn, Payload=b"{}")["StatusCode"] == 200


def test_aws_error_shapes(client) -> None:
    with pytest.raises(client.exceptions.ResourceNotFoundException):
        client.invoke(FunctionName="no-such-function", Payload=b"{}")
    with pytest.raises(client.exceptions.InvalidRequestContentException):
        client.invoke(FunctionName="echo", Payload=b"{not json")
    with pytest.raises(client.exceptions.RequestTooLargeException):
        client.invoke(FunctionName="echo", Payload=b'"' + b"x" * (6 * 1024 * 1024 + 10) + b'"')


def test_dry_run_and_event_invocations(lam: LocalLambda, client) -> None:
    assert client.invoke(FunctionName="echo", InvocationType="DryRun")["StatusCode"] == 204
    accepted = client.invoke(
        FunctionName="echo", InvocationType="Event", Payload=json.dumps({"n": 77})
    )
    assert accepted["StatusCode"] == 202
    wait_for(lambda: "echo 77" in lam.logs("echo"), what="the Event invocation to run")


def test_list_and_get_function(client) -> None:
    names = {f["FunctionName"] for f in client.list_functions()["Functions"]}
    assert {"echo", "custom", "limited"} <= names
    config = client.get_function(FunctionName="slow")["Configuration"]
    assert config["Timeout"] == 1 and config["MemorySize"] == 1024 and config["State"] == "Active"


def test_handler_exception_is_an_unhandled_function_error(client) -> None:
    response = client.invoke(FunctionName="boom", Payload=b"{}", LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    body = payload(response)
    assert body["errorType"] == "ValueError" and "boom" in body["errorMessage"]


def test_process_death_is_an_exit_error_and_the_next_call_is_cold(lam: LocalLambda, client) -> None:
    first = client.invoke(FunctionName="die", Payload=b"{}", LogType="Tail")
    assert first["FunctionError"] == "Unhandled"
    assert payload(first)["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in tail(first)
    second = client.invoke(FunctionName="die", Payload=b"{}", LogType="Tail")
    assert "Init Duration:" in tail(second)


def test_timeout_kills_and_replaces_the_instance(lam: LocalLambda, client) -> None:
    ok = payload(client.invoke(FunctionName="slow", Payload=json.dumps({"seconds": 0.05})))
    old_pid = ok["pid"]
    start = time.monotonic()
    timed_out = client.invoke(
        FunctionName="slow", Payload=json.dumps({"seconds": 30}), LogType="Tail"
    )
    assert time.monotonic() - start < 15  # at its 1 s timeout, not after the 30 s it asked
    assert timed_out["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in payload(timed_out)["errorMessage"]
    assert "Status: timeout" in tail(timed_out)
    wait_for(lambda: not psutil.pid_exists(old_pid), what="the timed-out process to die")
    again = client.invoke(
        FunctionName="slow", Payload=json.dumps({"seconds": 0.01}), LogType="Tail"
    )
    assert "Init Duration:" in tail(again) and payload(again)["pid"] != old_pid


def test_the_call_right_after_a_timeout_gets_a_fresh_instance(client) -> None:
    """A killed instance must never go back to the idle pool, even before its exit is reaped."""
    for _ in range(3):
        timed_out = client.invoke(FunctionName="slow", Payload=json.dumps({"seconds": 5}))
        assert "Task timed out" in payload(timed_out)["errorMessage"]
        again = client.invoke(
            FunctionName="slow", Payload=json.dumps({"seconds": 0}), LogType="Tail"
        )
        assert "FunctionError" not in again, payload(again)
        assert "Init Duration:" in tail(again)


def test_exceeding_memory_is_out_of_memory(client) -> None:
    response = client.invoke(FunctionName="hog", Payload=json.dumps({"mb": 400}), LogType="Tail")
    assert response["FunctionError"] == "Unhandled"
    assert payload(response)["errorType"] == "Runtime.OutOfMemory"
    assert "Error Type: Runtime.OutOfMemory" in tail(response)
    fine = client.invoke(FunctionName="hog", Payload=json.dumps({"mb": 10}), LogType="Tail")
    assert payload(fine) == {"held_mb": 10} and "Init Duration:" in tail(fine)


def test_init_failure_is_an_error_on_every_call_never_a_hang(client) -> None:
    for _ in range(2):
        start = time.monotonic()
        response = client.invoke(FunctionName="broken-init", Payload=b"{}", LogType="Tail")
        assert time.monotonic() - start < 15
        assert response["FunctionError"] == "Unhandled"
        body = payload(response)
        assert "init failed" in body["errorMessage"]
        assert "Init Duration:" in tail(response) and "Status: error" in tail(response)


def test_response_too_large(client) -> None:
    response = client.invoke(FunctionName="big", Payload=b"{}")
    assert payload(response)["errorType"] == "Function.ResponseSizeTooLarge"


def test_parallel_callers_get_their_own_instances_and_one_more_is_throttled(lam, client) -> None:
    def call(_: int):
        try:
            return payload(
                client.invoke(FunctionName="limited", Payload=json.dumps({"seconds": 1.0}))
            )
        except ClientError as exc:
            return exc.response

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(call, range(3)))
    assert len({r["pid"] for r in results}) == 3
    lam.wait_until_idle("limited")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(4)))
    throttled = [r for r in results if "Error" in r]
    assert len(throttled) == 1
    assert throttled[0]["Error"]["Code"] == "TooManyRequestsException"
    assert throttled[0]["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    assert lam.instances("limited")["throttles"] == 1
    assert len({r["pid"] for r in results if "pid" in r}) == 3  # warm instances reused


def test_keep_alive_expiry_gives_a_cold_start(lam: LocalLambda, client) -> None:
    first = client.invoke(FunctionName="short-lived", Payload=b"{}", LogType="Tail")
    assert "Init Duration:" in tail(first)
    wait_for(lambda: lam.instances("short-lived")["instances"] == [], what="keep-alive expiry")
    again = client.invoke(FunctionName="short-lived", Payload=b"{}", LogType="Tail")
    assert "Init Duration:" in tail(again)
    assert lam.instances("short-lived")["cold_starts"] == 2


def test_provisioned_instances_are_never_cold(lam: LocalLambda, client) -> None:
    described = lam.instances("warm")
    assert [i["provisioned"] for i in described["instances"]] == [True]
    response = client.invoke(FunctionName="warm", Payload=b"{}", LogType="Tail")
    assert "Init Duration:" not in tail(response)
    assert lam.instances("warm")["cold_starts"] == 0


def test_custom_runtime_bootstrap(client) -> None:
    body = payload(client.invoke(FunctionName="custom", Payload=json.dumps({"x": 1})))
    assert body == {
        "runtime": "custom",
        "echo": {"x": 1},
        "handler": "labkit_function.handler.handler",
    }


def test_clean_shutdown_leaves_no_process(tmp_path: Path) -> None:
    running = LocalLambda([fn("a", "noop"), fn("b", "sleep")]).start()
    client = running.client()
    pids = [payload(client.invoke(FunctionName="b", Payload=json.dumps({"seconds": 0})))["pid"]]
    client.invoke(FunctionName="a", Payload=b"{}")
    pids += [i["pid"] for i in running.instances("a")["instances"]]
    emulator = running.pid
    running.close()
    assert not psutil.pid_exists(emulator)
    wait_for(lambda: not any(psutil.pid_exists(p) for p in pids), what="instances to exit")


def test_killed_emulator_takes_its_instances_with_it() -> None:
    running = LocalLambda(fn("a", "sleep")).start()
    client = running.client()
    pid = payload(client.invoke(FunctionName="a", Payload=json.dumps({"seconds": 0})))["pid"]
    os.kill(running.pid, signal.SIGKILL)
    wait_for(lambda: not psutil.pid_exists(pid), what="the orphaned instance to die")
    running.close()


@pytest.fixture(scope="module")
def mnist_lam(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    bundle = build_bundle(trained_model_dir, tmp_path_factory.mktemp("b") / "bundle")
    with LocalLambda(FunctionConfig(name="mnist", code_dir=bundle.path)) as running:
        yield running


def test_mnist_function_through_boto3(mnist_lam: LocalLambda) -> None:
    client = mnist_lam.client()
    event = make_event(synthetic_mnist(5).images)
    response = client.invoke(FunctionName="mnist", Payload=json.dumps(event), LogType="Tail")
    body = payload(response)
    assert body["batch_size"] == 5 and len(body["predictions"]) == 5
    assert all(0 <= p["label"] <= 9 for p in body["predictions"])
    assert "Init Duration:" in tail(response)
    bad = client.invoke(FunctionName="mnist", Payload=json.dumps({"instances": []}))
    assert bad["FunctionError"] == "Unhandled" and payload(bad)["errorType"] == "InvalidEventError"


def test_mnist_function_through_the_aws_cli(mnist_lam: LocalLambda, tmp_path: Path) -> None:
    aws = Path(sys.executable).with_name("aws")
    if not aws.exists():
        pytest.skip("AWS CLI not installed")
    event = tmp_path / "event.json"
    event.write_text(json.dumps(make_event(synthetic_mnist(2).images)))
    out = tmp_path / "out.json"
    env = dict(
        os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1"
    )
    done = subprocess.run(
        [str(aws), "lambda", "invoke", "--endpoint-url", mnist_lam.endpoint_url,
         "--function-name", "mnist", "--payload", f"fileb://{event}", "--log-type", "Tail", str(out)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    meta = json.loads(done.stdout)
    assert meta["StatusCode"] == 200
    assert "REPORT RequestId:" in base64.b64decode(meta["LogResult"]).decode()
    assert len(json.loads(out.read_text())["predictions"]) == 2


def test_cli_serves_until_interrupted(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "labkit.cli", "emulator", "--function", f"e={HANDLERS}",
         "--handler", "fault_handlers.noop", "--port", "0"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        ready = json.loads(process.stdout.readline())
        import boto3

        client = boto3.client("lambda", endpoint_url=ready["endpoint_url"], region_name="us-east-1",
                              aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
        assert payload(client.invoke(FunctionName="e", Payload=b"{}")) == {"ok": True}
        children = [p.pid for p in psutil.Process(process.pid).children(recursive=True)]
        assert children
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
        wait_for(lambda: not any(psutil.pid_exists(p) for p in children), what="instances to exit")
    finally:
        process.kill()


def test_lambda_invoker_parses_reports_and_raises_on_throttling(lam: LocalLambda) -> None:
    from labkit.aws.invoke import LambdaInvoker, ThrottledError

    invoker = LambdaInvoker(endpoint_url=lam.endpoint_url, max_connections=8)
    result = invoker.invoke("echo", {"n": 5})
    assert result.function_error is None and result.response["event"] == {"n": 5}
    assert result.report is not None and result.report.memory_size_mb == 1024
    assert result.report.request_id == result.response["request_id"] == result.request_id
    assert result.round_trip_ms > 0 and result.as_row()["error_type"] is None
    failed = invoker.invoke("boom", {})
    assert failed.function_error == "Unhandled" and failed.error_type == "ValueError"
    lam.wait_until_idle("limited")

    def call(_: int):
        try:
            return invoker.invoke("limited", {"seconds": 1.0})
        except ThrottledError as exc:
            return exc

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(call, range(4)))
    throttled = [r for r in results if isinstance(r, ThrottledError)]
    assert len(throttled) == 1
    assert throttled[0].reason == "ReservedFunctionConcurrentInvocationLimitExceeded"
