"""Predictive pre-warm: the rule on its own, then inside the load generator."""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import pytest

from labkit import metrics
from labkit.aws.invoke import InvocationResult, ReportFields
from labkit.load.batching import NoBatching
from labkit.load.loadgen import LoadConfig, run_load
from labkit.load.prewarm import PredictivePrewarm, PrewarmConfig, poisson_quantile
from tests.load.conftest import payloads


def _fed(rate: float, seconds: float, service_s: float, batch: int) -> PredictivePrewarm:
    prewarm = PredictivePrewarm(PrewarmConfig(overflow=0.01, min_interval_s=0.0))
    for t in np.arange(0, seconds, 1 / rate):
        prewarm.arrived(float(t))
    for _ in range(50):
        prewarm.observe(batch, service_s, cold_start=False)
    return prewarm


def _reference_quantile(mean: float, level: float) -> int:
    """Exact, in log space (no underflow): the smallest k with P(X <= k) >= level."""
    total, k = 0.0, 0
    while True:
        total += math.exp(k * math.log(mean) - mean - math.lgamma(k + 1))
        if total >= level:
            return k
        k += 1


@pytest.mark.parametrize("mean", [0.15, 0.2, 1.0, 5.0, 7.0, 40.0])
def test_poisson_quantile_is_exact_for_small_means(mean: float) -> None:
    assert poisson_quantile(mean, 0.99) == _reference_quantile(mean, 0.99)


def test_poisson_quantile_uses_the_normal_approximation_for_large_means() -> None:
    assert abs(poisson_quantile(1000.0, 0.99) - _reference_quantile(1000.0, 0.99)) <= 1
    assert poisson_quantile(0.0, 0.99) == 0


def test_needed_instances_cover_the_poisson_tail_of_busy_invocations() -> None:
    # 100/s x 50 ms: 5 invocations in progress on average; 1 % overflow needs 11 instances
    assert _fed(100, 2.0, 0.05, 1).needed(2.0) == 11
    # batches of 5 need a fifth of the invocations: mean 1, so 4
    assert _fed(100, 2.0, 0.05, 5).needed(2.0) == 4
    # 15/s x 10 ms: rarely two at once (P ~ 1 %), but a second instance is already due
    assert _fed(20, 2.0, 0.01, 1).needed(2.0) == 2


def test_a_rising_rate_is_projected_one_cold_start_ahead() -> None:
    prewarm = PredictivePrewarm(PrewarmConfig(min_interval_s=0.0))
    for t in np.arange(0.0, 1.0, 1 / 20):  # 20/s, then 60/s
        prewarm.arrived(float(t))
    for t in np.arange(1.0, 2.0, 1 / 60):
        prewarm.arrived(float(t))
    for _ in range(50):
        prewarm.observe(1, 0.05, cold_start=False)
    prewarm.observe(1, 2.0, cold_start=True)  # a cold invocation takes 2 s
    # rate 60/s, trend +40/s per s, horizon 2 s: projected 140/s x 50 ms = 7 busy -> 14
    assert prewarm.needed(2.0) == poisson_quantile(7.0, 0.99) == 14


def test_warmups_go_out_together_until_enough_instances_have_run_at_once() -> None:
    prewarm = _fed(100, 2.0, 0.05, 1)
    # 11 needed, capped at the function's concurrency (10); all at once, to reach new instances
    assert prewarm.warmups_due(2.0) == 10
    assert prewarm.event() == {"warmup": True, "hold_ms": 50}
    for k in range(1, 11):  # the load generator reports each warm-up as started
        prewarm.started(2.0, k)
    assert prewarm.warmups_due(2.1) == 0
    prewarm.started(2.1, 3)
    assert prewarm.warm() == 10 and prewarm.sent == 10


def test_instances_past_the_keep_alive_are_no_longer_counted_warm() -> None:
    prewarm = PredictivePrewarm(PrewarmConfig(keep_alive_s=1.0, min_interval_s=0.0))
    prewarm.started(0.0, 3)
    for t in np.arange(1.0, 3.0, 0.01):
        prewarm.arrived(float(t))
    prewarm.observe(1, 0.02, cold_start=False)
    due = prewarm.warmups_due(1.5)
    assert prewarm.warm() == 0  # the instances seen at 0.0 s are forgotten after 1 s
    assert due == min(prewarm.needed(1.5), 10) > 0  # the whole need, sent together


def test_decisions_are_spaced_by_min_interval() -> None:
    prewarm = PredictivePrewarm(PrewarmConfig(min_interval_s=0.5))
    for t in np.arange(0, 1, 0.001):
        prewarm.arrived(float(t))
    assert prewarm.warmups_due(1.0) > 0
    assert prewarm.warmups_due(1.2) == 0  # too soon to decide again, whatever the need


@pytest.mark.parametrize("field", ["window_s", "keep_alive_s", "service_prior_s", "overflow"])
def test_bad_config_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        PrewarmConfig(**{field: 0})


class PoolFunction:
    """Instances as Lambda keeps them: a call takes an idle one or starts one (cold)."""

    def __init__(self, service_s: float, init_s: float) -> None:
        self.service_s, self.init_s = service_s, init_s
        self.idle, self.started, self.warmups = 0, 0, 0
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any]) -> InvocationResult:
        with self.lock:
            cold = self.idle == 0
            if cold:
                self.started += 1
            else:
                self.idle -= 1
            warmup = event.get("warmup") is True
            self.warmups += warmup
        hold = event.get("hold_ms", 0) / 1000.0 if warmup else 0.0
        time.sleep(self.service_s + hold + (self.init_s if cold else 0.0))
        with self.lock:
            self.idle += 1
        report = ReportFields("r", 1.0, 2, 1024, 100, init_duration_ms=50.0 if cold else None)
        if warmup:
            return InvocationResult("r", 200, {"warmup": True}, None, report, "", 1.0)
        predictions = [{"id": i["id"], "label": int(i["image_b64"][3:]) % 10}
                       for i in event["instances"]]  # fmt: skip
        return InvocationResult("r", 200, {"predictions": predictions}, None, report, "", 1.0)


def test_the_load_generator_sends_recorded_warmups_that_absorb_cold_starts() -> None:
    arrivals = np.concatenate([np.arange(0, 0.5, 1 / 20), np.arange(0.5, 1.5, 1 / 150)])
    function = PoolFunction(service_s=0.02, init_s=0.15)
    prewarm = PredictivePrewarm(PrewarmConfig(window_s=0.25, min_interval_s=0.05,
                                              horizon_prior_s=0.2, service_prior_s=0.02))  # fmt: skip
    result = run_load(arrivals, NoBatching(), function, payloads(),
                      LoadConfig(progress=False, max_in_flight=16), prewarm=prewarm)  # fmt: skip
    assert result.complete and len(result.requests) == len(arrivals)
    inv = result.invocations
    warmups = inv[inv["batch_size"] == 0]
    assert len(warmups) == function.warmups == prewarm.sent > 0
    assert warmups["error"].isna().all()
    assert result.requests["error"].isna().all()
    figures = metrics.summarize(result.requests, inv)
    assert figures["warmups"] == len(warmups) and figures["mean_batch_size"] == 1.0
    assert figures["invocations"] == len(arrivals) + len(warmups)  # billed like any invocation
