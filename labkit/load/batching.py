"""Batching policies: when does a queue of requests become a batch (one invocation)?

Every policy implements the same small interface, driven by a clock it is handed (seconds
since the start of a run), so the same object runs live in the load generator, on a virtual
clock in tests, and in the simulator:

- ``offer(request, now)``: a request has arrived; returns the batches to send now.
- ``poll(now)``: the clock reached ``next_deadline()``; returns the batches due.
- ``next_deadline()``: when ``poll`` must next be called (``None``: no timer pending).
- ``flush(now)``: the workload ended; returns whatever is still queued.
- ``observe(batch_size, service_s, cold_start)``: feedback after an invocation (policies that
  learn use it; the others ignore it).

Definitions follow DESIGN.md: static batches are exactly ``size`` requests except the final
flush; a dynamic batch is sent when ``max_size`` requests are queued or ``timeout_s`` after
its first request arrived, whichever comes first.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from labkit.settings import MappingError, MappingSettings

Batch = list["Request"]


@dataclass(frozen=True)
class Request:
    """One image to classify; ``t_arrive`` is its scheduled arrival (seconds since start)."""

    id: int
    t_arrive: float
    deadline: float = math.inf  # t_arrive + SLO, for policies that use it


class BatchingPolicy(ABC):
    """The interface every policy implements (see the module docstring)."""

    name: str = "policy"

    def __init__(self) -> None:
        self.queue: list[Request] = []

    @abstractmethod
    def offer(self, request: Request, now: float) -> list[Batch]: ...

    def poll(self, now: float) -> list[Batch]:
        return []

    def next_deadline(self) -> float | None:
        return None

    def flush(self, now: float) -> list[Batch]:
        batch, self.queue = self.queue, []
        return [batch] if batch else []

    def observe(self, batch_size: int, service_s: float, cold_start: bool) -> None:
        """Feedback after an invocation; ignored unless the policy learns."""
        return None

    def describe(self) -> dict[str, Any]:
        """The policy's name and settings, for result files."""
        return {"policy": self.name}

    @property
    def learns(self) -> bool:
        """Whether it overrides :meth:`observe`: then its batches depend on what the platform
        answers, and a simulation must run it coupled to the platform (``labkit.sim``)."""
        return type(self).observe is not BatchingPolicy.observe

    def _take(self, n: int) -> Batch:
        batch, self.queue = self.queue[:n], self.queue[n:]
        return batch


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, not {value!r}")
    return value


def _positive_seconds(name: str, value: float) -> float:
    if not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")
    return float(value)


class NoBatching(BatchingPolicy):
    """Every request is its own invocation: the baseline."""

    name = "none"

    def offer(self, request: Request, now: float) -> list[Batch]:
        return [[request]]


class StaticBatching(BatchingPolicy):
    """A batch is sent when ``size`` requests are queued; the rest is flushed at the end."""

    name = "static"

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = _positive_int("size", size)

    def offer(self, request: Request, now: float) -> list[Batch]:
        self.queue.append(request)
        return [self._take(self.size)] if len(self.queue) >= self.size else []

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "size": self.size}


class _TimedBatching(BatchingPolicy):
    """Shared by the policies that send a batch as soon as it is full, and the queue's head
    (up to ``max_size``) once ``next_deadline()`` has passed."""

    max_size: int

    def full_size(self) -> int:
        """How many queued requests make a batch full now."""
        return self.max_size

    def offer(self, request: Request, now: float) -> list[Batch]:
        self.queue.append(request)
        batches = self.poll(now)
        while len(self.queue) >= (size := self.full_size()):
            batches.append(self._take(size))
        return batches

    def poll(self, now: float) -> list[Batch]:
        deadline = self.next_deadline()
        return [self._take(self.max_size)] if deadline is not None and now >= deadline else []


class DynamicBatching(_TimedBatching):
    """Sent at ``max_size`` queued requests or ``timeout_s`` after the batch's first request
    arrived, whichever is first (the paper: ``max_size=5``, ``timeout_s=0.3``)."""

    name = "dynamic"

    def __init__(self, max_size: int = 5, timeout_s: float = 0.3) -> None:
        super().__init__()
        self.max_size = _positive_int("max_size", max_size)
        self.timeout_s = _positive_seconds("timeout_s", timeout_s)

    def next_deadline(self) -> float | None:
        return self.queue[0].t_arrive + self.timeout_s if self.queue else None

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "max_size": self.max_size, "timeout_s": self.timeout_s}


