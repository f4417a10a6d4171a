"""The queue in front of the function on AWS, against moto: queues tagged and redriven, the
mapping and the SQS handler in place, the role's permission, and a teardown that leaves
nothing of it."""

from __future__ import annotations

import json

import boto3

from labkit.queue_deploy import POLICY_NAME, AwsQueueSource
from labkit.queue_run import SQS_HANDLER, MappingSettings
from tests.test_deploy import aws, deployer

__all__ = ["aws"]


def test_deploy_then_teardown(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws)
    deployment.deploy()
    source = AwsQueueSource(deployment)
    updates: list[dict] = []  # moto keeps the environment of an update, not its ImageConfig
    update = deployment.lam.update_function_configuration
    deployment.lam.update_function_configuration = lambda **kw: updates.append(kw) or update(**kw)
    made = source.deploy(MappingSettings(batch_size=10, window_s=1))
    sqs, lam, iam = (aws.client(n) for n in ("sqs", "lambda", "iam"))
    attributes = sqs.get_queue_attributes(QueueUrl=made.requests_url, AttributeNames=["All"])[
        "Attributes"
    ]
    assert attributes["VisibilityTimeout"] == str(6 * 60)
    assert json.loads(attributes["RedrivePolicy"])["maxReceiveCount"] in (3, "3")
    assert sqs.list_queue_tags(QueueUrl=made.answers_url)["Tags"] == {"labkit": "managed"}
    (mapping,) = lam.list_event_source_mappings(FunctionName="labkit-mnist")["EventSourceMappings"]
    assert mapping["BatchSize"] == 10 and mapping["MaximumBatchingWindowInSeconds"] == 1
    configuration = lam.get_function_configuration(FunctionName="labkit-mnist")
    assert updates[-1]["ImageConfig"] == {"Command": [SQS_HANDLER]}
    assert (
        configuration["Environment"]["Variables"]["LABKIT_RESPONSE_QUEUE_URL"] == made.answers_url
    )
    policy = iam.get_role_policy(RoleName=deployment.config.role_name, PolicyName=POLICY_NAME)
    assert "sqs:ReceiveMessage" in json.dumps(policy["PolicyDocument"])
    again = source.deploy(MappingSettings(batch_size=5, window_s=0))  # updated, not duplicated
    (updated,) = lam.list_event_source_mappings(FunctionName="labkit-mnist")["EventSourceMappings"]
    assert again.mapping_uuid == mapping["UUID"] and updated["BatchSize"] == 5

    deleted = source.teardown()
    assert sum(d.startswith("sqs-queue") for d in deleted) == 3
    assert lam.list_event_source_mappings()["EventSourceMappings"] == []
    assert sqs.list_queues().get("QueueUrls", []) == []
    assert (
        POLICY_NAME
        not in iam.list_role_policies(RoleName=deployment.config.role_name)["PolicyNames"]
    )


def test_the_kits_teardown_also_removes_the_queue_source(aws: boto3.Session) -> None:
    deployment, _ = deployer(aws)
    deployment.deploy()
    AwsQueueSource(deployment).deploy(MappingSettings(batch_size=5))
    deleted = deployment.teardown()  # `labkit deploy down`
    assert (
        any(d.startswith("sqs-queue") for d in deleted)
        and "iam-role labkit-lambda-basic-execution" in deleted
    )
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []
