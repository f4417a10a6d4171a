"""The open-loop load generator: release requests on schedule, batch them, invoke, record.

Open loop means a request is released at its scheduled time whatever is still in flight, so
a slow function shows up as latency, not as a quietly slower request rate (no coordinated
omission). Latency is measured from the *scheduled* arrival, and the actual release time is
recorded beside it so schedule lag is visible.

Threads, not asyncio: the invocation client is boto3 (blocking, thread-safe), invocations run
in a pool of ``max_in_flight`` workers, and the scheduling loop runs in the caller's thread.
The batching policy is only ever touched by the scheduling loop; workers send it feedback
through a queue.

Every arrival ends as exactly one request record, also when the run stops early: requests
never sent are recorded with error ``NotSent``, those still in flight after the drain bound
with ``Abandoned``, and the result is marked incomplete. With a journal
(:mod:`labkit.journal`), each invocation's records also go to disk the moment it ends, so a
run killed outright keeps them.
"""

from __future__ import annotations

import gc
import math
import queue
import random
import sys
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labkit.aws.account import error_code
from labkit.aws.invoke import InvocationResult, ThrottledError, report_figures
from labkit.function.tensor_codec import InputSpec, encode
from labkit.journal import Journal
from labkit.load.batching import Batch, BatchingPolicy, Request
from labkit.load.prewarm import PredictivePrewarm
from labkit.records import (
    InvocationRecord,
    LoadResult,
    RequestRecord,
    invocations_frame,
    requests_frame,
)
from labkit.signals import stopped_by as interrupt_name

SWITCH_INTERVAL_S = 0.0002


#: A throttled (429) invocation's first back-off; each retry doubles it up to the cap, and
#: each wait is jittered by [0.5, 1.5) (the simulator models the same rule).
THROTTLE_BACKOFF_S, THROTTLE_BACKOFF_MAX_S = 0.02, 1.0
#: How long a throttled invocation is retried before it fails with ``THROTTLED_ERROR``.
THROTTLE_RETRY_S = 30.0
THROTTLED_ERROR = "TooManyRequestsException"


def next_backoff_s(backoff_s: float) -> float:
    """The back-off after ``backoff_s``: doubled, at most :data:`THROTTLE_BACKOFF_MAX_S`."""
    return min(backoff_s * 2, THROTTLE_BACKOFF_MAX_S)


@dataclass(frozen=True)
class LoadConfig:
    """How the generator drives the function."""

    max_in_flight: int = 10  # concurrent invocations at most (the function's concurrency)
    throttle_retry_s: float = THROTTLE_RETRY_S  # keep retrying a 429 this long, with backoff
    drain_timeout_s: float = 60.0  # on stop: wait this long for invocations in flight
    #: Stop the run when this many first invocations all failed for a reason other than
    #: throttling (a missing function, expired credentials, a model that does not load): the
    #: rest would fail alike. 0 never stops.
    fail_fast_after: int = 10
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_in_flight < 1:
            raise ValueError(f"max_in_flight must be >= 1, not {self.max_in_flight}")
        if self.throttle_retry_s < 0 or self.drain_timeout_s < 0:
            raise ValueError("throttle_retry_s and drain_timeout_s must be >= 0")
        if self.fail_fast_after < 0:
            raise ValueError(f"fail_fast_after must be >= 0, not {self.fail_fast_after}")


@dataclass
class Payloads:
    """The images requests carry, pre-encoded: request ``i`` sends image ``i % len``."""

    instances: list[dict[str, str]]
    labels: np.ndarray

    @classmethod
    def from_split(cls, split: Any, limit: int | None = 1000) -> Payloads:
        from labkit.data import make_instances  # deferred: torch (a simulated run needs none)

        split = split.head(limit) if limit else split
        return cls(make_instances(split.images), np.asarray(split.labels))

    @classmethod
    def for_input(cls, spec: str, codec: str = "tensor", n: int = 16, seed: int = 0) -> Payloads:
        """``n`` random inputs of ``spec`` (any model's, :class:`labkit.function.tensor_codec.InputSpec`)
        sent as ``codec`` says; no labels (-1: accuracy is not measured)."""
        inputs = InputSpec.parse(spec).random(n, seed)
        return cls([encode(x, codec) for x in inputs], np.full(n, -1, dtype=np.int64))

    @classmethod
    def empty(cls) -> Payloads:
        """No images: for backends that send no real invocations (the simulator)."""
        return cls([], np.empty(0, dtype=np.int64))

    def event(self, batch: Batch) -> dict[str, Any]:
        n = len(self.instances)
        return {"instances": [{**self.instances[r.id % n], "id": str(r.id)} for r in batch]}

    def label(self, request_id: int) -> int:
        return int(self.labels[request_id % len(self.labels)])