class QueueAdaptiveBatching(_TimedBatching):
    """The paper's queue-watching rule: the batch size follows the traffic.

    The target size is the number of requests expected within ``max_wait_s`` at the current
    arrival rate (an exponentially weighted estimate over recent inter-arrival gaps), clamped
    to ``1..max_size``: light traffic gives batches of one (no waiting), a surge gives full
    batches. A batch is sent when the queue reaches the target, or ``max_wait_s`` after its
    first request arrived, so no request waits longer than ``max_wait_s`` for its batch.
    """

    name = "adaptive"

    def __init__(self, max_size: int = 8, max_wait_s: float = 0.1, smoothing: float = 0.2) -> None:
        super().__init__()
        self.max_size = _positive_int("max_size", max_size)
        self.max_wait_s = _positive_seconds("max_wait_s", max_wait_s)
        if not 0 < smoothing <= 1:
            raise ValueError(f"smoothing must be in (0, 1], not {smoothing!r}")
        self.smoothing = smoothing
        self._mean_gap: float | None = None
        self._last_arrival: float | None = None

    @property
    def target_size(self) -> int:
        if not self._mean_gap:
            return 1
        expected = self.max_wait_s / self._mean_gap
        return max(1, min(self.max_size, math.floor(expected)))

    def full_size(self) -> int:
        return self.target_size

    def offer(self, request: Request, now: float) -> list[Batch]:
        if self._last_arrival is not None:
            gap = max(request.t_arrive - self._last_arrival, 1e-6)
            a = self.smoothing
            self._mean_gap = gap if self._mean_gap is None else (1 - a) * self._mean_gap + a * gap
        self._last_arrival = request.t_arrive
        return super().offer(request, now)

    def next_deadline(self) -> float | None:
        return self.queue[0].t_arrive + self.max_wait_s if self.queue else None

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "max_size": self.max_size, "max_wait_s": self.max_wait_s}


