"""A model of an SQS event-source mapping, for the simulated backend's queue cells.

The same arrivals and mapping settings as a live queue cell (:mod:`labkit.load.queue_run`) drive
an event model of what the local Lambda's pollers do (:mod:`labkit.emulator.event_sources`),
on the platform model of :mod:`labkit.sim.simulate` (service times, Init samples, instances
reused when idle):

- a message can be picked up ``pickup`` after its release (a sample of
  ``PlatformProfile.queue_pickup_ms``: the send, the flight, a waiting long poll's return);
- each poller is idle (waiting in a long poll), gathering (window > 0: from its first
  message until the batch is full or the window has passed) or busy (its invocation runs);
  a message that becomes visible goes to one of the receiving pollers, chosen at random as
  concurrent long polls are served; with none receiving it waits in the queue, and a poller
  coming free takes what waits (at most 10 per receive; a window keeps gathering);
- window 0 invokes with what one receive returned; with a window, at its close or when full;
- pollers start at five, one is added every 0.2 s while messages wait, up to the mapping's
  maximum concurrency and the function's concurrency; an idle one beyond five retires after
  an empty 1 s poll;
- an invocation takes Init (a cold start when no instance is idle) plus the service time of
  its batch plus ``queue_extra_ms`` (the handler's sends to the response queue); its answers
  reach the client ``queue_answer_ms`` later.

Records come out in the live schema, with the same dispatch rule (:func:`labkit.load.queue_run.ready_at`).
:func:`fit_queue_latencies` measures the three samples from live queue cells; the notebook
"Where should batching happen?" checks the model against the live cells it did not fit.
"""

from __future__ import annotations

import dataclasses
import heapq
import math
from collections import deque
from typing import Any

import numpy as np
import pandas as pd

from labkit.emulator.event_sources import MAX_POLLERS, SCALE_STEP_S, START_POLLERS
from labkit.emulator.event_sources import WAIT_S as RETIRE_AFTER_S  # an empty long poll
from labkit.load.batching import MappingSettings
from labkit.load.queue_run import place_dispatch, ready_at, sqs_calls, sqs_traffic
from labkit.metrics import cold_delayed
from labkit.records import LoadResult
from labkit.sim.simulate import PlatformProfile, SimConfig, _Draws, _records

_VISIBLE, _CLOSE, _DONE, _SCALE, _RETIRE = range(5)


@dataclasses.dataclass(eq=False)  # by identity: two idle pollers are still two pollers
class _Poller:
    state: str = "idle"  # idle | gathering | busy
    batch: list[int] = dataclasses.field(default_factory=list)
    epoch: int = 0  # bumped on every change, so stale close/retire events are ignored


def simulate_queue(arrivals: np.ndarray, mapping: MappingSettings, profile: PlatformProfile,
                   config: SimConfig | None = None) -> LoadResult:  # fmt: skip
    """The queue cell's records from the model (see the module docstring)."""
    config = config or SimConfig()
    rng = np.random.default_rng(config.seed)
    draws = _Draws(rng, profile.sigma)
    times = np.asarray(arrivals, dtype=float)
    if times.ndim != 1 or (times.size and (np.diff(times) < 0).any()):
        raise ValueError("arrivals must be a sorted 1-D sequence of seconds")
    n = len(times)

    def pick(samples: list[float]) -> float:
        return samples[int(draws.uniform() * len(samples))] / 1000.0

    most = min(mapping.max_concurrency or MAX_POLLERS, MAX_POLLERS, max(config.concurrency, 1))
    least = min(START_POLLERS, most)
    receive_most = min(mapping.batch_size, 10)
    inits = profile.queue_init_ms or profile.init_ms
    pollers = [_Poller() for _ in range(least)]
    waiting: deque[int] = deque()  # visible messages no poller holds
    idle_since: list[float] = [math.inf] * config.provisioned  # instances' idle times
    instances = config.provisioned
    batch_of = np.full(n, -1, np.int64)
    done_at = np.full(n, np.nan)
    rows: list[tuple[Any, ...]] = []
    first_of: list[int] = []  # each batch's first request (arrivals are sorted)
    events: list[tuple[float, int, int, Any]] = []
    seq = 0
    scaling = False

    def push(t: float, kind: int, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, kind, seq, payload))

    def invoke(p: _Poller, now: float) -> None:
        nonlocal instances
        batch, p.batch = p.batch, []
        p.state, p.epoch = "busy", p.epoch + 1
        while idle_since and now - idle_since[0] > profile.keep_alive_s:
            idle_since.pop(0)
            instances -= 1
        if idle_since:
            idle_since.pop()
            init = 0.0
        else:
            instances += 1
            init = pick(inits)
        size = len(batch)
        service = profile.service_s(size) * draws.noise() + pick(profile.queue_extra_ms)
        end = now + init + service
        seen = end + pick(profile.queue_answer_ms)
        batch_id = len(rows)
        first_of.append(min(batch))
        batch_of[batch] = batch_id
        done_at[batch] = seen
        dispatch = ready_at(times[batch].tolist(), mapping)
        rows.append((batch_id, size, dispatch, now, end, init, service, 0, None))  # never throttled
        push(end, _DONE, p)

    def take(p: _Poller, now: float) -> None:
        """A poller coming free (or added) receives what waits."""
        while waiting and len(p.batch) < mapping.batch_size:
            got = [waiting.popleft() for _ in range(min(receive_most, len(waiting)))]
            p.batch += got[: mapping.batch_size - len(p.batch)]
            if mapping.window_s == 0:
                break
        if not p.batch:
            p.state, p.epoch = "idle", p.epoch + 1
            if len(pollers) > least:
                push(now + RETIRE_AFTER_S, _RETIRE, (p, p.epoch))
        elif mapping.window_s == 0 or len(p.batch) >= mapping.batch_size:
            invoke(p, now)
        else:
            p.state, p.epoch = "gathering", p.epoch + 1
            push(now + mapping.window_s, _CLOSE, (p, p.epoch))

    def schedule_scaling(now: float) -> None:
        nonlocal scaling
        if not scaling and len(pollers) < most:
            scaling = True
            push(now + SCALE_STEP_S, _SCALE, None)

    for i in range(n):
        push(times[i] + pick(profile.queue_pickup_ms), _VISIBLE, i)
    while events:
        now, kind, _, payload = heapq.heappop(events)
        if kind == _VISIBLE:
            receiving = [p for p in pollers if p.state == "idle" or (
                p.state == "gathering" and len(p.batch) < mapping.batch_size)]  # fmt: skip
            if not receiving:
                waiting.append(payload)
                schedule_scaling(now)
                continue
            p = receiving[int(draws.uniform() * len(receiving))]
            p.batch.append(payload)
            if mapping.window_s == 0 or len(p.batch) >= mapping.batch_size:
                invoke(p, now)
            elif p.state == "idle":
                p.state, p.epoch = "gathering", p.epoch + 1
                push(now + mapping.window_s, _CLOSE, (p, p.epoch))
        elif kind == _CLOSE:
            p, epoch = payload
            if p.epoch == epoch and p.state == "gathering":
                invoke(p, now)
        elif kind == _DONE:
            idle_since.append(now)
            take(payload, now)
        elif kind == _SCALE:
            scaling = False
            if waiting and len(pollers) < most:
                pollers.append(_Poller())
                take(pollers[-1], now)
                schedule_scaling(now)
        else:  # _RETIRE
            p, epoch = payload
            if p.epoch == epoch and p.state == "idle" and len(pollers) > least:
                pollers.remove(p)
    result = _records(times, batch_of, done_at, rows, profile.memory_mb)
    firsts = times[np.asarray(first_of, dtype=np.int64)]  # by batch id
    order = result.invocations["batch_id"].to_numpy(int)
    place_dispatch(result.invocations, firsts[order], mapping, config.concurrency)  # as live
    by_batch = result.invocations.set_index("batch_id")["t_dispatch_s"]
    result.requests["t_dispatch_s"] = by_batch.reindex(result.requests["batch_id"]).to_numpy(float)
    result.facts["sqs"] = _traffic(result, mapping)
    return result