#: Invoke the function under test with one event (a backend's ``invoke``).
Invoke = Callable[[dict[str, Any]], InvocationResult]


class _Run:
    """One run's mutable state, shared by the scheduling loop and the workers."""

    def __init__(self, n: int, journal: Journal | None = None) -> None:
        self.lock = threading.Lock()
        self.journal = journal
        self.request_rows: dict[int, RequestRecord] = {}
        self.invocation_rows: list[InvocationRecord] = []
        self.feedback: queue.SimpleQueue[tuple[int, float, bool]] = queue.SimpleQueue()
        self.done = self.errors = self.in_flight = 0
        self.n = n
        self.first_errors: list[str | None] = []  # the first invocations' errors, in order
        self.failing: str | None = None  # why the run must stop (set by a worker)


class FirstInvocationsFailed(RuntimeError):
    """The first invocations all failed alike: the run stops instead of failing the rest."""


def run_load(
    arrivals: Sequence[float] | np.ndarray,
    policy: BatchingPolicy,
    invoke: Invoke,
    payloads: Payloads,
    config: LoadConfig | None = None,
    *,
    slo_s: float = math.inf,
    prewarm: PredictivePrewarm | None = None,
    journal: Journal | None = None,
) -> LoadResult:
    """Drive ``invoke`` with ``arrivals`` (seconds from start) batched by ``policy``.

    With ``prewarm``, warm-up invocations (batch size 0 in the invocation records) are sent
    when it says the arrival rate is about to outgrow the warm instances. With ``journal``,
    every invocation's records are appended to it as the invocation ends."""
    config = config or LoadConfig()
    times = np.asarray(arrivals, dtype=float)
    if times.ndim != 1 or (times.size and (np.diff(times) < 0).any()):
        raise ValueError("arrivals must be a sorted 1-D sequence of seconds")
    state = _Run(len(times), journal)
    schedule, n = times.tolist(), len(times)
    releases: dict[int, float] = {}
    pending: dict[Future[None], Batch] = {}
    stopped_by: str | None = None
    bar = _progress_bar(len(times), config.progress)
    pool = ThreadPoolExecutor(config.max_in_flight, thread_name_prefix="labkit-invoke")
    start = time.perf_counter()

    def clock() -> float:
        return time.perf_counter() - start

    warmup_event = prewarm.event() if prewarm is not None else {}

    def dispatch(batch: Batch, now: float) -> None:
        """Send ``batch`` (an empty one is a warm-up)."""
        batch_id = len(pending)
        with state.lock:
            state.in_flight += 1
            in_flight = state.in_flight
        if prewarm is not None:
            prewarm.started(now, in_flight)
        future = pool.submit(_invoke_batch, state, invoke, warmup_event, payloads, config, batch,
                             batch_id, now, clock, releases)  # fmt: skip
        pending[future] = batch

    i = 0
    last_bar = 0.0
    # Worker threads would otherwise hold the GIL for up to 5 ms (Python's default switch
    # interval) while the scheduling loop is due to release a request: a shorter interval
    # keeps the release lag's tail within a millisecond.
    # The cyclic garbage collector's full passes over a growing set of records pause every
    # thread for tens of ms; records hold no cycles, so it is paused for the run.
    switch_interval, gc_was_enabled = sys.getswitchinterval(), gc.isenabled()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    gc.disable()
    try:
        while True:
            if state.failing:
                raise FirstInvocationsFailed(state.failing)
            now = clock()
            while not state.feedback.empty():
                size, service_s, cold = state.feedback.get()
                if size:
                    policy.observe(size, service_s, cold)
                if prewarm is not None:
                    prewarm.observe(size, service_s, cold)
            while i < n and schedule[i] <= now:
                releases[i] = now
                if prewarm is not None:
                    prewarm.arrived(schedule[i])
                for batch in policy.offer(Request(i, schedule[i], schedule[i] + slo_s), now):
                    dispatch(batch, now)
                i += 1
            for batch in policy.poll(now):
                dispatch(batch, now)
            if prewarm is not None and i < n:
                for _ in range(prewarm.warmups_due(now)):
                    dispatch([], now)
            if i >= n and policy.next_deadline() is None:
                for batch in policy.flush(now):
                    dispatch(batch, now)
                break
            deadline = policy.next_deadline()
            wake = min(
                schedule[i] if i < n else math.inf, deadline if deadline is not None else math.inf
            )
            if now - last_bar > 0.2:
                _update_bar(bar, state, i)
                last_bar = now
            delay = wake - clock()
            if delay > 0:
                time.sleep(min(delay, 0.1))
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            stopped_by = interrupt_name(exc)  # Ctrl-C, or SIGTERM (labkit.signals)
        elif isinstance(exc, FirstInvocationsFailed):
            stopped_by = str(exc)
        else:
            stopped_by = repr(exc)
    finally:
        sys.setswitchinterval(switch_interval)
        if gc_was_enabled:
            gc.enable()
    _drain(pending, config.drain_timeout_s if stopped_by else None, bar, state, i)
    pool.shutdown(wait=stopped_by is None, cancel_futures=True)
    wall_s = clock()
    if bar is not None:
        _update_bar(bar, state, i)
        bar.close()
    requests = _request_frame(state, times, releases, payloads, pending)
    complete = stopped_by is None and not requests["error"].isin(["NotSent", "Abandoned"]).any()
    return LoadResult(
        requests=requests,
        invocations=invocations_frame(state.invocation_rows),
        complete=complete,
        stopped_by=stopped_by,
        wall_s=wall_s,
        facts={
            "max_schedule_lag_ms": float(
                max((releases[k] - times[k] for k in releases), default=0.0) * 1000
            )
        },
    )


