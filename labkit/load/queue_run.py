"""Letting the platform batch: requests through an SQS queue and an event-source mapping.

The client sends each request as one SQS message at its scheduled arrival (open loop, as
:mod:`labkit.load.loadgen` releases requests); the mapping's pollers hand the function batches;
the function (``labkit_function.sqs_handler``) sends each prediction, with the moment its
invocation began, to a response queue, which a reader here long-polls. A request's latency
keeps its definition: scheduled arrival to the moment the client sees its answer. Records
come out in the one schema (:mod:`labkit.records`): the batch of a request is the invocation
that answered it; the invocations' Duration, Init Duration and memory come from the
function's REPORT lines. An invocation's ``t_dispatch_s`` is when the first of its messages
left the client, ``t_start_s`` when the platform began it (its handler's start, less Init),
so the steady-state rule (:func:`labkit.metrics.cold_delayed`) reads a queue cell as any other.

:func:`drive` is the client half on any SQS (the local one or AWS's); :func:`run_through_queue`
runs a whole cell on the local Lambda (:class:`labkit.emulator.queues.LocalSqs` plus
:class:`labkit.emulator.LocalLambda`); :func:`sqs_calls` records the SQS calls a cell made
(the mapping's, which AWS does not report, estimated by :func:`sqs_traffic`), for
:func:`labkit.cost.traffic_cost`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import records
from labkit.aws.invoke import parse_report, report_figures
from labkit.cost import sqs_requests
from labkit.emulator import FunctionConfig, LocalLambda, queues
from labkit.emulator.event_sources import START_POLLERS
from labkit.emulator.network import network_profile
from labkit.journal import Journal
from labkit.load.loadgen import Payloads
from labkit.settings import SQS_HANDLER, MappingSettings
from labkit.signals import stopped_by as interrupt_name

READERS = 4  # threads long-polling the response queue (see _Reader)
SENDERS = 8  # threads sending requests (see _send)
__all__ = ["SQS_HANDLER", "MappingSettings", "QueueCell", "drive", "run_through_queue"]


@dataclass
class QueueCell:
    """One cell's records and the SQS calls it cost."""

    result: records.LoadResult
    sends: list[int]  # payload bytes of every request sent
    receives: int  # receive calls by the mapping (estimated, see sqs_traffic)
    deletes: int

    answer_receives: int = 0  # the client's receives that brought answers
    answer_deletes: int = 0

    def traffic(self) -> dict[str, Any]:
        """The cell's SQS calls, as result files keep them (:func:`sqs_calls`)."""
        return sqs_calls(self.result.invocations["batch_size"].to_numpy(int), self.result.wall_s,
                         sends=self.sends, receives=self.receives, deletes=self.deletes,
                         answer_receives=self.answer_receives,
                         answer_deletes=self.answer_deletes)  # fmt: skip


