"""The AWS path against AWS's documented answers (tests/aws/aws_answers.py): an account's
concurrency limits, functions whose state is ``Failed``, the queue path on a role that is not
the kit's, IAM's propagation delay, and a mapping that is still being deleted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import boto3
import pytest

from labkit import backends
from labkit.aws import deploy
from labkit.aws.account import ConcurrencyQuotaError, FunctionNotReadyError
from labkit.aws.queue_source import PROPAGATION_TRIES, AwsQueueSource, QueueNames, teardown
from labkit.cli import EXIT_OK, main
from labkit.settings import FunctionSettings, MappingSettings
from tests.aws.aws_answers import AwsAnswers
from tests.aws.conftest import deployer, image_uri

PULL_DENIED = ("Lambda was unable to pull the image: access denied for the repository "
               "labkit-mnist (Service: AmazonECR)")  # fmt: skip


def created(session: boto3.Session) -> tuple[list[str], list[str]]:
    """The functions and roles the account holds."""
    functions = [f["FunctionName"] for f in session.client("lambda").list_functions()["Functions"]]
    roles = [r["RoleName"] for r in session.client("iam").list_roles()["Roles"]
             if r["RoleName"].startswith("labkit")]  # fmt: skip
    return functions, roles


def test_provisioned_on_a_new_account_is_refused_before_anything_is_made(
    aws: boto3.Session, answers: AwsAnswers, isolated_dirs: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`labkit deploy up --provisioned 2` where the account has 10 concurrent executions: the
    plan reads the account's numbers and stops (it created the function, a version and an
    alias, then failed on a raw ClientError)."""
    answers.new_account(10)
    code = main(["deploy", "up", "--image-uri", image_uri(aws), "--provisioned", "2"])
    assert code != EXIT_OK
    said = capsys.readouterr().err
    assert "10 concurrent executions" in said and "--provisioned 2" in said
    assert "Nothing was created" in said and "Service Quotas" in said
    assert created(aws) == ([], [])
    assert answers.refused == []  # the kit never sent what AWS would refuse


def test_deploying_without_a_plan_checks_the_account_too(aws: boto3.Session,
                                                           answers: AwsAnswers) -> None:  # fmt: skip
    answers.new_account(10)
    deployment, _ = deployer(aws, FunctionSettings(provisioned=1))
    with pytest.raises(ConcurrencyQuotaError, match="at most 0 here"):
        deployment.deploy()
    assert created(aws)[0] == []


@pytest.mark.parametrize(("reserved", "provisioned", "refused"), [
    (950, 0, "--reserved-concurrency 950: this account has 1000 concurrent executions"),
    (120, 200, "--provisioned 200.*at most 120 here"),
    (None, 901, "--provisioned 901.*at most 900 here"),
])  # fmt: skip
def test_the_plan_applies_aws_rule_for_the_unreserved_minimum(
    aws: boto3.Session, reserved: int | None, provisioned: int, refused: str
) -> None:
    """https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html: a
    reservation may leave no fewer than 100 executions unreserved; provisioned instances come
    out of the function's reservation, else out of the unreserved pool."""
    deployment, _ = deployer(aws, FunctionSettings(provisioned=provisioned),
                             reserved_concurrency=reserved)  # fmt: skip
    with pytest.raises(ConcurrencyQuotaError, match=refused):
        deployment.plan()


def test_what_the_account_can_give_is_planned(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws, FunctionSettings(provisioned=2), reserved_concurrency=5)
    kinds = [change.kind for change in deployment.plan().changes]
    assert "reserved-concurrency" in kinds and "provisioned-concurrency" in kinds


def test_a_failed_function_is_explained_by_its_reason_code(
    aws: boto3.Session, answers: AwsAnswers
) -> None:
    """A function in ``Failed`` state (https://docs.aws.amazon.com/lambda/latest/dg/functions-states.html):
    the run stops naming AWS's reason code, its reason and what to do."""
    deployer(aws)[0].deploy()
    answers.fail("labkit-mnist", "ImageAccessDenied", PULL_DENIED)
    backend = backends.create("aws")
    with pytest.raises(FunctionNotReadyError) as caught:
        backend.preflight()
    message = str(caught.value)
    assert "is Failed" in message and "ImageAccessDenied" in message
    assert "unable to pull the image" in message and "ecr:BatchGetImage" in message


