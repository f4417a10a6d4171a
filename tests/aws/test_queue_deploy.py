"""The queue in front of the function on AWS, against moto: queues tagged and redriven, the
mapping and the SQS handler in place, the role's permission, and a teardown that leaves
nothing of it."""

from __future__ import annotations

import json

import boto3

from labkit.aws.queue_source import POLICY_NAME, AwsQueueSource, teardown
from labkit.load.queue_run import SQS_HANDLER, MappingSettings
from tests.aws.conftest import deployer


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
    deleted = teardown(deployment)  # `labkit deploy down`
    assert (
        any(d.startswith("sqs-queue") for d in deleted)
        and "iam-role labkit-lambda-basic-execution" in deleted
    )
    assert aws.client("sqs").list_queues().get("QueueUrls", []) == []


def test_a_queue_cell_on_aws_records_answers_and_report_lines_then_detaches(
    aws: boto3.Session,
) -> None:
    """The AWS backend's queue cell against moto: the kit's queues and mapping are made, each
    request is sent as a message, a stand-in for the function (a thread: moto runs no
    mapping without Docker) answers to the response queue and logs REPORT lines to
    CloudWatch Logs as Lambda does; the cell's records come from both, and afterwards the
    mapping is gone and the function has its own handler back."""
    import threading
    import time

    import numpy as np

    from labkit.backends.aws import AwsBackend
    from labkit.load.loadgen import Payloads
    from labkit.settings import FunctionSettings

    deployment, _ = deployer(aws)
    deployment.deploy()
    updates: list[dict] = []
    backend = AwsBackend(FunctionSettings(), session=aws)
    stop = threading.Event()
    sqs, logs = aws.client("sqs"), aws.client("logs")
    logs.create_log_group(logGroupName="/aws/lambda/labkit-mnist")
    logs.create_log_stream(logGroupName="/aws/lambda/labkit-mnist", logStreamName="s")

    def function() -> None:  # receives batches, answers, logs a REPORT line per invocation
        number = 0
        while not stop.is_set():
            urls = sqs.list_queues(QueueNamePrefix="labkit-requests").get("QueueUrls", [])
            url = next((u for u in urls if not u.endswith("-dlq")), None)
            got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=5, WaitTimeSeconds=0
                                      ).get("Messages", []) if url else []  # fmt: skip
            if not got:
                time.sleep(0.02)
                continue
            number += 1
            invocation = f"inv-{number}"
            answers = sqs.get_queue_url(QueueName="labkit-answers")["QueueUrl"]
            for m in got:
                body = json.loads(m["Body"])
                sqs.send_message(QueueUrl=answers, MessageBody=json.dumps({
                    "id": body["id"], "label": 3, "error": None, "batch_size": len(got),
                    "invocation": invocation, "started": time.time()}))  # fmt: skip
                sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])
            init = "\tInit Duration: 900.00 ms" if number == 1 else ""
            report = (f"REPORT RequestId: {invocation}\tDuration: 12.00 ms\tBilled Duration: "
                      f"13 ms\tMemory Size: 1024 MB\tMax Memory Used: 200 MB{init}")  # fmt: skip
            logs.put_log_events(logGroupName="/aws/lambda/labkit-mnist", logStreamName="s",
                                logEvents=[{"timestamp": int(time.time() * 1000), "message": report}])  # fmt: skip

    def unhook(created: dict) -> dict:
        """moto's SQS would hand messages to its own Lambda stand-in; the thread plays it."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.sqs.models import sqs_backends

        for queue in sqs_backends[DEFAULT_ACCOUNT_ID][aws.region_name].queues.values():
            queue.lambda_event_source_mappings.clear()
        return created

    worker = threading.Thread(target=function, daemon=True)
    worker.start()
    try:
        from labkit.aws import deploy

        original = deploy.AwsDeployment.__init__

        def spy_init(self, *args, **kwargs):  # watch the handler switch and its undoing
            original(self, *args, **kwargs)
            inner = self.lam.update_function_configuration
            self.lam.update_function_configuration = lambda **kw: updates.append(kw) or inner(**kw)
            create = self.lam.create_event_source_mapping
            self.lam.create_event_source_mapping = lambda **kw: unhook(create(**kw))

        deploy.AwsDeployment.__init__ = spy_init
        payloads = Payloads(instances=[{"image_b64": "x"}] * 4, labels=np.array([3, 3, 3, 3]))
        result = backend.run_queue_cell(np.arange(0.0, 1.0, 0.1), MappingSettings(5, 0), payloads,
                                        slo_s=0.2)  # fmt: skip
    finally:
        deploy.AwsDeployment.__init__ = original
        stop.set()
        worker.join()
    requests, invocations = result.requests, result.invocations
    assert result.complete and requests["error"].isna().all() and requests["correct"].all()
    assert invocations["batch_size"].sum() == 10 and invocations["cold_start"].sum() == 1
    assert (requests["latency_ms"] > 0).all() and requests["batch_id"].ge(0).all()
    assert result.facts["sqs"]["sends"] == 10
    lam = aws.client("lambda")
    assert lam.list_event_source_mappings(FunctionName="labkit-mnist")["EventSourceMappings"] == []
    assert updates[0]["ImageConfig"] == {"Command": [SQS_HANDLER]}
    assert updates[-1]["ImageConfig"] == {"Command": []}  # the image's own handler again


def test_reports_from_cloudwatch_keep_their_environments_init() -> None:
    """Each log stream is one execution environment: a REPORT after that stream's
    INIT_REPORT lines (an init over 10 s, retried inside the invocation) is a cold start,
    even when another environment's lines come in between."""
    from labkit.aws.invoke import parse_report
    from labkit.aws.queue_source import reports_with_their_init

    def report(request: str) -> str:
        return (f"REPORT RequestId: {request}\tDuration: 9.00 ms\tBilled Duration: 9 ms\t"
                "Memory Size: 1024 MB\tMax Memory Used: 200 MB")  # fmt: skip

    events = [
        {"logStreamName": "a", "timestamp": 1, "message": "INIT_START Runtime Version: py"},
        {"logStreamName": "a", "timestamp": 2,
         "message": "INIT_REPORT Init Duration: 10000.00 ms\tPhase: init\tStatus: timeout"},
        {"logStreamName": "b", "timestamp": 3, "message": report("warm-b")},
        {"logStreamName": "a", "timestamp": 4,
         "message": "INIT_REPORT Init Duration: 11000.00 ms\tPhase: invoke\tStatus: success"},
        {"logStreamName": "a", "timestamp": 5, "message": report("cold-a")},
        {"logStreamName": "a", "timestamp": 6, "message": report("warm-a")},
    ]  # fmt: skip
    parsed = {r.request_id: r for r in map(parse_report, reports_with_their_init(events)) if r}
    assert set(parsed) == {"warm-b", "cold-a", "warm-a"}
    assert parsed["cold-a"].cold_start and parsed["cold-a"].init_duration_ms == 21000.0
    assert not parsed["warm-a"].cold_start and not parsed["warm-b"].cold_start