def sqs_calls(batch_sizes: np.ndarray, wall_s: float, *, sends: Sequence[int] | int,
              receives: int, deletes: int, answer_receives: int,
              answer_deletes: int) -> dict[str, int]:  # fmt: skip
    """A queue cell's SQS calls as result files keep them (``facts["sqs"]``;
    :func:`labkit.cost.traffic_cost` prices the billed ones): the request queue's sends
    (the payload bytes of each, billed per 64 KB; or their count where the sizes are not
    known, as in the model: one billed request each), the mapping's receives and deletes,
    the function's answers (one SendMessageBatch per 10 of each batch), and the reader's
    receives that brought answers plus one 20 s long poll per 20 s of ``wall_s`` (as a
    reader on AWS would idle) and its deletes on the response queue. One function for live
    and modelled cells, so both are priced alike."""

    sizes = np.asarray(batch_sizes, dtype=int)
    sent = ({"sends": sends, "billed_sends": sends} if isinstance(sends, int) else
            {"sends": len(sends), "send_bytes": int(sum(sends)), "billed_sends": sqs_requests(sends)})  # fmt: skip
    return {**sent, "receives": receives, "deletes": deletes,
            "answer_sends": int(sum(-(-sizes // 10))),
            "answer_receives": answer_receives + int(wall_s / 20.0),
            "answer_deletes": answer_deletes}  # fmt: skip


@dataclass
class Drive:
    """What the client half of a queue cell saw (times in seconds since ``t0``)."""

    t0: float  # perf_counter at the start
    t0_epoch: float  # time.time() at the start: the function's clock reports epoch seconds
    sent_at: dict[int, float] = field(default_factory=dict)  # request -> released
    sends: list[int] = field(default_factory=list)
    answers: dict[int, tuple[float, dict[str, Any]]] = field(default_factory=dict)
    wall_s: float = 0.0
    stopped_by: str | None = None
    answer_receives: int = 0
    answer_deletes: int = 0


def drive(client: Any, requests_url: str, answers_url: str, arrivals: np.ndarray,
          payloads: Payloads, *, drain_s: float = 30.0, network: Any = None,
          seed: int | None = None, journal: Journal | None = None,
          answer_client: Any = None) -> Drive:  # fmt: skip
    """Send each request at its scheduled arrival, read answers until all are in or
    ``drain_s`` after the last send. ``network`` (a :mod:`labkit.emulator.network` profile)
    puts half a round trip on the way to the queue and half on the way back, as between a
    laptop and a region. A Ctrl-C stops sending and waiting; what was seen is kept
    (``stopped_by``). Answers are journalled as each invocation's last one arrives."""
    halves = _Halves(network, seed)
    t0 = time.perf_counter()
    run = Drive(t0, time.time() - (time.perf_counter() - t0))
    reader = _Reader(answer_client or client, answers_url, run, halves, journal)
    reader.start()
    try:
        _send(client, requests_url, arrivals, payloads, run, halves)
        deadline = time.perf_counter() + drain_s
        while len(run.answers) < len(arrivals) and time.perf_counter() < deadline:
            time.sleep(0.05)
    except KeyboardInterrupt as exc:
        run.stopped_by = interrupt_name(exc)
    finally:
        reader.stop()
        run.wall_s = time.perf_counter() - t0
    return run


def run_through_queue(arrivals: np.ndarray, payloads: Payloads, mapping: MappingSettings,
                      bundle_dir: str | Path, *, slo_s: float = 0.2, memory_mb: int = 1024,
                      concurrency: int = 10, drain_s: float = 30.0, network: Any = None,
                      seed: int | None = None, journal: Journal | None = None,
                      keep_alive_s: float = 600.0, cpu_share: bool = False) -> QueueCell:  # fmt: skip
    """Run ``arrivals`` through fresh queues on the process's local SQS
    (:func:`labkit.emulator.queues.shared`), a fresh mapping and function (so the cell pays its own
    cold starts); wait up to ``drain_s`` after the last arrival for the answers (the rest
    are ``NoAnswer``)."""

    sqs = queues.shared()
    client = sqs.client()
    tag = uuid.uuid4().hex[:12]
    requests_url = client.create_queue(QueueName=f"requests-{tag}",
                                       Attributes={"VisibilityTimeout": "60"})["QueueUrl"]  # fmt: skip
    answers_url = client.create_queue(QueueName=f"answers-{tag}")["QueueUrl"]
    environment = {"LABKIT_RESPONSE_QUEUE_URL": answers_url, "AWS_ENDPOINT_URL_SQS": sqs.endpoint_url,
                   "AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}  # fmt: skip
    function = FunctionConfig("queued", Path(bundle_dir), handler=SQS_HANDLER, memory_mb=memory_mb,
                              concurrency=concurrency, environment=environment,
                              keep_alive_s=keep_alive_s, cpu_share=cpu_share)  # fmt: skip
    try:
        with LocalLambda([function], sqs_endpoint_url=sqs.endpoint_url) as lam:
            created = lam.client().create_event_source_mapping(
                EventSourceArn=queues.queue_arn(f"requests-{tag}"), FunctionName="queued",
                **mapping_parameters(mapping))  # fmt: skip
            run = drive(client, requests_url, answers_url, arrivals, payloads, drain_s=drain_s,
                        network=network, seed=seed, journal=journal, answer_client=sqs.client())  # fmt: skip
            found = lam.mapping(created["UUID"])
            lam.client().delete_event_source_mapping(UUID=created["UUID"])
            logs = lam.logs("queued")
    finally:
        for url in (requests_url, answers_url):
            with contextlib.suppress(Exception):  # the server went with an interrupted run
                client.delete_queue(QueueUrl=url)
    cell = queue_cell(run, logs, arrivals, payloads, mapping, slo_s=slo_s, concurrency=concurrency)
    cell.result.facts["sqs_mapping"] = {
        "BatchSize": found.get("BatchSize"), "MaximumBatchingWindowInSeconds": found.get(
            "MaximumBatchingWindowInSeconds"), "ScalingConfig": found.get("ScalingConfig"),
        "peak_pollers": found.get("labkit", {}).get("peak_pollers")}  # fmt: skip
    return cell


def mapping_parameters(mapping: MappingSettings) -> dict[str, Any]:
    """``CreateEventSourceMapping``'s batching parameters for ``mapping``."""
    out: dict[str, Any] = {"BatchSize": mapping.batch_size,
                           "MaximumBatchingWindowInSeconds": mapping.window_s}  # fmt: skip
    if mapping.max_concurrency:
        out["ScalingConfig"] = {"MaximumConcurrency": mapping.max_concurrency}
    return out


def queue_cell(run: Drive, log_lines: list[str], arrivals: np.ndarray, payloads: Payloads,
               mapping: MappingSettings, *, slo_s: float, concurrency: int) -> QueueCell:  # fmt: skip
    """The records of a driven cell, from its answers and the function's REPORT lines."""
    invocations = _invocations(log_lines)
    _place(invocations, run, mapping, concurrency)
    requests = _requests(arrivals, run, invocations, payloads, slo_s)
    complete = run.stopped_by is None and len(run.answers) >= len(arrivals)
    stopped = run.stopped_by or (None if complete else "NoAnswer")
    result = records.LoadResult(requests, invocations, complete, stopped, run.wall_s)
    cell = QueueCell(result, run.sends, *sqs_traffic(len(invocations), run.wall_s, mapping),
                     answer_receives=run.answer_receives, answer_deletes=run.answer_deletes)  # fmt: skip
    result.facts["sqs"] = cell.traffic()  # what labkit.cost.traffic_cost prices
    return cell


def sqs_traffic(invocations: int, wall_s: float, mapping: MappingSettings,
                wait_s: float = 20.0) -> tuple[int, int]:  # fmt: skip
    """Receive and delete calls an AWS mapping makes in ``wall_s``: every batch needs at
    least ``ceil(batch/10)`` receives and one delete call; idle pollers (AWS starts five)
    long-poll every ``wait_s``. An estimate: AWS does not report its pollers' calls."""
    per_batch = math.ceil(mapping.batch_size / 10)
    pollers = min(mapping.max_concurrency or START_POLLERS, START_POLLERS)
    idle = int(pollers * wall_s / wait_s)
    return invocations * per_batch + idle, invocations


class _Halves:
    """Half a network round trip each way (0 without a network profile)."""

    def __init__(self, network: Any, seed: int | None) -> None:

        profile = network_profile(network)
        self._draws = profile.sampler(seed) if profile else None

    def next_s(self) -> float:
        return self._draws.next_s() / 2.0 if self._draws else 0.0


class _Reader:
    """Long-polls the response queue from :data:`READERS` threads; notes when each answer was
    first seen, and journals an invocation's requests once all its answers are in.

    Why several: a long poll returns as soon as one message is visible, often with one or
    two, so one reader on the local SQS saw at most ~20 answers/s; under 60 requests/s bursts
    answers queued for the reader and their latency grew by ~0.7 s (measured), the
    apparatus rather than the system under test."""

    def __init__(self, client: Any, url: str, run: Drive, halves: _Halves,
                 journal: Journal | None) -> None:  # fmt: skip
        self.client, self.url, self.run = client, url, run
        self.halves, self.journal = halves, journal
        self._stop = threading.Event()
        self._lock = threading.Lock()  # held while answers are noted, and to stop
        self._threads = [threading.Thread(target=self._loop, daemon=True, name=f"answers-{k}")
                         for k in range(READERS)]  # fmt: skip
        self._waiting: dict[str, list[int]] = defaultdict(list)

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """No answer is noted after this returns; a long poll in flight is abandoned (not
        waited for: it would cost up to its wait, 1 s, per cell)."""
        with self._lock:
            self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._receive()
            except Exception:  # the queue is gone (torn down) or the endpoint hiccuped
                if not self._stop.wait(0.2):
                    continue

    def _receive(self) -> None:
        got = self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10,
                                          WaitTimeSeconds=1)  # fmt: skip
        now = time.perf_counter() - self.run.t0
        messages = got.get("Messages", [])
        with self._lock:
            if self._stop.is_set():
                return
            self._note(messages, now)
        if messages:
            self.run.answer_deletes += 1
            self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])  # fmt: skip

    def _note(self, messages: list[dict[str, Any]], now: float) -> None:
        # Billed as AWS would bill a reader: the receives that brought answers, and one
        # 20 s long poll per idle stretch (QueueCell.traffic); this reader's own empty 1 s
        # polls from four threads are the apparatus, not the architecture.
        self.run.answer_receives += 1 if messages else 0
        for message in messages:
            body = json.loads(message["Body"])
            request = int(body["id"])
            if request in self.run.answers:
                continue  # a redelivered batch answered again: the first answer counts
            self.run.answers[request] = (now + self.halves.next_s(), body)
            self._journal(body)

    def _journal(self, body: dict[str, Any]) -> None:
        if self.journal is None:
            return
        invocation = str(body.get("invocation", ""))
        waiting = self._waiting[invocation]
        waiting.append(int(body["id"]))
        if len(waiting) < int(body.get("batch_size", 1)):
            return
        ids = self._waiting.pop(invocation)
        done = max(self.run.answers[i][0] for i in ids)
        self.journal.append(
            [_request(i, self.run, self.run.answers[i], None, math.nan) for i in ids],
            records.InvocationRecord(
                batch_id=-1, batch_size=len(ids), t_dispatch_s=math.nan, t_start_s=math.nan,
                t_done_s=done, round_trip_ms=math.nan, throttles=0, cold_start=False,
                init_duration_ms=math.nan, duration_ms=math.nan, billed_duration_ms=math.nan,
                memory_size_mb=math.nan, max_memory_used_mb=math.nan, error=None,
                aws_request_id=invocation),
        )  # fmt: skip


def _send(client: Any, url: str, arrivals: np.ndarray, payloads: Payloads, run: Drive,
          halves: _Halves) -> None:  # fmt: skip
    """Each request as one message at its scheduled arrival plus half a round trip (the
    message's flight to the region), handed to one of :data:`SENDERS` threads; its release
    is noted without that flight. Why threads: one SendMessage at a time kept up with about
    30 requests/s on the local SQS here, and a 60/s burst fell 2 s behind (measured): the
    apparatus, not the system under test."""
    n = len(payloads.instances)
    arrivals = np.asarray(arrivals, dtype=float)
    flight = np.array([halves.next_s() for _ in range(len(arrivals))])
    due = arrivals + flight

    def send(i: int, body: str, released: float) -> None:
        client.send_message(QueueUrl=url, MessageBody=body)
        run.sent_at[i] = released  # only once sent: a cancelled send is NotSent
        run.sends.append(len(body.encode()))

    pool = ThreadPoolExecutor(SENDERS, thread_name_prefix="send")
    try:
        for i in np.argsort(due, kind="stable").tolist():
            delay = due[i] - (time.perf_counter() - run.t0)
            if delay > 0:
                time.sleep(delay)
            body = json.dumps({**payloads.instances[i % n], "id": str(i)})
            pool.submit(send, i, body, float(time.perf_counter() - run.t0 - flight[i]))
    except BaseException:  # a Ctrl-C: what was not sent yet is not sent
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _place(invocations: pd.DataFrame, run: Drive, mapping: MappingSettings,
           concurrency: int) -> None:  # fmt: skip
    """Each invocation's times from its answers: started when the platform began it (handler
    start less Init), done when it ended on the platform (start, Init and Duration: its
    poller is free again; its requests are done when their answers are seen), dispatched as
    :func:`place_dispatch` says; batch sizes from the answers."""
    members: dict[str, list[int]] = defaultdict(list)
    started: dict[str, float] = {}
    for request, (_, body) in run.answers.items():
        invocation = str(body.get("invocation", ""))
        members[invocation].append(request)
        if "started" in body:
            started[invocation] = float(body["started"]) - run.t0_epoch
    firsts = np.full(len(invocations), np.nan)  # each batch's first message's release
    for row in range(len(invocations)):
        invocation = invocations.at[row, "aws_request_id"]
        ids = members.get(invocation, [])
        if not ids:
            continue
        init_s = invocations.at[row, "init_duration_ms"]
        init_s = 0.0 if pd.isna(init_s) else float(init_s) / 1000.0
        begun = started.get(invocation, math.nan) - init_s
        ended = begun + init_s + float(invocations.at[row, "duration_ms"]) / 1000.0
        invocations.at[row, "batch_size"] = len(ids)
        released = [run.sent_at.get(i, math.nan) for i in ids]
        invocations.at[row, "t_dispatch_s"] = ready_at(released, mapping)
        firsts[row] = min(released)
        invocations.at[row, "t_start_s"] = begun
        invocations.at[row, "t_done_s"] = ended
        invocations.at[row, "round_trip_ms"] = (ended - begun) * 1000.0
    place_dispatch(invocations, firsts, mapping, concurrency)


def place_dispatch(invocations: pd.DataFrame, first: np.ndarray, mapping: MappingSettings,
                   concurrency: int) -> None:  # fmt: skip
    """A queue invocation's dispatch, read by :func:`labkit.metrics.cold_delayed` as it reads
    a direct one's (an invocation that began after its dispatch waited).

    On entry ``t_dispatch_s`` is when its batch was ready (:func:`ready_at`); ``first`` is
    when each batch's first message was released. The transport (the send, the flight, a
    waiting long poll's return) is the cell's floor: the 10th percentile of how long after
    readiness warm invocations began once every cold start had ended. An invocation waited
    when, at its readiness plus that floor, every poller (five, or fewer when the function's
    or the mapping's concurrency is lower) was busy: invoking, or gathering a window since
    its batch's first message. Such an invocation is dispatched at readiness plus the floor;
    any other began as soon as the transport allowed, and is dispatched when it began. Why not
    a fixed allowance: any fixed one either counts the transport's own jitter as waiting
    (and at high rates the rule's chain of delays then never ends) or, when estimated from a
    short cell, is swollen by the backlog its cold starts left."""
    ready = invocations["t_dispatch_s"].to_numpy(float)
    begun = invocations["t_start_s"].to_numpy(float)
    ends = invocations["t_done_s"].to_numpy(float)
    cold = invocations["cold_start"].to_numpy(bool)
    # Cold starts of an interrupted cell may have no known end: with none known, no
    # invocation counts as after them (NaN), as np.nanmax gave, without its warning.
    known = ends[cold & np.isfinite(ends)]
    last_cold = known.max() if known.size else (np.nan if cold.any() else -np.inf)
    after = begun - ready
    warm = ~cold & (begun > last_cold) & np.isfinite(after)
    floor = max(float(np.percentile(after[warm], 10)), 0.0) if warm.any() else 0.0
    busy_from = np.where(mapping.window_s > 0, np.minimum(first + floor, begun), begun)
    at = ready + floor
    starts, stops = np.sort(busy_from), np.sort(ends)
    busy = np.searchsorted(starts, at, side="right") - np.searchsorted(stops, at, side="right")
    busy -= (busy_from <= at) & (at < ends)  # not itself
    pollers = min(START_POLLERS, concurrency, mapping.max_concurrency or START_POLLERS)
    waited = cold | (busy >= pollers)
    invocations["t_dispatch_s"] = np.where(waited, at, np.minimum(begun, at))


def ready_at(released: list[float], mapping: MappingSettings) -> float:
    """When a batch of messages released at ``released`` could have gone, had a poller been
    waiting: with window 0, when its first message was sent (a waiting poller takes what is
    visible, so a batch of several means they waited); with a window, when the window after
    its first message closed, or when its last message was sent if that filled the batch.
    :func:`place_dispatch` adds the transport to this."""
    first, last = min(released), max(released)
    if mapping.window_s == 0:
        return first
    if len(released) >= mapping.batch_size:
        return min(last, first + mapping.window_s)
    return first + mapping.window_s


def _request(i: int, run: Drive, answer: tuple[float, dict[str, Any]] | None,
             invocation: Any, arrival: float) -> records.RequestRecord:  # fmt: skip
    """One request's record from its answer (``None``: never answered)."""
    seen, body = answer if answer is not None else (math.nan, {})
    predicted = body.get("label")
    unanswered = "NoAnswer" if i in run.sent_at else "NotSent"
    error = None if body and not body.get("error") else (body.get("error") or unanswered)
    sent = run.sent_at.get(i, math.nan)
    return records.RequestRecord(
        request_id=i, t_arrive_s=arrival, t_release_s=sent,
        batch_id=int(invocation.batch_id) if invocation is not None else -1,
        batch_size=float(body.get("batch_size", math.nan)), t_done_s=seen,
        t_dispatch_s=float(invocation.t_dispatch_s) if invocation is not None else sent,
        latency_ms=(seen - arrival) * 1000.0 if body else math.nan, label=-1,
        predicted=float(predicted) if predicted is not None else math.nan, correct=False,
        cold_start=bool(invocation.cold_start) if invocation is not None else False,
        init_duration_ms=float(invocation.init_duration_ms) if invocation is not None else math.nan,
        billed_duration_ms=float(invocation.billed_duration_ms) if invocation is not None else math.nan,
        error=error,
    )  # fmt: skip


def _requests(arrivals: np.ndarray, run: Drive, invocations: pd.DataFrame, payloads: Payloads,
              slo_s: float) -> pd.DataFrame:  # fmt: skip
    by_request_id = {
        rid: row
        for rid, row in zip(invocations["aws_request_id"], invocations.itertuples(), strict=True)
    }
    rows = []
    for i, t in enumerate(np.asarray(arrivals, dtype=float).tolist()):
        answer = run.answers.get(i)
        invocation = by_request_id.get(answer[1].get("invocation")) if answer else None
        row = _request(i, run, answer, invocation, t)
        label = payloads.label(i) if len(payloads.labels) else -1
        rows.append(dataclasses.replace(
            row, label=label, correct=not math.isnan(row.predicted) and row.predicted == label))  # fmt: skip
    return records.requests_frame(rows)


def _invocations(log_lines: list[str]) -> pd.DataFrame:
    """One row per REPORT line of the function (its invocations). An entry of ``log_lines``
    is a REPORT line, maybe preceded by its environment's init lines
    (:meth:`labkit.aws.queue_source.AwsQueueSource.report_lines`)."""
    rows: list[dict[str, Any]] = []
    reports = [report for text in log_lines if (report := parse_report(text)) is not None]
    for number, report in enumerate(reports):
        figures = report_figures(report)
        rows.append({
            "batch_id": number, "batch_size": 0, "t_dispatch_s": math.nan, "t_start_s": math.nan,
            "t_done_s": math.nan, "round_trip_ms": math.nan, "throttles": 0,
            "cold_start": report.cold_start, **figures, "error": report.error_type,
            "aws_request_id": report.request_id,
        })  # fmt: skip
    return records.invocations_frame([records.InvocationRecord(**row) for row in rows])