class SloAwareBatching(_TimedBatching):
    """Dispatch as late as the SLO allows, so batches grow without missing deadlines.

    Every request carries its deadline (arrival + SLO). The policy keeps an online estimate of
    how long an invocation of ``n`` requests takes, learned from the round trips it observes
    (``observe``): a least-squares line ``a + b*n`` over exponentially weighted means per batch
    size. The queue is sent when

    - it holds ``max_size`` requests, or
    - waiting any longer would make its oldest request miss its deadline:
      ``now >= oldest.deadline - estimate(len(queue) + 1) - headroom_s``.

    Cold starts enter the estimate only where hedging against them can help: the expected
    cold-start cost (the share of cold starts among the last 64 observed invocations, times the
    mean extra time of a cold invocation) is added when a cold invocation sent at once could
    still meet the oldest deadline. When it could not (an 8 s init against a 0.5 s SLO), a cold
    start misses whenever the batch is sent, and sending early would only make batches smaller,
    invocations more numerous and cold starts more likely (``bench/slo_aware.py`` measures
    both rules; bench/README.md).

    ``headroom_s`` is the cost-leaning knob: more headroom sends earlier (smaller batches,
    safer tail), less headroom lets batches grow (cheaper, riskier). Before any observation the
    estimate is ``prior_ms`` per invocation. A request that arrives already too late to meet
    its deadline is sent at once.
    """

    name = "slo-aware"

    def __init__(self, max_size: int = 16, *, headroom_s: float = 0.02, prior_ms: float = 30.0,
                 smoothing: float = 0.2) -> None:  # fmt: skip
        super().__init__()
        self.max_size = _positive_int("max_size", max_size)
        if not math.isfinite(headroom_s) or headroom_s < 0:
            raise ValueError(f"headroom_s must be >= 0 seconds, not {headroom_s!r}")
        self.headroom_s = float(headroom_s)
        self.prior_s = _positive_seconds("prior_ms", prior_ms) / 1000.0
        self.smoothing = smoothing
        self._warm: dict[int, float] = {}  # batch size -> EWMA of warm invocation seconds
        self._cold_extra_s = 0.0
        self._colds = 0
        self._recent: deque[bool] = deque(maxlen=64)  # cold start or not, last invocations
        self._line: tuple[float, float, float] | None = None
        self._since_fit = 0

    def observe(self, batch_size: int, service_s: float, cold_start: bool) -> None:
        a = self.smoothing
        self._recent.append(cold_start)
        if cold_start:
            extra = max(service_s - self.estimate_warm(batch_size), 0.0)
            self._cold_extra_s = (self._cold_extra_s * self._colds + extra) / (self._colds + 1)
            self._colds += 1
            return
        old = self._warm.get(batch_size)
        self._warm[batch_size] = service_s if old is None else (1 - a) * old + a * service_s
        self._since_fit += 1
        if old is None:
            self._line = None  # a new batch size: refit at once

    def estimate_warm(self, n: int) -> float:
        """Expected warm invocation time (s) for a batch of ``n``."""
        if self._line is None or self._since_fit >= 8:
            self._line = self._fit()
            self._since_fit = 0
        intercept, slope, floor = self._line
        return max(intercept + slope * n, floor)

    def _fit(self) -> tuple[float, float, float]:
        """Least squares ``a + b*n`` over the per-size means (refitted every 8 observations)."""
        if not self._warm:
            return (self.prior_s, 0.0, 0.0)
        times = list(self._warm.values())
        if len(self._warm) == 1:
            return (times[0], 0.0, 0.0)
        sizes = list(self._warm)
        mean_n, mean_t = sum(sizes) / len(sizes), sum(times) / len(times)
        var = sum((x - mean_n) ** 2 for x in sizes)
        slope = max(
            sum((x - mean_n) * (t - mean_t) for x, t in zip(sizes, times, strict=True)) / var, 0.0
        )
        return (mean_t - slope * mean_n, slope, min(times) * 0.5)

    def estimate(self, n: int) -> float:
        """Expected invocation time (s) for ``n`` requests, cold-start risk included."""
        cold_chance = sum(self._recent) / len(self._recent) if self._recent else 0.0
        return self.estimate_warm(n) + cold_chance * self._cold_extra_s

    def next_deadline(self) -> float | None:
        if not self.queue:
            return None
        oldest = self.queue[0]
        if not math.isfinite(oldest.deadline):
            return oldest.t_arrive  # no SLO known: behave like no batching
        n = len(self.queue) + 1
        warm = self.estimate_warm(n)
        survivable = (
            oldest.t_arrive + warm + self._cold_extra_s + self.headroom_s <= oldest.deadline
        )
        service = self.estimate(n) if survivable else warm
        return max(oldest.deadline - service - self.headroom_s, oldest.t_arrive)

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "max_size": self.max_size, "headroom_s": self.headroom_s}


class QueueBatching(BatchingPolicy):
    """The platform batches, not the client: each request is sent at its arrival as one
    message to an SQS queue, and the queue's event-source mapping hands the function batches
    (``mapping``). On the client it behaves as :class:`NoBatching`; a backend that sees this
    policy runs the cell through a queue (``Backend.run_queue_cell``)."""

    name = "sqs"

    def __init__(self, mapping: MappingSettings) -> None:
        super().__init__()
        self.mapping = mapping

    def offer(self, request: Request, now: float) -> list[Batch]:
        return [[request]]

    def describe(self) -> dict[str, Any]:
        m = self.mapping
        return {"policy": self.name, "batch_size": m.batch_size, "window_s": m.window_s,
                "max_concurrency": m.max_concurrency}  # fmt: skip


