"""Letting the platform batch: requests through an SQS queue and an event-source mapping.

The client sends each request as one SQS message at its scheduled arrival (open loop, as
:mod:`labkit.loadgen` releases requests); the mapping's pollers hand the function batches;
the function (``labkit_function.sqs_handler``) sends each prediction to a response queue,
which a reader here long-polls. A request's latency keeps its definition: scheduled arrival
to the moment the client sees its answer. Records come out in the one schema
(:mod:`labkit.records`): the batch of a request is the invocation that answered it, and the
invocations' Duration, Init Duration and memory come from the function's REPORT lines.

:func:`run_through_queue` runs one cell on the local Lambda (:class:`labkit.queues.LocalSqs`
plus :class:`labkit.emulator.LocalLambda`); :func:`sqs_traffic` counts the SQS calls a cell
made, for :func:`labkit.cost.sqs_cost`.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import records
from labkit.invoke import parse_report, report_figures
from labkit.loadgen import Payloads

SQS_HANDLER = "labkit_function.sqs_handler.handler"


@dataclass(frozen=True)
class MappingSettings:
    """The event-source mapping under test (AWS's parameters)."""

    batch_size: int = 10
    window_s: int = 0  # MaximumBatchingWindowInSeconds: whole seconds, 0-300
    max_concurrency: int | None = None

    @property
    def label(self) -> str:
        return f"sqs-{self.batch_size}-{self.window_s}s"


@dataclass
class QueueCell:
    """One cell's records and the SQS calls it cost."""

    result: records.LoadResult
    sends: list[int]  # payload bytes of every request sent
    receives: int  # receive calls by the mapping (estimated, see sqs_traffic)
    deletes: int


def run_through_queue(arrivals: np.ndarray, payloads: Payloads, mapping: MappingSettings,
                      bundle_dir: str | Path, *, slo_s: float = 0.2, memory_mb: int = 1024,
                      concurrency: int = 10, drain_s: float = 30.0) -> QueueCell:  # fmt: skip
    """Run ``arrivals`` through a fresh local SQS, mapping and function; wait up to
    ``drain_s`` after the last arrival for the answers (the rest are ``NoAnswer``)."""
    from labkit.emulator import FunctionConfig, LocalLambda
    from labkit.queues import LocalSqs, queue_arn

    with LocalSqs() as sqs:
        client = sqs.client()
        requests_url = client.create_queue(
            QueueName="requests", Attributes={"VisibilityTimeout": "60"}
        )["QueueUrl"]
        answers_url = client.create_queue(QueueName="answers")["QueueUrl"]
        environment = {"LABKIT_RESPONSE_QUEUE_URL": answers_url, "AWS_ENDPOINT_URL_SQS": sqs.endpoint_url,
                       "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}  # fmt: skip
        function = FunctionConfig("queued", Path(bundle_dir), handler=SQS_HANDLER, memory_mb=memory_mb,
                                  concurrency=concurrency, environment=environment)  # fmt: skip
        with LocalLambda([function], sqs_endpoint_url=sqs.endpoint_url) as lam:
            scaling = (
                {"ScalingConfig": {"MaximumConcurrency": mapping.max_concurrency}}
                if mapping.max_concurrency
                else {}
            )
            created = lam.client().create_event_source_mapping(
                EventSourceArn=queue_arn("requests"), FunctionName="queued", BatchSize=mapping.batch_size,
                MaximumBatchingWindowInSeconds=mapping.window_s, **scaling)  # fmt: skip
            answers: dict[int, tuple[float, dict[str, Any]]] = {}
            reader = _Reader(sqs.client(), answers_url, answers)
            started = time.perf_counter()
            reader.start(started)
            sent_at, sends = _send(client, requests_url, arrivals, payloads, started)
            deadline = time.perf_counter() + drain_s
            while len(answers) < len(arrivals) and time.perf_counter() < deadline:
                time.sleep(0.05)
            reader.stop()
            wall_s = time.perf_counter() - started
            lam.client().delete_event_source_mapping(UUID=created["UUID"])
            logs = lam.logs("queued")
    sizes = {body.get("invocation"): body.get("batch_size", 0) for _, body in answers.values()}
    invocations = _invocations(logs)
    invocations["batch_size"] = invocations["aws_request_id"].map(sizes).fillna(0).astype(int)
    requests = _requests(arrivals, sent_at, answers, invocations, payloads, slo_s)
    complete = len(answers) >= len(arrivals)
    result = records.LoadResult(
        requests, invocations, complete, None if complete else "NoAnswer", wall_s
    )
    return QueueCell(result, sends, *sqs_traffic(len(invocations), wall_s, mapping))


def sqs_traffic(invocations: int, wall_s: float, mapping: MappingSettings,
                wait_s: float = 20.0) -> tuple[int, int]:  # fmt: skip
    """Receive and delete calls an AWS mapping makes in ``wall_s``: every batch needs at
    least ``ceil(batch/10)`` receives and one delete call; idle pollers (AWS starts five)
    long-poll every ``wait_s``. An estimate: AWS does not report its pollers' calls."""
    from labkit.emulator.event_sources import START_POLLERS

    per_batch = math.ceil(mapping.batch_size / 10)
    pollers = min(mapping.max_concurrency or START_POLLERS, START_POLLERS)
    idle = int(pollers * wall_s / wait_s)
    return invocations * per_batch + idle, invocations


class _Reader:
    """Long-polls the response queue; notes when each answer was first seen."""

    def __init__(
        self, client: Any, url: str, answers: dict[int, tuple[float, dict[str, Any]]]
    ) -> None:
        self.client, self.url, self.answers = client, url, answers
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="answers")
        self._t0 = 0.0

    def start(self, t0: float) -> None:
        self._t0 = t0
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self.client.receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=1
            )
            seen = time.perf_counter() - self._t0
            messages = got.get("Messages", [])
            for message in messages:
                body = json.loads(message["Body"])
                self.answers.setdefault(int(body["id"]), (seen, body))
            if messages:
                self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])  # fmt: skip


