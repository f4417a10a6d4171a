"""The local Lambda off Linux: labkit's Python runtime client and the portable stand-ins for
/proc, PR_SET_PDEATHSIG, the child subreaper and cgroups, exercised here on Linux
(``LABKIT_PORTABLE=1``, ``LABKIT_RUNTIME_CLIENT=python``), since CI has no macOS."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import boto3
import psutil
import pytest

from labkit.emulator import FunctionConfig, LocalLambda, platform_support
from tests.conftest import PROJECT_DIR, wait_for

HANDLERS = PROJECT_DIR / "tests" / "handlers"
PORTABLE = {platform_support.PORTABLE_ENV: "1", platform_support.CLIENT_ENV: "python"}


@pytest.fixture
def portable(monkeypatch: pytest.MonkeyPatch):
    for key, value in PORTABLE.items():
        monkeypatch.setenv(key, value)
    platform_support.detect.cache_clear()
    yield platform_support.detect()
    monkeypatch.undo()
    platform_support.detect.cache_clear()


def client(lam: LocalLambda):
    return boto3.client("lambda", endpoint_url=lam.endpoint_url, region_name="us-east-1",
                        aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip


def test_the_portable_facilities_are_named_and_recorded(portable) -> None:
    assert portable.facts() == {
        "runtime_client": "python", "memory": "psutil", "parent_death": "parent watch",
        "orphans": "process tree", "platform": f"{sys.platform} (portable paths forced)",
    }  # fmt: skip
    assert len(portable.differences()) == 4
    from labkit.emulator.cpu_share import detect

    assert not detect().available and "no cgroups on this platform" in detect().reason


def test_a_bad_or_missing_client_choice_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(platform_support.CLIENT_ENV, "java")
    with pytest.raises(ValueError, match="choose one of awslambdaric, python"):
        platform_support._runtime_client()
    monkeypatch.setenv(platform_support.CLIENT_ENV, "awslambdaric")
    monkeypatch.setattr(platform_support.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ValueError, match="not installed"):
        platform_support._runtime_client()
    monkeypatch.delenv(platform_support.CLIENT_ENV)
    assert platform_support._runtime_client() == "python"  # the fallback, without a word


@pytest.mark.slow
@pytest.mark.parametrize(
    "client_name",
    [
        "python",
        pytest.param(
            "awslambdaric",
            marks=pytest.mark.skipif(
                importlib.util.find_spec("awslambdaric") is None,
                reason="awslambdaric not installed (not Linux)",
            ),
        ),
    ],
)
@pytest.mark.parametrize(("handler", "error_type"), [
    ("no_such_module.handler", "Runtime.ImportModuleError"),
    ("fault_handlers.no_such_function", "Runtime.HandlerNotFound"),
    ("init_fails.handler", "RuntimeError"),
])  # fmt: skip
def test_both_clients_report_init_failures_alike(monkeypatch, client_name: str, handler: str,
                                                  error_type: str) -> None:  # fmt: skip
    monkeypatch.setenv(platform_support.CLIENT_ENV, client_name)
    config = FunctionConfig("f", HANDLERS, handler=handler, timeout_s=20)
    with LocalLambda([config]) as lam:
        answer = client(lam).invoke(FunctionName="f", Payload=b"{}")
        body = json.loads(answer["Payload"].read())
    assert answer["FunctionError"] == "Unhandled"
    assert body["errorType"] == error_type, body


@pytest.mark.slow
def test_the_python_client_answers_events_errors_and_context(portable) -> None:
    config = FunctionConfig("echo", HANDLERS, handler="fault_handlers.echo_batch")
    boom = FunctionConfig("boom", HANDLERS, handler="fault_handlers.boom")
    with LocalLambda([config, boom]) as lam:
        assert lam.platform["runtime_client"] == "python"
        ok = client(lam).invoke(FunctionName="echo", Payload=json.dumps(
            {"instances": [{"id": "a", "image_b64": "AA=="}]}))  # fmt: skip
        bad = client(lam).invoke(FunctionName="boom", Payload=b"{}")
        (pid,) = [i["pid"] for i in lam.instances("echo")["instances"]]
        command = " ".join(psutil.Process(pid).cmdline())
    assert json.loads(ok["Payload"].read()) == {"predictions": [{"id": "a", "label": 0}]}
    assert bad["FunctionError"] == "Unhandled"
    assert json.loads(bad["Payload"].read())["errorType"] == "ValueError"
    assert "runtime_client.py --client python --watch-parent" in command


@pytest.mark.slow
def test_without_the_parent_death_signal_nothing_outlives_a_killed_owner(tmp_path: Path) -> None:
    """SIGKILL the process that started the local Lambda: its service and instances notice
    their parent is gone and end (the portable stand-in for PR_SET_PDEATHSIG)."""
    owner = tmp_path / "owner.py"
    owner.write_text(
        textwrap.dedent(f"""
        import json, sys, time
        sys.path.insert(0, {str(PROJECT_DIR)!r})
        import boto3
        from labkit.emulator import FunctionConfig, LocalLambda
        lam = LocalLambda([FunctionConfig("f", {str(HANDLERS)!r}, handler="fault_handlers.echo_batch")]).start()
        boto3.client("lambda", endpoint_url=lam.endpoint_url, region_name="us-east-1",
                     aws_access_key_id="x", aws_secret_access_key="x").invoke(FunctionName="f", Payload=b"{{}}")
        print(json.dumps([lam.pid, *[i["pid"] for i in lam.instances("f")["instances"]]]), flush=True)
        time.sleep(600)
    """)
    )
    run = subprocess.Popen([sys.executable, str(owner)], stdout=subprocess.PIPE, text=True,
                           env={**os.environ, **PORTABLE})  # fmt: skip
    pids = json.loads(run.stdout.readline())
    assert len(pids) == 2  # the service and one instance
    os.kill(run.pid, signal.SIGKILL)
    run.wait()

    def gone() -> bool:
        return not any(
            psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in pids
        )

    wait_for(gone, timeout_s=30, what="the service and its instance to end after their owner")


@pytest.mark.slow
def test_the_local_lambda_suite_passes_on_the_portable_paths() -> None:
    """The emulator's own tests, again, with labkit's client and every stand-in."""
    suites = [
        "tests/emulator/test_emulator.py",
        "tests/emulator/test_hostile.py",
        "tests/emulator/test_runtime_api.py",
    ]
    # One process (-n 0): the suite around it already fills the cores, and workers here only
    # add their own start-up (bench/README.md, the test suite).
    # Not the two tests that serve the MNIST model (they exercise the model, not the platform)
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
               "-k", "not mnist", *suites]  # fmt: skip
    run = subprocess.run(command, cwd=PROJECT_DIR, env={**os.environ, **PORTABLE}, capture_output=True,
                         text=True, timeout=1200)  # fmt: skip
    assert run.returncode == 0, run.stdout[-4000:]