def test_a_failed_update_is_explained_not_a_waiter_error(
    aws: boto3.Session, answers: AwsAnswers
) -> None:
    """An update that fails (``LastUpdateStatus`` ``Failed``): botocore's waiter says only
    "terminal failure state"; the kit says AWS's reason code and the fix."""
    deployer(aws)[0].deploy()
    answers.fail("labkit-mnist", "ImageDeleted", "The image was deleted.", update=True)
    deployment, _ = deployer(aws, FunctionSettings(memory_mb=2048))
    with pytest.raises(deploy.DeployError, match=r"ImageDeleted: The image was deleted\..*push it"):
        deployment.deploy()


TRUST = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
         "Principal": {"Service": "lambda.amazonaws.com"}}]}  # fmt: skip


def test_a_queue_cell_uses_the_deployed_functions_role_and_timeout(aws: boto3.Session) -> None:
    """An AWS Academy student: the function runs as LabRole (deployed with --role-arn) with a
    30 s timeout; `labkit run` builds the queue from the kit's defaults (no role, 60 s). The
    policy is not put on the kit's role name (it got NoSuchEntityException), and the queue's
    visibility timeout is six times the function's real timeout, as AWS requires."""
    iam = aws.client("iam")
    lab_role = iam.create_role(RoleName="LabRole",
                               AssumeRolePolicyDocument=json.dumps(TRUST))["Role"]["Arn"]  # fmt: skip
    deployer(aws, FunctionSettings(timeout_s=30), role_arn=lab_role)[0].deploy()
    deployment, said = deployer(aws)  # as the AWS backend builds it for a run
    made = AwsQueueSource(deployment).deploy(MappingSettings(batch_size=5))
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=made.requests_url, AttributeNames=["VisibilityTimeout"]
    )["Attributes"]
    assert attributes["VisibilityTimeout"] == "180"
    assert iam.list_role_policies(RoleName="LabRole")["PolicyNames"] == []
    assert any("LabRole" in line and "sqs:ReceiveMessage" in line for line in said)


def test_the_mapping_waits_for_the_roles_new_policy(aws: boto3.Session,
                                                    answers: AwsAnswers) -> None:  # fmt: skip
    """Lambda checks the role when the mapping is created, seconds before IAM has spread the
    policy just put: the kit retries that refusal, says so, and gives up after a bound."""
    deployment, said = deployer(aws)
    deployment.deploy()
    answers.propagation_calls = 2
    AwsQueueSource(deployment).deploy(MappingSettings(batch_size=5))
    assert answers.refused.count("CreateEventSourceMapping") == 2
    assert sum("have not reached Lambda yet" in line for line in said) == 2
    answers.propagation_calls = 100  # never spreads: AWS's words reach the user
    with pytest.raises(
        deploy.DeployError, match="does not have permissions to call ReceiveMessage"
    ):
        AwsQueueSource(deployment, QueueNames(requests="labkit-other")).deploy(MappingSettings())
    assert answers.refused.count("CreateEventSourceMapping") == 2 + PROPAGATION_TRIES


def test_a_mapping_being_deleted_is_waited_out_not_updated(aws: boto3.Session,
                                                           answers: AwsAnswers) -> None:  # fmt: skip
    """The cell after a queue cell: the previous mapping is still Deleting; updating it is
    refused (ResourceInUseException), so the kit waits until it is gone and creates anew."""
    deployment, said = deployer(aws)
    deployment.deploy()
    source = AwsQueueSource(deployment)
    first = source.deploy(MappingSettings(batch_size=5))
    answers.deleting_lists = 2
    source.detach(first)
    second = source.deploy(MappingSettings(batch_size=10))
    assert second.mapping_uuid != first.mapping_uuid
    assert "UpdateEventSourceMapping" not in answers.refused
    assert any("previous mapping to be deleted" in line for line in said)


def test_an_inactive_function_is_woken_before_a_run(
    aws: boto3.Session, answers: AwsAnswers
) -> None:
    """A student back after weeks: the function went Inactive. The run wakes it (an
    invocation, then Pending until Active) instead of refusing to start."""
    deployer(aws)[0].deploy()
    answers.sleep("labkit-mnist")
    found = backends.create("aws").preflight()
    assert found["function"] == "labkit-mnist"
    assert "labkit-mnist" not in answers.states  # Active again


def test_deploy_up_with_nothing_changed_wakes_an_inactive_function(
    aws: boto3.Session, answers: AwsAnswers
) -> None:
    deployer(aws)[0].deploy()
    answers.sleep("labkit-mnist")
    deployment, said = deployer(aws)
    deployment.deploy()
    assert "labkit-mnist" not in answers.states
    assert any("Inactive" in line and "waking" in line for line in said)