def _traffic(result: LoadResult, mapping: MappingSettings) -> dict[str, int]:
    """The SQS calls the cell would make (:func:`labkit.load.queue_run.sqs_calls`; messages are
    taken to be under 64 KB, as the kit's are; the reader brings one invocation's answers
    per receive)."""

    sizes = result.invocations["batch_size"].to_numpy(int)
    wall_s = float(np.nanmax(result.requests["t_done_s"])) if len(result.requests) else 0.0
    receives, deletes = sqs_traffic(len(sizes), wall_s, mapping)
    return sqs_calls(sizes, wall_s, sends=len(result.requests), receives=receives, deletes=deletes,
                     answer_receives=len(sizes), answer_deletes=len(sizes))  # fmt: skip


def fit_queue_latencies(cells: list[tuple[pd.DataFrame, pd.DataFrame, MappingSettings]],
                        profile: PlatformProfile) -> PlatformProfile:  # fmt: skip
    """``profile`` with the queue's latencies measured from live queue cells'
    ``(requests, invocations, mapping)``, each over the invocations no cold start delayed:
    the pickup (an invocation's start less its last message's release, in window-0 cells),
    the handler's extra time (its Duration less the profile's service median for its size),
    the answer path (last answer seen less the invocation's end on the platform); and the
    SQS handler's Init Durations (it also makes an SQS client)."""

    pickup, extra, answer, inits = [], [], [], []
    for requests, invocations, mapping in cells:
        inits += invocations["init_duration_ms"].dropna().astype(float).tolist()
        delayed_batches = set(requests.loc[cold_delayed(requests, invocations), "batch_id"])
        inv = invocations[invocations["duration_ms"].notna() & invocations["t_start_s"].notna()]
        steady = inv[~inv["batch_id"].isin(delayed_batches)]
        seen = requests.groupby("batch_id")["t_done_s"].max()
        answer += ((seen.reindex(steady["batch_id"]).to_numpy(float) - steady["t_done_s"].to_numpy(float))
                   * 1000.0).clip(min=0).tolist()  # fmt: skip
        medians_ms = [profile.service_s(k) * 1000.0 for k in steady["batch_size"]]
        extra += (steady["duration_ms"] - np.asarray(medians_ms, float)).clip(lower=0).tolist()
        if mapping.window_s == 0:  # release of the batch's last message to the start
            ready = requests.groupby("batch_id")["t_release_s"].max()
            waited = steady["t_start_s"].to_numpy(float) - ready.reindex(
                steady["batch_id"]
            ).to_numpy(float)
            pickup += (waited * 1000.0).clip(min=0).tolist()
    if not (pickup and extra and answer):
        raise ValueError("need live queue cells with window 0 and warm invocations to fit "
                         "the queue's latencies")  # fmt: skip
    return dataclasses.replace(
        profile, queue_pickup_ms=[round(x, 3) for x in pickup],
        queue_extra_ms=[round(x, 3) for x in extra], queue_answer_ms=[round(x, 3) for x in answer],
        queue_init_ms=[round(x, 1) for x in inits] or profile.queue_init_ms,
        source=f"{profile.source}; queue latencies fitted from {len(cells)} live queue cells",
    )  # fmt: skip