def _send(client: Any, url: str, arrivals: np.ndarray, payloads: Payloads,
          t0: float) -> tuple[list[float], list[int]]:  # fmt: skip
    """Each request as one message at its scheduled arrival; returns when each was sent
    (seconds since ``t0``) and its payload size."""
    sent_at, sizes = [], []
    n = len(payloads.instances)
    for i, t in enumerate(arrivals):
        delay = t - (time.perf_counter() - t0)
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({**payloads.instances[i % n], "id": str(i)})
        client.send_message(QueueUrl=url, MessageBody=body)
        sent_at.append(time.perf_counter() - t0)
        sizes.append(len(body.encode()))
    return sent_at, sizes


def _invocations(log_lines: list[str]) -> pd.DataFrame:
    """One row per REPORT line of the function (its invocations)."""
    rows: list[dict[str, Any]] = []
    reports = [line for line in log_lines if line.lstrip().startswith("REPORT ")]
    for number, line in enumerate(reports):
        report = parse_report(line)
        if report is None:
            continue
        figures = report_figures(report)
        rows.append({
            "batch_id": number, "batch_size": 0, "t_dispatch_s": math.nan, "t_start_s": math.nan,
            "t_done_s": math.nan, "round_trip_ms": math.nan, "throttles": 0,
            "cold_start": report.cold_start, **figures, "error": report.error_type,
            "aws_request_id": report.request_id,
        })  # fmt: skip
    return records.invocations_frame([records.InvocationRecord(**row) for row in rows])


def _requests(arrivals: np.ndarray, sent_at: list[float], answers: dict[int, tuple[float, dict[str, Any]]],
              invocations: pd.DataFrame, payloads: Payloads, slo_s: float) -> pd.DataFrame:  # fmt: skip
    by_request_id = {
        rid: row
        for rid, row in zip(invocations["aws_request_id"], invocations.itertuples(), strict=True)
    }
    rows = []
    for i, t in enumerate(arrivals):
        seen, body = answers.get(i, (math.nan, {}))
        invocation = by_request_id.get(body.get("invocation"))
        label = payloads.label(i) if len(payloads.labels) else -1
        predicted = body.get("label")
        error = None if body and not body.get("error") else (body.get("error") or "NoAnswer")
        rows.append(records.RequestRecord(
            request_id=i, t_arrive_s=float(t), t_release_s=sent_at[i] if i < len(sent_at) else math.nan,
            batch_id=int(invocation.batch_id) if invocation is not None else -1,
            batch_size=float(body.get("batch_size", math.nan)), t_dispatch_s=math.nan, t_done_s=seen,
            latency_ms=(seen - float(t)) * 1000.0 if body else math.nan, label=label,
            predicted=float(predicted) if predicted is not None else math.nan,
            correct=predicted is not None and predicted == label,
            cold_start=bool(invocation.cold_start) if invocation is not None else False,
            init_duration_ms=float(invocation.init_duration_ms) if invocation is not None else math.nan,
            billed_duration_ms=float(invocation.billed_duration_ms) if invocation is not None else math.nan,
            error=error,
        ))  # fmt: skip
    return records.requests_frame(rows)