@dataclass(frozen=True)
class PolicyConfig:
    """A policy by name and settings, as result files and presets hold it."""

    kind: str = "dynamic"  # none | static | dynamic | adaptive | slo-aware | sqs
    size: int = 5  # static: the batch size; others: the maximum batch size (sqs: BatchSize)
    timeout_s: float = 0.3  # dynamic: T; adaptive: the maximum wait; sqs: the window (whole s)
    options: dict[str, Any] = field(default_factory=dict)  # extra keyword arguments

    def build(self) -> BatchingPolicy:
        """A fresh policy object (policies hold state: one per run)."""
        kind = self.kind.lower()
        if kind == "none":
            return NoBatching()
        if kind == "static":
            return StaticBatching(self.size, **self.options)
        if kind == "dynamic":
            return DynamicBatching(self.size, self.timeout_s, **self.options)
        if kind == "adaptive":
            return QueueAdaptiveBatching(self.size, self.timeout_s, **self.options)
        if kind == "slo-aware":
            return SloAwareBatching(self.size, **self.options)
        if kind == "sqs":
            return QueueBatching(self.mapping())
        if kind in POLICY_FACTORIES:
            return POLICY_FACTORIES[kind](self)
        known = ["none", "static", "dynamic", "adaptive", "slo-aware", "sqs", *POLICY_FACTORIES]
        raise ValueError(f"unknown batching policy {self.kind!r}; known: {', '.join(known)}")

    @property
    def label(self) -> str:
        kind = self.kind.lower()
        if kind == "none":
            return "none"
        if kind == "static":
            return f"static-{self.size}"
        if kind == "slo-aware":
            return f"slo-aware-{self.size}"
        if kind == "sqs":
            return self.mapping().label
        return f"{kind}-{self.size}-{self.timeout_s:g}s"

    @property
    def family(self) -> str:
        """What cells and results are grouped and named by: the kind, except that a queue's
        mapping goes by its settings (``sqs-10-1s``), since two mappings batch differently
        whatever the client does."""
        return self.label if self.kind == "sqs" else self.kind

    def mapping(self) -> MappingSettings:
        """An ``sqs`` policy's mapping: ``size`` is the BatchSize, ``timeout_s`` the window,
        which AWS takes in whole seconds only (0.3 s cannot be asked for: refused here)."""
        window = self.timeout_s
        if not float(window).is_integer():
            raise MappingError(f"MaximumBatchingWindowInSeconds takes whole seconds (0, 1, ... 300): "
                               f"{window!r} cannot be expressed on an SQS mapping")  # fmt: skip
        return MappingSettings(self.size, int(window), self.options.get("max_concurrency"))


# Policies defined elsewhere (the SLO-aware one, a student's) register a factory here.
POLICY_FACTORIES: dict[str, Any] = {}


def fills_before_timeout_rate(size: int, timeout_s: float) -> float:
    """The uniform arrival rate above which a batch of ``size`` is full before ``timeout_s``:
    ``(size - 1) / timeout_s`` (the batch's last request arrives ``size - 1`` gaps after its
    first). Above it, batching at ``size`` or ``timeout_s`` never uses its timeout, and
    static and dynamic batching send the same batches."""
    return (_positive_int("size", size) - 1) / _positive_seconds("timeout_s", timeout_s)


def same_batches(policies: list[BatchingPolicy], arrivals: list[float]) -> bool:
    """Whether the policies, replayed on ``arrivals``, send the very same batches at the very
    same times (then no difference between them can be an effect of batching). The last
    batch is compared by its members only: when the workload ends, one policy flushes what is
    left at once and another may send it on its timer."""
    sent = [replay(policy, arrivals) for policy in policies]
    shapes = [[tuple(r.id for r in batch) for _, batch in batches] for batches in sent]
    times = [[round(t, 9) for t, _ in batches[:-1]] for batches in sent]
    return all(s == shapes[0] for s in shapes[1:]) and all(t == times[0] for t in times[1:])


def replay(
    policy: BatchingPolicy, arrivals: list[float], slo_s: float = math.inf
) -> list[tuple[float, Batch]]:
    """Run ``policy`` over ``arrivals`` on a virtual clock; returns (dispatch time, batch)
    pairs. Timers fire exactly at their deadlines: the reference behaviour live runs approach."""
    out: list[tuple[float, Batch]] = []
    for i, t in enumerate(arrivals):
        while (deadline := policy.next_deadline()) is not None and deadline <= t:
            out += [(deadline, b) for b in policy.poll(deadline)]
        out += [(t, b) for b in policy.offer(Request(i, t, t + slo_s), t)]
    while (deadline := policy.next_deadline()) is not None:
        out += [(deadline, b) for b in policy.poll(deadline)]
    end = arrivals[-1] if arrivals else 0.0
    out += [(end, b) for b in policy.flush(end)]
    return out
