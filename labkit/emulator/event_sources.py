"""Event-source mappings on the local Lambda: an SQS queue feeding a function in batches.

Created through the Lambda API (``CreateEventSourceMapping``, boto3's ``lambda`` client), with
AWS's documented parameters and checks (AWS Lambda developer guide, "Using Lambda with
Amazon SQS"):

- ``BatchSize`` 1-10,000 (default 10); above 10 only with ``MaximumBatchingWindowInSeconds``
  of at least 1 (refused otherwise, as AWS refuses it);
- ``MaximumBatchingWindowInSeconds`` 0-300, whole seconds (default 0): 0 invokes with what
  one poll returns; otherwise records are gathered from the first one until the batch is
  full or the window has passed;
- ``ScalingConfig.MaximumConcurrency`` 2-1,000: invocations the mapping runs at once;
- ``FunctionResponseTypes: ["ReportBatchItemFailures"]``: the function's
  ``batchItemFailures`` are left on the queue, the rest deleted.

Each poller long-polls the queue (receives of at most 10, as SQS allows), invokes the function
with the ``Records`` event AWS sends, and deletes the batch when the function succeeds. On an
error nothing is deleted: the messages reappear after the queue's visibility timeout, and the
queue's redrive policy moves them to its dead-letter queue after ``maxReceiveCount`` (SQS
itself does that: the queue is moto's). What is simpler than AWS: a fixed number of pollers
(the mapping's maximum concurrency, at most 5, AWS's starting count, and never more than the
function's concurrency) instead of AWS's scaling by queue depth; a throttled invocation is
retried with the same batch after a back-off.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

ARN = re.compile(r"arn:aws:sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,80}(\.fifo)?)")
START_POLLERS = 5  # AWS starts an SQS mapping with five pollers
WAIT_S = 1  # long-poll wait per receive (short, so a stopped mapping ends quickly)


class MappingError(ValueError):
    """An invalid mapping, with AWS's error type (``InvalidParameterValueException``)."""


@dataclass
class SqsMapping:
    """One mapping's settings, as ``GetEventSourceMapping`` returns them."""

    function_name: str
    function_arn: str
    event_source_arn: str
    batch_size: int = 10
    window_s: int = 0
    max_concurrency: int | None = None
    report_failures: bool = False
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))
    state: str = "Enabled"
    invocations: int = 0
    batches: list[int] = field(default_factory=list)  # the sizes, for tests and the notebook

    @property
    def queue_name(self) -> str:
        match = ARN.fullmatch(self.event_source_arn)
        assert match is not None
        return match.group(3)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "UUID": self.uuid, "EventSourceArn": self.event_source_arn,
            "FunctionArn": self.function_arn, "BatchSize": self.batch_size,
            "MaximumBatchingWindowInSeconds": self.window_s, "State": self.state,
            "LastModified": time.time(), "StateTransitionReason": "USER_INITIATED",
            "FunctionResponseTypes": ["ReportBatchItemFailures"] if self.report_failures else [],
        }  # fmt: skip
        if self.max_concurrency is not None:
            out["ScalingConfig"] = {"MaximumConcurrency": self.max_concurrency}
        return out


def parse(body: dict[str, Any], function_arn: str, function_name: str) -> SqsMapping:
    """A mapping from a ``CreateEventSourceMapping`` body, or :class:`MappingError`."""
    arn = body.get("EventSourceArn", "")
    match = ARN.fullmatch(arn or "")
    if match is None:
        raise MappingError(f"1 validation error detected: Value '{arn}' at 'eventSourceArn' "
                           "failed to satisfy constraint: an SQS queue ARN is expected")  # fmt: skip
    fifo = arn.endswith(".fifo")
    size = body.get("BatchSize", 10)
    window = body.get("MaximumBatchingWindowInSeconds", 0)
    if not isinstance(size, int) or not 1 <= size <= (10 if fifo else 10_000):
        raise MappingError(f"BatchSize must be between 1 and {10 if fifo else 10000}, not {size!r}")
    if not isinstance(window, int) or not 0 <= window <= 300:
        raise MappingError(f"MaximumBatchingWindowInSeconds must be a whole number of seconds "
                           f"from 0 to 300, not {window!r}")  # fmt: skip
    if size > 10 and window < 1:
        raise MappingError("Maximum batch window in seconds must be greater than 0 if maximum "
                           "batch size is greater than 10")  # fmt: skip
    concurrency = (body.get("ScalingConfig") or {}).get("MaximumConcurrency")
    if concurrency is not None and (
        not isinstance(concurrency, int) or not 2 <= concurrency <= 1000
    ):
        raise MappingError(f"MaximumConcurrency must be between 2 and 1000, not {concurrency!r}")
    types = body.get("FunctionResponseTypes") or []
    if any(t != "ReportBatchItemFailures" for t in types):
        raise MappingError(f"FunctionResponseTypes may only hold ReportBatchItemFailures: {types}")
    return SqsMapping(function_name, function_arn, arn, size, window, concurrency,
                      "ReportBatchItemFailures" in types)  # fmt: skip


