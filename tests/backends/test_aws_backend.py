"""The AWS backend against a fake that answers like Lambda on the error paths, with moto for
credentials (STS), ECR, IAM and the Lambda control plane: a deployed function is reached by
name, each cell starts fresh execution environments, and failures stop the run loudly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from labkit import backends, journal
from labkit.aws.account import FunctionNotReadyError
from labkit.cli import EXIT_FAILED, EXIT_OK, main
from labkit.settings import FunctionSettings
from tests.conftest import needs_mnist
from tests.fake_lambda import FakeLambda
from tests.moto_account import mocked_account

pytestmark = pytest.mark.aws


@pytest.fixture
def account(monkeypatch: pytest.MonkeyPatch, isolated_dirs: Path) -> Iterator[boto3.Session]:
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mocked_account(monkeypatch):
        yield boto3.Session(region_name="us-east-1")


def fake(monkeypatch: pytest.MonkeyPatch, functions: list[str], **kwargs: object) -> FakeLambda:
    lam = FakeLambda(functions, **kwargs)  # type: ignore[arg-type]
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", lam.endpoint_url)
    return lam


def test_a_missing_function_is_named_with_the_command_that_fixes_it(
    account: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake(monkeypatch, []):
        backend = backends.create("aws")
        with pytest.raises(
            FunctionNotReadyError,
            match=r"no function 'labkit-mnist' in us-east-1.*labkit deploy up",
        ):
            backend.start()


def test_each_cell_starts_fresh_environments_and_reaches_the_function(
    account: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from labkit.load.batching import StaticBatching
    from labkit.load.loadgen import LoadConfig, Payloads

    with fake(monkeypatch, ["labkit-mnist"]) as lam:
        backend = backends.create("aws", FunctionSettings(concurrency=2))
        load = LoadConfig(max_in_flight=2, progress=False)
        payloads = Payloads([{"id": "0", "image_b64": "AA=="}], [0])
        for _ in range(2):
            result = backend.run_cell(
                [0.0, 0.01, 0.02, 0.03], StaticBatching(2), payloads, load, slo_s=1.0
            )
            # the configuration change retired the warm environment: whichever of the two
            # concurrent invocations reached the function first started a new one
            assert result.invocations["cold_start"].any()
            assert result.requests["error"].isna().all()
        assert lam.operations("labkit-mnist").count("UpdateFunctionConfiguration") == 2
        assert result.facts["fresh_environments"] is True and result.facts["region"] == "us-east-1"
        assert "LABKIT_FRESH" in lam.functions["labkit-mnist"].variables


def test_an_init_over_ten_seconds_is_counted_as_a_cold_start(
    account: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS retries an init over 10 s inside the first invocation and its REPORT has no Init
    Duration (the fake logs it so): the cell still counts one cold start, with both tries."""
    from labkit.load.batching import StaticBatching
    from labkit.load.loadgen import LoadConfig, Payloads
    from labkit.metrics import summarize

    with fake(monkeypatch, ["labkit-mnist"]) as lam:
        lam.functions["labkit-mnist"].init_ms = 12_000.0
        backend = backends.create("aws", FunctionSettings(concurrency=1))
        load = LoadConfig(max_in_flight=1, progress=False)
        payloads = Payloads([{"id": "0", "image_b64": "AA=="}], [0])
        result = backend.run_cell([0.0, 0.01, 0.02], StaticBatching(1), payloads, load, slo_s=1.0)
    assert result.invocations["cold_start"].tolist() == [True, False, False]
    assert result.invocations["init_duration_ms"].iloc[0] == 22_000.0
    figures = summarize(result.requests, result.invocations, slo_ms=1000.0)
    assert figures["cold_starts"] == 1.0


def test_provisioned_functions_are_invoked_on_their_alias_when_ready(
    account: boto3.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake(monkeypatch, ["labkit-mnist"]) as lam:
        lam.functions["labkit-mnist"].provisioned_status = "IN_PROGRESS"
        backend = backends.create("aws", FunctionSettings(provisioned=1, concurrency=2))
        with pytest.raises(FunctionNotReadyError, match="IN_PROGRESS, not READY"):
            backend.start()
        lam.functions["labkit-mnist"].provisioned_status = "READY"
        backend.start()
        backend.invoke({"instances": [{"id": "0", "image_b64": "AA=="}]})
        assert ("Invoke", "labkit-mnist", "live") in lam.calls
        assert "UpdateFunctionConfiguration" not in lam.operations(
            "labkit-mnist"
        )  # warm on purpose


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_deploy_then_run_then_teardown_from_the_command_line(
    account: boto3.Session, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`labkit deploy up --image-uri ...`, `labkit run --backend aws` with no names, failures
    that stop the run with exit 1 and keep the AWS error code, and `labkit deploy down`."""
    monkeypatch.setattr("labkit.aws.deploy.AwsDeployment._wait", lambda self, waiter: None)
    repo = account.client("ecr").create_repository(repositoryName="elsewhere")["repository"]
    assert main(["deploy", "up", "--image-uri", f"{repo['repositoryUri']}:v1"]) == EXIT_OK
    deployed = [f["FunctionName"] for f in account.client("lambda").list_functions()["Functions"]]
    assert deployed == ["labkit-mnist"]
    run = ["run", "--backend", "aws", "--duration-s", "1", "--rate", "20", "--policy", "static"]
    with fake(monkeypatch, deployed) as lam:
        assert main(run) == EXIT_OK
        assert {f for op, f, _ in lam.calls if op == "Invoke"} == {"labkit-mnist"}
    with fake(monkeypatch, []):  # the function is gone: the preflight says so
        assert main(run) == EXIT_FAILED
    assert "labkit deploy up" in capsys.readouterr().err
    with fake(monkeypatch, deployed, invoke_error="expired"):  # credentials expire mid-run
        assert main([*run, "--duration-s", "5", "--policy", "none"]) == EXIT_FAILED
    err = capsys.readouterr().err
    assert (
        "the first 10 invocations all failed (ExpiredTokenException)" in err
        and "aws sso login" in err
    )
    folder = Path(err.split("Its records are kept in ")[1].split()[0])
    cell = journal.load_cell(folder)
    assert cell.status["status"] == "failed"
    assert set(cell.requests["error"].dropna()) <= {"ExpiredTokenException", "NotSent", "Abandoned"}
    monkeypatch.delenv("AWS_ENDPOINT_URL_LAMBDA")
    assert main(["deploy", "down"]) == EXIT_OK
    assert account.client("lambda").list_functions()["Functions"] == []
    assert (
        account.client("ecr").describe_repositories()["repositories"][0]["repositoryName"]
        == "elsewhere"
    )