def _drain(pending: dict[Future[None], Batch], timeout_s: float | None, bar: Any, state: _Run,
           released: int) -> None:  # fmt: skip
    """Wait for invocations in flight (all of them, or up to ``timeout_s`` after a stop)."""
    end = math.inf if timeout_s is None else time.perf_counter() + timeout_s
    for future in list(pending):
        while not future.done() and time.perf_counter() < end:
            try:
                future.result(timeout=0.2)
            except TimeoutError:
                if bar is not None:
                    _update_bar(bar, state, released)
            except BaseException:
                break


def _invoke_batch(
    state: _Run, invoke: Invoke, warmup_event: dict[str, Any], payloads: Payloads,
    config: LoadConfig, batch: Batch, batch_id: int, t_dispatch: float,
    clock: Callable[[], float], releases: dict[int, float],
) -> None:  # fmt: skip
    # Built here, in the worker, not in the scheduling loop that must release on time.
    event = payloads.event(batch) if batch else warmup_event
    t_start = clock()
    throttles, result, error = 0, None, None
    give_up = time.perf_counter() + config.throttle_retry_s
    backoff = THROTTLE_BACKOFF_S
    while True:
        t_attempt = clock()
        try:
            result = invoke(event)
            break
        except ThrottledError:
            throttles += 1
            if time.perf_counter() + backoff > give_up:
                error = THROTTLED_ERROR
                break
            time.sleep(backoff * (0.5 + random.random()))  # jittered exponential backoff
            backoff = next_backoff_s(backoff)
        except Exception as exc:
            error = error_code(exc)
            break
    t_done = clock()
    if result is not None and result.function_error:
        error = result.error_type or "Unhandled"
    predictions: dict[str, dict[str, Any]] = {}
    if result is not None and error is None and isinstance(result.response, dict):
        predictions = {p.get("id"): p for p in result.response.get("predictions", [])}
    cold = result is not None and result.cold_start
    figures = report_figures(result.report if result else None)
    rows = {}
    for request in batch:
        prediction = predictions.get(str(request.id), {})
        request_error = error or (prediction.get("error", {}).get("type") if "error" in prediction
                                  else (None if prediction else "MissingPrediction"))  # fmt: skip
        label = payloads.label(request.id)
        predicted = prediction.get("label")
        rows[request.id] = RequestRecord(
            request_id=request.id, t_arrive_s=request.t_arrive,
            t_release_s=releases.get(request.id, math.nan), batch_id=batch_id,
            batch_size=len(batch), t_dispatch_s=t_dispatch, t_done_s=t_done,
            latency_ms=(t_done - request.t_arrive) * 1000.0, label=label,
            predicted=math.nan if predicted is None else predicted,
            correct=predicted == label, cold_start=cold,
            init_duration_ms=figures["init_duration_ms"],
            billed_duration_ms=figures["billed_duration_ms"], error=request_error,
        )  # fmt: skip
    invocation = InvocationRecord(
        batch_id=batch_id, batch_size=len(batch), t_dispatch_s=t_dispatch, t_start_s=t_start,
        t_done_s=t_done,
        # A failed invocation's round trip is its last attempt's (a refused one: the 429),
        # so the back-off before it shows as waiting (``labkit.metrics.cold_delayed``).
        round_trip_ms=result.round_trip_ms if result else (t_done - t_attempt) * 1000.0,
        throttles=throttles, cold_start=cold, **figures, error=error,
        aws_request_id=result.request_id if result else None,
    )  # fmt: skip
    if state.journal is not None:
        state.journal.append(rows.values(), invocation)
    with state.lock:
        state.request_rows.update(rows)
        state.invocation_rows.append(invocation)
        state.done += len(batch)
        state.errors += sum(1 for r in rows.values() if r.error)
        state.in_flight -= 1
        _watch_first(state, config, error, len(batch))
    if result is not None and error is None:
        state.feedback.put((len(batch), (t_done - t_start), cold))


