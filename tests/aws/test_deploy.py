"""Deploying to AWS, against moto (Lambda without Docker): idempotence, updates in place,
teardown of exactly what the kit created, and the error paths that must say what to do."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from labkit.aws import deploy
from labkit.aws.deploy import AwsDeployment, DeployConfig
from labkit.settings import FunctionSettings
from tests.aws.conftest import REGION, deployer, image_uri

pytestmark = pytest.mark.aws


def counts(session: boto3.Session) -> tuple[int, int, int]:
    lam, iam, ecr = (session.client(n) for n in ("lambda", "iam", "ecr"))
    return (len(lam.list_functions()["Functions"]), len(iam.list_roles()["Roles"]),
            len(ecr.describe_repositories()["repositories"]))  # fmt: skip


def test_deploy_into_an_empty_account(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws)
    deployed = deployment.deploy()
    function = aws.client("lambda").get_function(FunctionName="labkit-mnist")
    configuration = function["Configuration"]
    assert configuration["PackageType"] == "Image"
    assert (configuration["MemorySize"], configuration["Timeout"]) == (1024, 60)
    assert function["Code"]["ImageUri"] == deployment.config.image_uri
    assert function["Tags"] == {"labkit": "managed"}
    policies = aws.client("iam").list_attached_role_policies(RoleName=deployment.config.role_name)
    assert [p["PolicyArn"] for p in policies["AttachedPolicies"]] == [deploy.BASIC_LOGGING_POLICY]
    assert configuration["Role"] == deployed.role_arn
    assert counts(aws) == (1, 1, 1)


def test_deploying_again_changes_nothing(aws: boto3.Session) -> None:
    first, _ = deployer(aws)
    arn = first.deploy().function_arn
    again, messages = deployer(aws)
    assert {c.action for c in again.plan().changes} == {"keep", "use"}  # "use": the given image
    assert again.deploy().function_arn == arn
    assert messages == [] and counts(aws) == (1, 1, 1)


def test_changing_memory_updates_the_function_in_place(aws: boto3.Session) -> None:
    arn = deployer(aws)[0].deploy().function_arn
    bigger, messages = deployer(aws, FunctionSettings(memory_mb=2048),
                                environment={"LABKIT_TORCH_THREADS": "2"})  # fmt: skip
    plan = {c.kind: c.action for c in bigger.plan().changes}
    assert plan["lambda-function"] == "update"
    assert bigger.deploy().function_arn == arn
    configuration = aws.client("lambda").get_function_configuration(FunctionName="labkit-mnist")
    assert configuration["MemorySize"] == 2048
    assert configuration["Environment"]["Variables"] == {"LABKIT_TORCH_THREADS": "2"}
    assert messages == ["updating configuration of labkit-mnist"] and counts(aws) == (1, 1, 1)


def test_teardown_deletes_exactly_what_the_kit_created(aws: boto3.Session) -> None:
    iam = aws.client("iam")
    iam.create_role(RoleName="someone-elses-role", AssumeRolePolicyDocument="{}")
    deployment, _ = deployer(aws)
    deployment.deploy()
    deleted = deployment.teardown()
    assert deleted == ["lambda-function labkit-mnist", "iam-role labkit-lambda-basic-execution",
                       "ecr-repository labkit-mnist"]  # fmt: skip
    assert counts(aws) == (0, 1, 0)
    assert iam.list_roles()["Roles"][0]["RoleName"] == "someone-elses-role"
    assert deployment.teardown() == []  # nothing left to delete


def test_teardown_leaves_an_untagged_resource_of_the_same_name(aws: boto3.Session) -> None:
    aws.client("iam").create_role(
        RoleName="labkit-lambda-basic-execution", AssumeRolePolicyDocument="{}"
    )
    deployment, _ = deployer(aws)
    deployment.deploy()
    assert "iam-role labkit-lambda-basic-execution" not in deployment.teardown()
    assert counts(aws) == (0, 1, 0)


def test_provisioned_and_reserved_concurrency(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws, FunctionSettings(provisioned=2), reserved_concurrency=5)
    # moto does not implement PutProvisionedConcurrencyConfig: record the call instead.
    calls: list[dict[str, Any]] = []
    deployment.lam.put_provisioned_concurrency_config = lambda **kw: calls.append(kw)
    deployment.lam.get_provisioned_concurrency_config = lambda **kw: {"Status": "READY"}
    deployed = deployment.deploy()
    lam = aws.client("lambda")
    assert deployed.qualifier == "live"
    reserved = lam.get_function_concurrency(FunctionName="labkit-mnist")
    assert reserved["ReservedConcurrentExecutions"] == 5
    alias = lam.get_alias(FunctionName="labkit-mnist", Name="live")
    assert alias["FunctionVersion"] != "$LATEST"
    assert calls == [{"FunctionName": "labkit-mnist", "Qualifier": "live",
                      "ProvisionedConcurrentExecutions": 2}]  # fmt: skip


def test_smoke_test_invokes_the_function(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws)
    deployment.deploy()
    result = deployment.smoke_test({"instances": []})
    assert result.status_code == 200 and result.function_error is None


def test_plan_estimates_cost_and_enforces_the_budget(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws)
    plan = deployment.plan(expected_invocations=10_000, expected_billed_ms=100.0)
    # 10,000 x $0.20/1M + 10,000 x 0.1 s x 1 GB x $0.0000166667
    assert plan.estimate is not None
    assert plan.estimate.total_usd == pytest.approx(0.002 + 0.0166667, rel=1e-6)
    assert "estimated experiment cost" in plan.table()
    with pytest.raises(deploy.BudgetExceededError, match="--max-budget-usd"):
        deployment.plan(expected_invocations=10_000_000, max_budget_usd=1.0)


def test_outputs_never_show_the_account_id(aws: boto3.Session) -> None:
    account = aws.client("sts").get_caller_identity()["Account"]
    deployment, messages = deployer(aws)
    deployed = deployment.deploy()
    shown = repr(deployed) + str(deployed.summary()) + deployment.plan().table() + "".join(messages)
    assert account in deployed.function_arn and account not in shown


def test_missing_credentials_say_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    deployment = AwsDeployment(DeployConfig(region=REGION))
    with pytest.raises(deploy.CredentialsError, match="aws configure"):
        deployment.check_credentials()


@pytest.mark.parametrize(
    ("code", "error"),
    [("ExpiredToken", deploy.CredentialsError), ("InvalidClientTokenId", deploy.CredentialsError),
     ("AccessDenied", deploy.PermissionDeniedError)],
)  # fmt: skip
def test_rejected_credentials_and_permissions(aws: boto3.Session, code: str, error: type) -> None:
    deployment = AwsDeployment(DeployConfig(), session=aws)
    sts = aws.client("sts", region_name=REGION)
    with Stubber(sts) as stub:
        stub.add_client_error("get_caller_identity", service_error_code=code,
                              service_message="arn:aws:iam::123456789012:user/x is not allowed")  # fmt: skip
        deployment.session = StubbedSession(aws, sts=sts)
        with pytest.raises(error) as caught:
            deployment.check_credentials()
    assert "123456789012" not in str(caught.value)


class StubbedSession:
    """A session that hands out the given (stubbed) clients, and real ones otherwise."""

    def __init__(self, session: boto3.Session, **clients: Any) -> None:
        self.session, self.clients, self.region_name = session, clients, session.region_name

    def client(self, name: str, **kwargs: Any) -> Any:
        return self.clients.get(name) or self.session.client(name, **kwargs)


def test_no_region_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    with pytest.raises(deploy.RegionError, match=r"--region REGION.*AWS_DEFAULT_REGION"):
        AwsDeployment(DeployConfig())
    from labkit.aws.invoke import LambdaInvoker

    with pytest.raises(deploy.RegionError, match="AWS_DEFAULT_REGION"):
        LambdaInvoker()  # no silent us-east-1


def test_the_region_chain_is_used_and_a_typo_is_caught(aws: boto3.Session,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert AwsDeployment(DeployConfig()).region == "eu-west-1"
    from labkit.aws.invoke import LambdaInvoker

    assert LambdaInvoker().client.meta.region_name == "eu-west-1"
    with pytest.raises(
        deploy.RegionError, match=r"unknown AWS region 'eu-west-9'\. Did you mean eu-west-"
    ):
        AwsDeployment(DeployConfig(region="eu-west-9"))


def test_an_image_in_another_region_is_refused(aws: boto3.Session) -> None:
    foreign = "111122223333.dkr.ecr.eu-west-1.amazonaws.com/labkit-mnist:v1"
    deployment = AwsDeployment(DeployConfig(image_uri=foreign), session=aws)
    with pytest.raises(deploy.RegionError, match="same region"):
        deployment.deploy()


def test_pushing_without_a_docker_engine_says_so(aws: boto3.Session) -> None:
    deployment = AwsDeployment(DeployConfig(), session=aws)
    with pytest.raises(deploy.DockerUnavailableError, match="--image-uri"):
        deployment.push_image("labkit-mnist:latest", docker="no-such-docker-cli")


def test_plan_and_deploy_without_docker_stops_before_creating_anything(
    aws: boto3.Session,
) -> None:
    with pytest.raises(deploy.DeployError, match="bundle"):
        deploy.plan_and_deploy(DeployConfig(), smoke_event={}, session=aws)
    assert counts(aws)[0] == 0


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="memory_mb"):
        FunctionSettings(memory_mb=64)
    with pytest.raises(ValueError, match="timeout_s"):
        FunctionSettings(timeout_s=901)
    with pytest.raises(ValueError, match="architecture"):
        FunctionSettings(architecture="sparc")
    with pytest.raises(ValueError, match="whole number of seconds"):
        DeployConfig(function=FunctionSettings(timeout_s=2.5))


def test_redact_hides_account_ids_only() -> None:
    text = "arn:aws:lambda:us-east-1:123456789012:function:f took 1234567890123 ns"
    assert (
        deploy.redact(text) == "arn:aws:lambda:us-east-1:<account>:function:f took 1234567890123 ns"
    )


def test_an_existing_role_is_used_and_never_deleted(aws: boto3.Session) -> None:
    """AWS Academy accounts cannot create roles: --role-arn uses theirs (LabRole)."""
    iam = aws.client("iam")
    lab_role = iam.create_role(RoleName="LabRole", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    deployment, _ = deployer(aws, role_arn=lab_role)
    assert {c.kind: c.action for c in deployment.plan().changes}["iam-role"] == "use"
    deployed = deployment.deploy()
    assert deployed.role_arn == lab_role and counts(aws) == (1, 1, 1)
    assert not any("iam-role" in item for item in deployment.teardown())
    assert [r["RoleName"] for r in iam.list_roles()["Roles"]] == ["LabRole"]
    with pytest.raises(ValueError, match="not an IAM role ARN"):
        DeployConfig(role_arn="LabRole")


def test_the_repository_expires_untagged_images(aws: boto3.Session) -> None:
    deployment = AwsDeployment(DeployConfig(), session=aws)
    deployment.ensure_repository()
    text = aws.client("ecr").get_lifecycle_policy(repositoryName="labkit-mnist")[
        "lifecyclePolicyText"
    ]
    rule = json.loads(text)["rules"][0]
    assert rule["selection"]["tagStatus"] == "untagged" and rule["action"]["type"] == "expire"


def test_a_rebuilt_image_behind_the_same_tag_is_deployed(aws: boto3.Session) -> None:
    """The URI string is the same (``:v1``); the digest it resolves to is not."""
    deployment, messages = deployer(aws)
    deployment.deploy()
    deployed_digest = aws.client("lambda").get_function(FunctionName="labkit-mnist")["Code"][
        "ResolvedImageUri"
    ]
    again, messages = deployer(aws)
    again.image_digest = lambda uri: deployed_digest.split("@")[1]  # type: ignore[method-assign]
    assert {c.kind: c.action for c in again.plan().changes}["lambda-function"] == "keep"
    again.image_digest = lambda uri: "sha256:" + "f" * 64  # type: ignore[method-assign]
    plan = {c.kind: c for c in again.plan().changes}
    assert plan["lambda-function"].action == "update" and "digest" in plan["lambda-function"].detail
    again.deploy()
    assert any("updating code" in m for m in messages)


def test_teardown_deletes_every_tagged_function_of_the_region(aws: boto3.Session) -> None:
    deployer(aws)[0].deploy()
    deployer(aws, FunctionSettings(name="labkit-other"))[0].deploy()
    untagged_role = aws.client("iam").create_role(RoleName="mine", AssumeRolePolicyDocument="{}")[
        "Role"
    ]["Arn"]
    aws.client("lambda").create_function(FunctionName="not-ours", PackageType="Image",
                                         Code={"ImageUri": image_uri(aws) }, Role=untagged_role)  # fmt: skip
    deleted = deployer(aws)[0].teardown()
    assert {"lambda-function labkit-mnist", "lambda-function labkit-other"} <= set(deleted)
    names = [f["FunctionName"] for f in aws.client("lambda").list_functions()["Functions"]]
    assert names == ["not-ours"]


def test_provisioned_concurrency_is_waited_for_and_priced(aws: boto3.Session) -> None:
    deployment, messages = deployer(aws, FunctionSettings(provisioned=2))
    statuses = iter(["IN_PROGRESS", "IN_PROGRESS", "READY"])
    deployment.lam.put_provisioned_concurrency_config = lambda **kw: {}  # moto lacks it
    deployment.lam.get_provisioned_concurrency_config = lambda **kw: {  # type: ignore[method-assign]
        "Status": next(statuses),
        "RequestedProvisionedConcurrentExecutions": 2,
    }
    deployed = deployment.deploy()
    assert deployed.qualifier == "live"
    assert sum("provisioned concurrency labkit-mnist:live" in m for m in messages) == 3
    plan = deployment.plan(expected_invocations=0)
    # 2 instances x 1 GB x 3,600 s x $0.0000041667 per GB-s
    assert plan.provisioned_usd_per_hour == pytest.approx(2 * 3600 * 0.0000041667)
    assert "per hour while it exists" in plan.table()
    failed = iter(["FAILED"])
    deployment.lam.get_provisioned_concurrency_config = lambda **kw: {  # type: ignore[method-assign]
        "Status": next(failed),
        "StatusReason": "no capacity",
    }
    with pytest.raises(deploy.FunctionNotReadyError, match="no capacity"):
        deployment.wait_provisioned()


def test_a_reserved_concurrency_above_the_accounts_limit_names_the_flag(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws, reserved_concurrency=50)
    lam = deployment.lam

    def refuse(**kwargs: Any) -> None:
        raise lam.exceptions.InvalidParameterValueException(
            {"Error": {"Code": "InvalidParameterValueException", "Message": "Specified "
                       "ReservedConcurrentExecutions for function decreases account's "
                       "UnreservedConcurrentExecution below its minimum value of [10]."}},
            "PutFunctionConcurrency")  # fmt: skip

    lam.put_function_concurrency = refuse  # type: ignore[method-assign]
    with pytest.raises(deploy.DeployError, match=r"--reserved-concurrency 50.*quota"):
        deployment.deploy()


def test_an_expired_sso_session_says_to_log_in_again(aws: boto3.Session) -> None:
    from botocore.exceptions import UnauthorizedSSOTokenError

    from labkit.aws.account import aws_errors

    with pytest.raises(deploy.CredentialsError, match="aws sso login"), aws_errors("deploying"):
        raise UnauthorizedSSOTokenError()