def record(message: dict[str, Any], mapping: SqsMapping, region: str) -> dict[str, Any]:
    """One message as a record of the event Lambda sends for SQS."""
    return {
        "messageId": message["MessageId"], "receiptHandle": message["ReceiptHandle"],
        "body": message.get("Body", ""), "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody", ""), "eventSource": "aws:sqs",
        "eventSourceARN": mapping.event_source_arn, "awsRegion": region,
    }  # fmt: skip


class Pollers:
    """The pollers of one mapping: each receives a batch, invokes, deletes what succeeded."""

    def __init__(self, mapping: SqsMapping, invoke: Any, endpoint_url: str, region: str,
                 function_concurrency: int = 1000) -> None:  # fmt: skip
        """``invoke(payload: bytes)`` awaits the function's result (``outcome.error_type``,
        ``outcome.body``), as the service's own invoke does; pollers never outnumber the
        function's concurrency."""
        self.function_concurrency = function_concurrency
        import boto3

        self.mapping, self.invoke, self.region = mapping, invoke, region
        self.sqs = boto3.client("sqs", endpoint_url=endpoint_url, region_name=region,
                                aws_access_key_id="local", aws_secret_access_key="local")  # fmt: skip
        self.queue_url = ""
        self.tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        found = await asyncio.to_thread(self.sqs.get_queue_url, QueueName=self.mapping.queue_name)
        self.queue_url = found["QueueUrl"]
        count = min(self.mapping.max_concurrency or START_POLLERS, START_POLLERS,
                    self.function_concurrency)  # fmt: skip
        self.tasks = [asyncio.create_task(self._poll()) for _ in range(count)]

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.mapping.state = "Disabled"

    async def _receive(self, most: int, wait_s: int) -> list[dict[str, Any]]:
        answer = await asyncio.to_thread(
            self.sqs.receive_message, QueueUrl=self.queue_url, MaxNumberOfMessages=min(most, 10),
            WaitTimeSeconds=wait_s, AttributeNames=["All"], MessageAttributeNames=["All"])  # fmt: skip
        return list(answer.get("Messages", []))

    async def _gather(self) -> list[dict[str, Any]]:
        """One batch: what one poll returns (window 0), or records gathered from the first
        until the batch is full or the window has passed."""
        batch = await self._receive(self.mapping.batch_size, WAIT_S)
        if not batch or self.mapping.window_s == 0:
            return batch
        closes = time.monotonic() + self.mapping.window_s
        while len(batch) < self.mapping.batch_size and (left := closes - time.monotonic()) > 0:
            batch += await self._receive(
                self.mapping.batch_size - len(batch), min(int(left), WAIT_S)
            )
        return batch

    async def _poll(self) -> None:
        while True:
            try:
                batch = await self._gather()
                if batch:
                    await self._deliver(batch)
            except asyncio.CancelledError:
                raise
            except Exception:  # the queue went away, a throttle: wait, try again, as AWS does
                await asyncio.sleep(1.0)

    async def _invoke_until_admitted(self, payload: bytes) -> Any:
        return await _retry_throttled(self.invoke, payload)

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        event = {"Records": [record(m, self.mapping, self.region) for m in batch]}
        self.mapping.invocations += 1
        self.mapping.batches.append(len(batch))
        result = await self._invoke_until_admitted(json.dumps(event).encode())
        if result.outcome.error_type is not None:
            return  # nothing deleted: the batch reappears after the visibility timeout
        done = batch
        if self.mapping.report_failures:
            failed = _failed_ids(result.outcome.body)
            done = [m for m in batch if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(done[start : start + 10])]  # fmt: skip
            await asyncio.to_thread(self.sqs.delete_message_batch, QueueUrl=self.queue_url,
                                    Entries=entries)  # fmt: skip


async def _retry_throttled(invoke: Any, payload: bytes) -> Any:
    """Invoke; while the function is at its concurrency limit, back off (50 ms doubling to
    1 s) and try again with the same batch, as Lambda's pollers do."""
    from labkit.emulator.service import Throttled

    pause = 0.05
    while True:
        try:
            return await invoke(payload)
        except Throttled:
            await asyncio.sleep(pause)
            pause = min(pause * 2, 1.0)


def _failed_ids(body: bytes) -> set[str]:
    """The ``itemIdentifier`` of each ``batchItemFailures`` entry of a function's answer."""
    try:
        answer = json.loads(body or b"{}")
        return {str(f["itemIdentifier"]) for f in answer.get("batchItemFailures", [])}
    except (ValueError, TypeError, KeyError, AttributeError):
        return set()
