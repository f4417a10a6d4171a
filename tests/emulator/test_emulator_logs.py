from __future__ import annotations

import base64

import pytest

from labkit.emulator.config import FunctionConfig
from labkit.emulator.logs import LogStore, Report, log_tail


def test_report_line_warm_and_cold() -> None:
    warm = Report("rid", duration_ms=12.341, memory_size_mb=1024, max_memory_used_mb=180)
    assert warm.billed_duration_ms == 13
    assert warm.line() == (
        "REPORT RequestId: rid\tDuration: 12.34 ms\tBilled Duration: 13 ms\t"
        "Memory Size: 1024 MB\tMax Memory Used: 180 MB\t"
    )
    cold = Report("rid", 2.0, 1024, 200, init_duration_ms=4369.02)
    assert cold.billed_duration_ms == 4372  # container images bill their init
    assert "\tInit Duration: 4369.02 ms\t" in cold.line()
    failed = Report("rid", 1000.0, 128, 60, status="timeout", error_type="Sandbox.Timedout")
    assert failed.line().endswith("\tStatus: timeout\tError Type: Sandbox.Timedout\t")
    assert Report("rid", 0.0004, 128, 1).billed_duration_ms == 1


def test_log_tail_is_the_last_4_kb_base64() -> None:
    lines = [f"line {i:05d}" for i in range(1000)]
    decoded = base64.b64decode(log_tail(lines))
    assert len(decoded) == 4096 and decoded.endswith(b"line 00999\n")


def test_log_store_reads_from_a_position() -> None:
    store = LogStore(max_lines=3)
    for i in range(5):
        store.append(f"l{i}")
    rows, position = store.since(0)
    assert [r["line"] for r in rows] == ["l2", "l3", "l4"] and position == 5
    assert store.since(4)[0][0]["line"] == "l4" and store.since(5)[0] == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name!"}, "function name"),
        ({"memory_mb": 64}, "memory_mb"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"concurrency": 0}, "concurrency"),
        ({"provisioned": 11}, "provisioned"),
        ({"keep_alive_s": 0}, "keep_alive_s"),
        ({"handler": "nodot"}, "module.function"),
        ({"code_dir": "/no/such/dir"}, "does not exist"),
    ],
)
def test_function_config_rejects_bad_values(tmp_path, kwargs: dict, message: str) -> None:
    base = {"name": "f", "code_dir": tmp_path}
    with pytest.raises(ValueError, match=message):
        FunctionConfig(**(base | kwargs))


def test_instance_environment_is_lambdas_and_never_leaks_max_concurrency(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("AWS_LAMBDA_MAX_CONCURRENCY", "8")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "real-secret")
    config = FunctionConfig(name="f", code_dir=tmp_path, memory_mb=512,
                            environment={"AWS_LAMBDA_MAX_CONCURRENCY": "2", "MINE": "1"})  # fmt: skip
    env = config.instance_environment("127.0.0.1:9", "stream")
    assert "AWS_LAMBDA_MAX_CONCURRENCY" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert env["AWS_LAMBDA_RUNTIME_API"] == "127.0.0.1:9"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "512"
    assert env["_HANDLER"] == "labkit_function.handler.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(tmp_path) and env["MINE"] == "1"


def test_the_log_store_is_capped_in_bytes_as_well_as_lines() -> None:
    store = LogStore(max_lines=1000, max_bytes=10_000)
    for i in range(50):
        store.append(f"{i:04d}" + "x" * 996)  # 1,000 characters each
    lines, position = store.since(0)
    assert store.size_bytes <= 10_000 and len(lines) == 10 and position == 50
    assert lines[0]["n"] == 40  # the oldest went first
