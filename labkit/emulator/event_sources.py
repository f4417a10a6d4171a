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
itself does that: the queue is moto's). Scaling follows AWS's description: five pollers to
start, one more every 0.2 s (300 a minute) while the queue holds visible messages, up to the
mapping's maximum concurrency (1,250 without one) and never more than the function's
concurrency; a poller above the first five whose long poll comes back empty retires. A
throttled invocation is retried with the same batch after a back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from labkit.emulator.service import Throttled
from labkit.settings import MappingError, check_mapping

ARN = re.compile(r"arn:aws:sqs:([a-z0-9-]+):(\d{12}):([A-Za-z0-9_-]{1,80}(\.fifo)?)")
START_POLLERS = 5  # AWS starts an SQS mapping with five pollers
MAX_POLLERS = 1250  # AWS: an SQS mapping scales to at most 1,250 concurrent invocations
SCALE_STEP_S = 0.2  # AWS adds up to 300 concurrent invocations a minute while messages wait
WAIT_S = 1  # long-poll wait per receive (short, so a stopped mapping ends quickly)


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
    pollers: int = 0  # pollers now
    peak_pollers: int = 0

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
    size = body.get("BatchSize", 10)
    window = body.get("MaximumBatchingWindowInSeconds", 0)
    concurrency = (body.get("ScalingConfig") or {}).get("MaximumConcurrency")
    check_mapping(size, window, concurrency, fifo=arn.endswith(".fifo"))
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
        self.scaler: asyncio.Task[None] | None = None
        self._deleting: set[asyncio.Task[None]] = set()

    @property
    def most_pollers(self) -> int:
        return min(self.mapping.max_concurrency or MAX_POLLERS, MAX_POLLERS,
                   self.function_concurrency)  # fmt: skip

    @property
    def least_pollers(self) -> int:
        return min(START_POLLERS, self.most_pollers)

    async def start(self) -> None:
        found = await asyncio.to_thread(self.sqs.get_queue_url, QueueName=self.mapping.queue_name)
        self.queue_url = found["QueueUrl"]
        for _ in range(self.least_pollers):
            self._add_poller()
        self.scaler = asyncio.create_task(self._scale())

    async def stop(self) -> None:
        tasks = [self.scaler, *self.tasks] if self.scaler is not None else list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.mapping.state = "Disabled"

    def _add_poller(self) -> None:
        self.tasks.append(asyncio.create_task(self._poll()))
        self.mapping.pollers = len(self.tasks)
        self.mapping.peak_pollers = max(self.mapping.peak_pollers, self.mapping.pollers)

    async def _scale(self) -> None:
        """One more poller per step while messages wait, up to :attr:`most_pollers`."""
        while True:
            await asyncio.sleep(SCALE_STEP_S)
            if len(self.tasks) >= self.most_pollers:
                continue
            try:
                answer = await asyncio.to_thread(
                    self.sqs.get_queue_attributes, QueueUrl=self.queue_url,
                    AttributeNames=["ApproximateNumberOfMessages"])  # fmt: skip
            except Exception:  # the queue went away: nothing to scale for
                continue
            if int(answer["Attributes"].get("ApproximateNumberOfMessages", 0)) > 0:
                self._add_poller()

    async def _receive(self, most: int, wait_s: int) -> list[dict[str, Any]]:
        answer = await _in_daemon_thread(
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
                elif len(self.tasks) > self.least_pollers:  # idle beyond the first five: retire
                    self.tasks.remove(asyncio.current_task())  # type: ignore[arg-type]
                    self.mapping.pollers = len(self.tasks)
                    return
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
        # Deleted in the background: the poller goes back to the queue at once (a delete
        # awaited here added its round trip to every batch's cycle, ~10-50 ms measured).
        deleting = asyncio.create_task(self._delete(done))
        self._deleting.add(deleting)
        deleting.add_done_callback(self._deleting.discard)

    async def _delete(self, messages: list[dict[str, Any]]) -> None:
        for start in range(0, len(messages), 10):
            entries = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                       for i, m in enumerate(messages[start : start + 10])]  # fmt: skip
            with contextlib.suppress(Exception):  # not deleted: it comes back, as on AWS
                await _in_daemon_thread(self.sqs.delete_message_batch, QueueUrl=self.queue_url,
                                        Entries=entries)  # fmt: skip


async def _in_daemon_thread(call: Any, **kwargs: Any) -> Any:
    """``call(**kwargs)`` in a daemon thread of its own. Why not ``asyncio.to_thread``: a
    long poll cannot be interrupted, and the default executor's threads are waited for when
    the service stops, so every stop took up to a poll's wait (about 1 s measured per queue
    cell); a stopped mapping's last long poll is simply abandoned instead."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(result: Any, error: BaseException | None) -> None:
        if done.done():
            return
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)

    def run() -> None:
        try:
            result, error = call(**kwargs), None
        except Exception as exc:
            result, error = None, exc
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(settle, result, error)

    threading.Thread(target=run, daemon=True, name="sqs-poll").start()
    return await done


async def _retry_throttled(invoke: Any, payload: bytes) -> Any:
    """Invoke; while the function is at its concurrency limit, back off (50 ms doubling to
    1 s) and try again with the same batch, as Lambda's pollers do."""

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
