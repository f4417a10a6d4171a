"""Predictive pre-warm: start execution environments before the queue needs them.

An invocation that finds every instance busy pays a cold start (seconds). The load generator
knows what the platform does not: how fast requests arrive and how long a warm invocation of
the current batch size takes. When the arrival rate, projected one cold start ahead, needs
more concurrent instances than are warm, it sends warm-up events (``{"warmup": true}``,
answered by the function without inference), so new instances start while they are not yet
needed. This is the client-side mitigation Lambda users deploy (provisioned concurrency is
the platform-side one); the paper names it as its next step.

The rule, checked at every step of the scheduling loop (at most every ``min_interval_s``)::

    rate      = arrivals in the last window_s / window_s
    trend     = max(rate - rate one window earlier, 0) / window_s
    projected = rate + trend * horizon_s           (horizon: mean observed cold round trip)
    busy      ~ Poisson(projected / batch * service_s)   (invocations in progress, M/G/inf)
    needed    = the smallest k with P(busy > k) <= overflow
    warm      = peak concurrent invocations started within keep_alive_s
    if needed > warm: send `needed` warm-ups at once (never beyond max_instances)

Little's law alone (the mean of ``busy``) starts the second instance far too late: with
Poisson arrivals two invocations overlap long before the mean reaches one. The warm-ups go
out together and each holds its instance for ``hold_ms``: Lambda sends an invocation to an
idle instance if there is one, so only concurrent warm-ups reach new instances (the trick
Lambda warmer plug-ins use). ``warm`` is a lower bound on live instances: Lambda ran that
many at once, and keeps each for its keep-alive; warm-ups count in it once sent.

Warm-ups are real invocations: they are billed (Duration, including the hold, and Init)
and recorded as invocations with batch size 0, so cost comparisons include them.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any


@dataclass(frozen=True)
class PrewarmConfig:
    """Knobs of :class:`PredictivePrewarm` (see the module docstring for the rule)."""

    window_s: float = 1.0  # arrival-rate window
    overflow: float = 0.01  # accepted chance that an arrival finds every instance busy
    hold_ms: int = 50  # how long each warm-up keeps its instance busy
    keep_alive_s: float = 300.0  # how long an instance that ran is assumed to stay warm
    horizon_prior_s: float = 5.0  # cold round trip assumed before one is observed
    service_prior_s: float = 0.1  # warm invocation time assumed before one is observed
    min_interval_s: float = 0.25  # between two decisions
    max_instances: int = 10  # the function's concurrency

    def __post_init__(self) -> None:
        for name in ("window_s", "keep_alive_s", "horizon_prior_s", "service_prior_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, not {getattr(self, name)!r}")
        if not 0 < self.overflow < 1:
            raise ValueError(f"overflow must be between 0 and 1, not {self.overflow!r}")
        if self.min_interval_s < 0 or self.hold_ms < 0:
            raise ValueError("min_interval_s and hold_ms must be >= 0")
        if self.max_instances < 1:
            raise ValueError(f"max_instances must be >= 1, not {self.max_instances}")


class PredictivePrewarm:
    """Decides when to send warm-up invocations; fed by the load generator."""

    def __init__(self, config: PrewarmConfig | None = None, smoothing: float = 0.2) -> None:
        self.config = config or PrewarmConfig()
        self.smoothing = smoothing
        self._arrivals: deque[float] = deque()
        self._starts: deque[tuple[float, int]] = deque()  # (time, concurrency at start)
        self._service_s: float | None = None
        self._batch: float | None = None
        self._horizon_s: float | None = None
        self._last_decision = -math.inf
        self.sent = 0

    # ----- what the load generator reports -------------------------------------------

    def arrived(self, t: float) -> None:
        self._arrivals.append(t)

    def started(self, t: float, concurrency: int) -> None:
        """An invocation (or warm-up) started with ``concurrency`` invocations in flight."""
        self._starts.append((t, concurrency))

    def observe(self, batch_size: int, service_s: float, cold_start: bool) -> None:
        """A finished invocation: warm ones teach service time and batch size, cold ones the
        horizon (how long a new instance takes to serve its first invocation)."""
        a = self.smoothing
        if cold_start:
            self._horizon_s = service_s if self._horizon_s is None else (
                (1 - a) * self._horizon_s + a * service_s
            )  # fmt: skip
            return
        if batch_size <= 0:
            return  # a warm warm-up says nothing about serving requests
        self._service_s = service_s if self._service_s is None else (
            (1 - a) * self._service_s + a * service_s
        )  # fmt: skip
        self._batch = batch_size if self._batch is None else (1 - a) * self._batch + a * batch_size

    # ----- the decision ----------------------------------------------------------------

    def rate(self, now: float, ago: float = 0.0) -> float:
        """Arrivals per second in the window ending ``ago`` seconds before ``now``."""
        end, w = now - ago, self.config.window_s
        return sum(1 for t in self._arrivals if end - w < t <= end) / w

    def needed(self, now: float) -> int:
        """Instances the projected arrival rate needs (see the module docstring)."""
        c = self.config
        rate = self.rate(now)
        trend = max(rate - self.rate(now, c.window_s), 0.0) / c.window_s
        horizon = self._horizon_s if self._horizon_s is not None else c.horizon_prior_s
        service = self._service_s if self._service_s is not None else c.service_prior_s
        batch = max(self._batch or 1.0, 1.0)
        return poisson_quantile((rate + trend * horizon) / batch * service, 1.0 - c.overflow)

    def warm(self) -> int:
        """Peak concurrency within the keep-alive: instances known to exist."""
        return max((k for _, k in self._starts), default=0)

    def warmups_due(self, now: float) -> int:
        """How many warm-ups to send now (0 most of the time)."""
        c = self.config
        if now - self._last_decision < c.min_interval_s:
            return 0
        self._last_decision = now
        self._forget(now)
        target = min(self.needed(now), c.max_instances)
        due = target if target > self.warm() else 0  # all at once: see the module docstring
        self.sent += due
        return due

    def event(self) -> dict[str, Any]:
        """The warm-up event to send."""
        return {"warmup": True, "hold_ms": self.config.hold_ms}

    def _forget(self, now: float) -> None:
        horizon = 2 * self.config.window_s
        while self._arrivals and self._arrivals[0] <= now - horizon:
            self._arrivals.popleft()
        while self._starts and self._starts[0][0] < now - self.config.keep_alive_s:
            self._starts.popleft()

    def describe(self) -> dict[str, Any]:
        return {"prewarm": "predictive", **self.config.__dict__, "warmups_sent": self.sent}


def poisson_quantile(mean: float, level: float) -> int:
    """The smallest k with P(X <= k) >= level for X ~ Poisson(mean) (0 for mean 0)."""
    if mean <= 0:
        return 0
    if mean > 100:  # the normal approximation (and exp(-mean) would underflow past ~700)
        return math.ceil(mean + NormalDist().inv_cdf(level) * math.sqrt(mean))
    k, term = 0, math.exp(-mean)
    total = term
    while total < level:
        k += 1
        term *= mean / k
        total += term
    return k