def _watch_first(state: _Run, config: LoadConfig, error: str | None, size: int) -> None:
    """Note the first invocations' outcomes (under ``state.lock``); when the first
    ``fail_fast_after`` all failed for a reason other than throttling, ask the run to stop."""
    limit = config.fail_fast_after
    if not limit or size == 0 or len(state.first_errors) >= limit:
        return
    state.first_errors.append(error)
    errors = state.first_errors
    if len(errors) == limit and all(e and e != "TooManyRequestsException" for e in errors):
        kinds = ", ".join(sorted({str(e) for e in errors}))
        state.failing = f"the first {limit} invocations all failed ({kinds})"


def _request_frame(state: _Run, times: np.ndarray, releases: dict[int, float], payloads: Payloads,
                   pending: dict[Future[None], Batch]) -> pd.DataFrame:  # fmt: skip
    """One row per arrival: recorded ones, plus NotSent / Abandoned for the rest."""
    with state.lock:
        rows = dict(state.request_rows)
    in_flight = {r.id: bid for bid, batch in enumerate(pending.values()) for r in batch}
    nan = math.nan
    for i, t in enumerate(times):
        if i not in rows:
            rows[i] = RequestRecord(
                request_id=i, t_arrive_s=float(t), t_release_s=releases.get(i, nan),
                batch_id=in_flight.get(i, -1), batch_size=nan, t_dispatch_s=nan, t_done_s=nan,
                latency_ms=nan, label=payloads.label(i), predicted=nan, correct=False,
                cold_start=False, init_duration_ms=nan, billed_duration_ms=nan,
                error="Abandoned" if i in in_flight else "NotSent",
            )  # fmt: skip
    return requests_frame(rows[i] for i in range(len(times)))


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="req", desc="requests", smoothing=0.1)


def _update_bar(bar: Any, state: _Run, released: int) -> None:
    if bar is None:
        return
    with state.lock:
        done, errors, in_flight = state.done, state.errors, state.in_flight
    bar.n = done
    bar.set_postfix(sent=released, in_flight=in_flight, errors=errors, refresh=False)
    bar.refresh()
