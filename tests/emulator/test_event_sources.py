"""SQS event-source mappings on the local Lambda, through boto3 as on AWS: created with the
Lambda API against a local SQS (moto's, in server mode), batches of the documented shape and
size, AWS's refusals, retries and the dead-letter queue."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from labkit.emulator import FunctionConfig, LocalLambda
from labkit.emulator.queues import LocalSqs, queue_arn
from tests.conftest import PROJECT_DIR, needs_mnist, wait_for

HANDLERS = PROJECT_DIR / "tests" / "handlers"


@pytest.fixture(scope="module")
def stack():
    with LocalSqs() as sqs:
        functions = [FunctionConfig("batch", HANDLERS, handler="sqs_handlers.batch"),
                     FunctionConfig("partial", HANDLERS, handler="sqs_handlers.partial"),
                     FunctionConfig("slow", HANDLERS, handler="sqs_handlers.slow", concurrency=8)]  # fmt: skip
        with LocalLambda(functions, sqs_endpoint_url=sqs.endpoint_url) as lam:
            client = boto3.client("lambda", endpoint_url=lam.endpoint_url, region_name="us-east-1",
                                  aws_access_key_id="x", aws_secret_access_key="x")  # fmt: skip
            yield sqs, lam, client


def batches(lam: LocalLambda, function: str) -> list[dict]:
    return [json.loads(line.split("BATCH ", 1)[1]) for line in lam.logs(function)
            if "BATCH " in line]  # fmt: skip


def make_queue(sqs: LocalSqs, name: str, **attributes: str) -> str:
    return sqs.client().create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]


@pytest.mark.slow
def test_invalid_mappings_are_refused_as_aws_refuses_them(stack) -> None:
    sqs, _, client = stack
    make_queue(sqs, "refusals")
    arn = queue_arn("refusals")
    with pytest.raises(ClientError) as caught:
        client.create_event_source_mapping(EventSourceArn=arn, FunctionName="batch", BatchSize=20)
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert "greater than 0 if maximum batch size is greater than 10" in error["Message"]
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.create_event_source_mapping(EventSourceArn=arn, FunctionName="nope")
    with pytest.raises(ClientError, match="cannot poll"):
        client.create_event_source_mapping(
            EventSourceArn=queue_arn("missing"), FunctionName="batch"
        )


@pytest.mark.slow
def test_batches_arrive_in_the_records_shape_within_size_and_window(stack) -> None:
    sqs, lam, client = stack
    url = make_queue(sqs, "orders")
    for i in range(12):
        sqs.client().send_message(QueueUrl=url, MessageBody=f"m{i}")
    mapping = client.create_event_source_mapping(
        EventSourceArn=queue_arn("orders"), FunctionName="batch", BatchSize=5,
        MaximumBatchingWindowInSeconds=1, ScalingConfig={"MaximumConcurrency": 2})  # fmt: skip
    assert mapping["BatchSize"] == 5 and mapping["MaximumBatchingWindowInSeconds"] == 1
    wait_for(lambda: sum(b["size"] for b in batches(lam, "batch")) >= 12, timeout_s=60,
             what="all 12 messages to reach the function")  # fmt: skip
    seen = batches(lam, "batch")
    assert all(1 <= b["size"] <= 5 and b["source"] == "aws:sqs" for b in seen)
    # SQS standard queues deliver at least once: a duplicate is allowed, a loss is not
    assert {x for b in seen for x in b["bodies"]} == {f"m{i}" for i in range(12)}
    assert [m["UUID"] for m in client.list_event_source_mappings()["EventSourceMappings"]] == [
        mapping["UUID"]]  # fmt: skip
    wait_for(lambda: _visible(sqs, url) == 0, timeout_s=30, what="the queue to be emptied")
    client.delete_event_source_mapping(UUID=mapping["UUID"])
    with pytest.raises(ClientError, match="ResourceNotFoundException"):
        client.get_event_source_mapping(UUID=mapping["UUID"])


@pytest.mark.slow
def test_pollers_scale_with_the_backlog_up_to_the_function_concurrency_and_back(stack) -> None:
    sqs, lam, client = stack
    url = make_queue(sqs, "backlog")
    entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)]
    for _ in range(8):  # 80 messages, 0.4 s each at BatchSize 1: a backlog for seconds
        sqs.client().send_message_batch(QueueUrl=url, Entries=entries)
    mapping = client.create_event_source_mapping(
        EventSourceArn=queue_arn("backlog"), FunctionName="slow", BatchSize=1
    )
    uuid = mapping["UUID"]
    assert lam.mapping(uuid)["labkit"]["pollers"] == 5  # AWS starts with five
    wait_for(lambda: lam.mapping(uuid)["labkit"]["peak_pollers"] == 8, timeout_s=60,
             what="the pollers to grow to the function's concurrency (8)")  # fmt: skip
    wait_for(lambda: _visible(sqs, url) == 0 and lam.mapping(uuid)["labkit"]["pollers"] == 5,
             timeout_s=120, what="the extra pollers to retire once the queue is empty")  # fmt: skip
    assert lam.mapping(uuid)["labkit"]["peak_pollers"] == 8  # never above the function's limit
    client.delete_event_source_mapping(UUID=uuid)


@pytest.mark.slow
def test_maximum_concurrency_caps_the_pollers(stack) -> None:
    sqs, lam, client = stack
    url = make_queue(sqs, "capped")
    entries = [{"Id": str(i), "MessageBody": f"m{i}"} for i in range(10)]
    for _ in range(3):
        sqs.client().send_message_batch(QueueUrl=url, Entries=entries)
    mapping = client.create_event_source_mapping(
        EventSourceArn=queue_arn("capped"), FunctionName="slow", BatchSize=1,
        ScalingConfig={"MaximumConcurrency": 2})  # fmt: skip
    wait_for(lambda: _visible(sqs, url) == 0, timeout_s=120, what="the queue to be emptied")
    assert lam.mapping(mapping["UUID"])["labkit"]["peak_pollers"] == 2
    client.delete_event_source_mapping(UUID=mapping["UUID"])


@pytest.mark.slow
def test_a_failing_batch_is_retried_and_its_poison_lands_in_the_dead_letter_queue(stack) -> None:
    sqs, lam, client = stack
    dlq_url = make_queue(sqs, "poison-dlq")
    redrive = json.dumps({"deadLetterTargetArn": queue_arn("poison-dlq"), "maxReceiveCount": "2"})
    url = make_queue(sqs, "poison", VisibilityTimeout="1", RedrivePolicy=redrive)
    sqs.client().send_message(QueueUrl=url, MessageBody="poison")
    before = len(batches(lam, "batch"))
    mapping = client.create_event_source_mapping(EventSourceArn=queue_arn("poison"),
                                                 FunctionName="batch", BatchSize=1)  # fmt: skip
    wait_for(lambda: _visible(sqs, dlq_url) == 1, timeout_s=60, what="the poison in the DLQ")
    client.delete_event_source_mapping(UUID=mapping["UUID"])
    tries = [b for b in batches(lam, "batch")[before:] if b["bodies"] == ["poison"]]
    assert len(tries) == 2  # maxReceiveCount deliveries, then the dead-letter queue


@pytest.mark.slow
def test_reported_item_failures_leave_only_those_on_the_queue(stack) -> None:
    sqs, lam, client = stack
    url = make_queue(sqs, "mixed", VisibilityTimeout="30")
    for body in ["a", "poison", "b"]:
        sqs.client().send_message(QueueUrl=url, MessageBody=body)
    mapping = client.create_event_source_mapping(
        EventSourceArn=queue_arn("mixed"), FunctionName="partial", BatchSize=10,
        MaximumBatchingWindowInSeconds=1, FunctionResponseTypes=["ReportBatchItemFailures"])  # fmt: skip
    wait_for(lambda: sum(b["size"] for b in batches(lam, "partial")) >= 3, timeout_s=60,
             what="the three messages to reach the function")  # fmt: skip
    client.delete_event_source_mapping(UUID=mapping["UUID"])
    wait_for(lambda: _in_flight(sqs, url) + _visible(sqs, url) == 1, timeout_s=30,
             what="two deleted, the reported one kept")  # fmt: skip


def _attribute(sqs: LocalSqs, url: str, name: str) -> int:
    answer = sqs.client().get_queue_attributes(QueueUrl=url, AttributeNames=[name])
    return int(answer["Attributes"][name])


def _visible(sqs: LocalSqs, url: str) -> int:
    return _attribute(sqs, url, "ApproximateNumberOfMessages")


def _in_flight(sqs: LocalSqs, url: str) -> int:
    return _attribute(sqs, url, "ApproximateNumberOfMessagesNotVisible")


@pytest.mark.parametrize(("body", "message"), [
    ({"BatchSize": 11}, "greater than 0 if maximum batch size is greater than 10"),
    ({"BatchSize": 11, "MaximumBatchingWindowInSeconds": 1}, None),
    ({"BatchSize": 10_001, "MaximumBatchingWindowInSeconds": 1}, "between 1 and 10000"),
    ({"MaximumBatchingWindowInSeconds": 0.3}, "whole number of seconds"),
    ({"MaximumBatchingWindowInSeconds": 301}, "from 0 to 300"),
    ({"ScalingConfig": {"MaximumConcurrency": 1}}, "between 2 and 1000"),
    ({"FunctionResponseTypes": ["Everything"]}, "ReportBatchItemFailures"),
    ({"EventSourceArn": "arn:aws:kinesis:us-east-1:123456789012:stream/s"}, "SQS queue ARN"),
])  # fmt: skip
def test_the_documented_limits(body: dict, message: str | None) -> None:
    """The checks a client other than boto3 (which checks some itself) meets on the service."""
    from labkit.emulator import event_sources

    body = {"EventSourceArn": queue_arn("q"), **body}
    if message is None:
        assert event_sources.parse(body, "arn", "f").batch_size == 11
        return
    with pytest.raises(event_sources.MappingError, match=message):
        event_sources.parse(body, "arn", "f")


def test_a_fifo_queue_takes_at_most_10() -> None:
    from labkit.emulator import event_sources

    body = {"EventSourceArn": queue_arn("q.fifo"), "BatchSize": 11,
            "MaximumBatchingWindowInSeconds": 1}  # fmt: skip
    with pytest.raises(event_sources.MappingError, match="between 1 and 10, "):
        event_sources.parse(body, "arn", "f")


@pytest.mark.slow
@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_requests_through_a_queue_keep_the_record_schema(
    trained_model_dir: Path, tmp_path: Path
) -> None:
    """The measurement path: each request an SQS message at its arrival, the function's
    answers read back from a response queue, records in the one schema."""
    import numpy as np

    from labkit import records
    from labkit.aws import image
    from labkit.data import load_mnist
    from labkit.load.loadgen import Payloads
    from labkit.load.queue_run import MappingSettings, run_through_queue

    bundle = image.build_bundle(trained_model_dir, tmp_path / "bundle")
    payloads = Payloads.from_split(load_mnist(train=False), 50)
    arrivals = np.arange(0.0, 2.0, 0.1)  # 20 requests at 10/s
    cell = run_through_queue(arrivals, payloads, MappingSettings(batch_size=5, window_s=1),
                             bundle.path, concurrency=2)  # fmt: skip
    requests, invocations = cell.result.requests, cell.result.invocations
    assert cell.result.complete and list(requests.columns) == records.REQUEST_COLUMNS
    assert requests["error"].isna().all() and (requests["latency_ms"] > 0).all()
    assert requests["batch_size"].between(1, 5).all()
    assert invocations["batch_size"].sum() == 20 and invocations["cold_start"].any()
    assert cell.sends and len(cell.sends) == 20 and cell.deletes == len(invocations)