def test_renewed_credentials_are_read_without_restarting_the_kernel(
    aws: boto3.Session, answers: AwsAnswers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS Academy's credentials expire after about four hours; the student pastes fresh
    ones. The backend's cached session kept the old keys, so every cell failed until the
    kernel restarted; now expired credentials are read again once."""
    deployer(aws)[0].deploy()
    backend = backends.create("aws")
    backend.preflight()
    answers.expired.add(os.environ["AWS_ACCESS_KEY_ID"])  # moto's, inside its mock
    with pytest.raises(deploy.CredentialsError):
        backend.preflight()  # not renewed yet: says so
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "renewed")
    assert backend.preflight()["function"] == "labkit-mnist"


def test_an_image_index_is_refused_before_lambda_sees_it(aws: boto3.Session) -> None:
    """Docker's containerd image store can push an image index even without attestations;
    Lambda refuses it at create_function. ECR's imageManifestMediaType tells first."""
    ecr = aws.client("ecr")
    ecr.create_repository(repositoryName="labkit-mnist")
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": []}  # fmt: skip
    ecr.put_image(repositoryName="labkit-mnist", imageManifest=json.dumps(index),
                  imageManifestMediaType=index["mediaType"], imageTag="multi")  # fmt: skip
    uri = ecr.describe_repositories()["repositories"][0]["repositoryUri"] + ":multi"
    deployment, _ = deployer(aws, image_uri=uri)
    with pytest.raises(deploy.DeployError, match=r"image index.*single-platform"):
        deployment.deploy()
    assert created(aws)[0] == []


def test_provisioned_instances_that_were_never_set_are_named(aws: boto3.Session) -> None:
    """A run with provisioned instances on a function that has none: AWS answers
    ProvisionedConcurrencyConfigNotFoundException; the kit says which flag sets them."""
    deployer(aws)[0].deploy()
    backend = backends.create("aws", FunctionSettings(provisioned=1))
    with pytest.raises(FunctionNotReadyError, match=r"no provisioned concurrency.*--provisioned 1"):
        backend.preflight()


def test_teardown_removes_the_functions_log_group(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws)
    deployment.deploy()
    logs = aws.client("logs")
    logs.create_log_group(logGroupName="/aws/lambda/labkit-mnist")
    assert "log-group /aws/lambda/labkit-mnist" in teardown(deployment)
    assert logs.describe_log_groups(logGroupNamePrefix="/aws/lambda/")["logGroups"] == []


def test_a_queue_cell_right_after_teardown_waits_for_the_name(aws: boto3.Session,
                                                               answers: AwsAnswers) -> None:  # fmt: skip
    """SQS refuses a queue name for 60 s after its deletion (QueueDeletedRecently): the cell
    after `labkit deploy down` waits it out, saying so, instead of failing."""
    deployment, said = deployer(aws)
    deployment.deploy()
    AwsQueueSource(deployment).deploy(MappingSettings(batch_size=5))
    answers.queue_reuse_refusals = 2
    teardown(deployment)
    deployment.deploy()
    AwsQueueSource(deployment).deploy(MappingSettings(batch_size=5))
    assert answers.refused.count("CreateQueue") >= 2
    assert any("keeps the name" in line for line in said)


def test_the_kit_waits_out_pending_and_updates_in_progress(aws: boto3.Session,
                                                           answers: AwsAnswers) -> None:  # fmt: skip
    """A new function is Pending, an update InProgress, and a second update meanwhile is
    refused (ResourceConflictException): creating, changing code and configuration at once,
    and a run's fresh start all wait for Lambda in between."""
    answers.state_polls = 2
    deployer(aws)[0].deploy()
    changed, _ = deployer(aws, FunctionSettings(memory_mb=2048), image_uri=image_uri(aws, "other"))
    changed.deploy()  # new image and new memory: two updates, one after the other
    backend = backends.create("aws")
    backend.start()
    backend.start()  # each start retires the warm environments with an update
    assert "UpdateFunction" not in answers.refused


def test_a_new_role_is_retried_until_lambda_can_assume_it(aws: boto3.Session,
                                                          answers: AwsAnswers) -> None:  # fmt: skip
    answers.role_refusals = 2
    deployer(aws)[0].deploy()
    assert answers.refused.count("CreateFunction") == 2
    assert created(aws)[0] == ["labkit-mnist"]


def test_a_new_mapping_is_waited_for_until_enabled(aws: boto3.Session,
                                                   answers: AwsAnswers) -> None:  # fmt: skip
    deployment, _ = deployer(aws)
    deployment.deploy()
    answers.creating_polls = 3
    made = AwsQueueSource(deployment).deploy(MappingSettings(batch_size=5))
    state = aws.client("lambda").get_event_source_mapping(UUID=made.mapping_uuid)["State"]
    assert state == "Enabled"
