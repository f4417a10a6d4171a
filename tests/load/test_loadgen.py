"""The open-loop load generator against an in-process fake function (no processes, fast):
one record per arrival, open-loop release, throttling retried, failures kept, stops kept."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from labkit.aws.invoke import InvocationResult, ReportFields, ThrottledError
from labkit.load.batching import DynamicBatching, NoBatching, StaticBatching
from labkit.load.loadgen import LoadConfig, Payloads, run_load
from tests.load.conftest import payloads


class FakeFunction:
    """Answers each instance with label = its image number % 10, after ``service_s``."""

    def __init__(self, service_s: float = 0.0, fail_on: int | None = None, throttle_first: int = 0):
        self.service_s, self.fail_on, self.throttles_left = service_s, fail_on, throttle_first
        self.calls: list[int] = []
        self.lock = threading.Lock()
        self.cold = True

    def __call__(self, event: dict[str, Any]) -> InvocationResult:
        with self.lock:
            if self.throttles_left:
                self.throttles_left -= 1
                raise ThrottledError(
                    "Rate exceeded", "ReservedFunctionConcurrentInvocationLimitExceeded"
                )
            cold, self.cold = self.cold, False
            self.calls.append(len(event["instances"]))
        time.sleep(self.service_s)  # the fake function's own service time
        ids = [int(i["id"]) for i in event["instances"]]
        report = ReportFields("r", 1.0, 2, 1024, 100, init_duration_ms=50.0 if cold else None)
        if self.fail_on is not None and self.fail_on in ids:
            return InvocationResult(
                "r", 200, {"errorType": "ValueError"}, "Unhandled", report, "", 1.0
            )
        predictions = [
            {"id": i["id"], "label": int(i["image_b64"][3:]) % 10} for i in event["instances"]
        ]
        return InvocationResult("r", 200, {"predictions": predictions}, None, report, "", 1.0)


def quiet(**kwargs: Any) -> LoadConfig:
    return LoadConfig(progress=False, **kwargs)


def test_every_arrival_has_exactly_one_record() -> None:
    arrivals = np.linspace(0, 0.3, 31)
    result = run_load(arrivals, DynamicBatching(5, 0.05), FakeFunction(), payloads(), quiet())
    assert result.complete
    assert sorted(result.requests["request_id"]) == list(range(31))
    assert result.requests["correct"].all() and result.requests["error"].isna().all()
    assert result.invocations["batch_size"].sum() == 31
    assert result.requests["cold_start"].sum() == result.invocations.iloc[0]["batch_size"]


def test_latency_counts_from_the_scheduled_arrival() -> None:
    result = run_load([0.0, 0.1], StaticBatching(2), FakeFunction(), payloads(), quiet())
    first = result.requests.iloc[0]
    assert first["latency_ms"] >= 100.0  # waited for its batchmate
    assert first["latency_ms"] == pytest.approx((first["t_done_s"] - first["t_arrive_s"]) * 1000)
    assert first["t_release_s"] >= first["t_arrive_s"]


def test_open_loop_releases_on_schedule_whatever_is_in_flight() -> None:
    # Each invocation takes 0.2 s; requests every 0.02 s must still be released on time.
    arrivals = np.arange(0, 0.4, 0.02)
    result = run_load(
        arrivals, NoBatching(), FakeFunction(service_s=0.2), payloads(), quiet(max_in_flight=20)
    )
    lag = result.requests["t_release_s"] - result.requests["t_arrive_s"]
    assert lag.max() < 0.05
    assert result.invocations["t_start_s"].diff().dropna().max() < 0.1


def test_throttling_is_retried_and_recorded() -> None:
    result = run_load([0.0], NoBatching(), FakeFunction(throttle_first=3), payloads(), quiet())
    assert result.requests["error"].isna().all()
    assert result.invocations["throttles"].tolist() == [3]


def test_throttling_past_the_retry_budget_fails_the_batch() -> None:
    fake = FakeFunction(throttle_first=10_000)
    result = run_load([0.0, 0.0], StaticBatching(2), fake, payloads(), quiet(throttle_retry_s=0.1))
    assert result.requests["error"].tolist() == ["TooManyRequestsException"] * 2
    assert len(result.requests) == 2 and result.complete
    (invocation,) = result.invocations.itertuples()
    # the round trip is the last (refused) attempt's: the back-off before it is waiting
    waited_s = invocation.t_done_s - invocation.round_trip_ms / 1000 - invocation.t_dispatch_s
    assert invocation.throttles > 1
    assert waited_s > 0.9 * (invocation.t_done_s - invocation.t_dispatch_s) > 0


def test_a_failed_invocation_fails_each_of_its_requests() -> None:
    result = run_load(
        [0.0, 0.0, 0.0, 0.01], StaticBatching(2), FakeFunction(fail_on=1), payloads(), quiet()
    )
    errors = result.requests.set_index("request_id")["error"]
    assert errors[0] == errors[1] == "ValueError"
    assert errors[2:].isna().all() and len(result.requests) == 4


def test_an_exception_in_the_client_is_a_recorded_failure() -> None:
    def broken(event: dict[str, Any]) -> InvocationResult:
        raise ConnectionError("refused")

    result = run_load([0.0], NoBatching(), broken, payloads(), quiet())
    assert result.requests["error"].tolist() == ["ConnectionError"]


class InterruptedAt(NoBatching):
    """Ctrl-C arrives while the 50th request is being released (raised in the load loop)."""

    def offer(self, request, now):
        if request.id == 50:
            raise KeyboardInterrupt
        return super().offer(request, now)


def test_a_stop_keeps_the_records_so_far_marked_incomplete() -> None:
    result = run_load(np.arange(0, 2, 0.01), InterruptedAt(), FakeFunction(), payloads(), quiet())
    assert not result.complete and result.stopped_by == "KeyboardInterrupt"
    assert len(result.requests) == 200  # nothing dropped
    errors = result.requests.set_index("request_id")["error"]
    assert errors[:50].isna().all()  # sent before the stop, answered during the drain
    assert (errors[50:] == "NotSent").all()


def test_an_exception_in_the_loop_is_kept_as_the_reason() -> None:
    class Broken(NoBatching):
        def poll(self, now):
            raise RuntimeError("policy bug")

    result = run_load([0.0, 0.5], Broken(), FakeFunction(), payloads(), quiet())
    assert not result.complete and "policy bug" in (result.stopped_by or "")
    assert len(result.requests) == 2


def test_bad_arrivals_are_refused() -> None:
    with pytest.raises(ValueError, match="sorted"):
        run_load([1.0, 0.5], NoBatching(), FakeFunction(), payloads(), quiet())
    with pytest.raises(ValueError, match="max_in_flight"):
        LoadConfig(max_in_flight=0)


@pytest.mark.slow
def test_end_to_end_on_the_local_lambda_with_failures_and_throttling() -> None:
    """Against the embedded local Lambda: one instance at most, three invocations in flight,
    so the emulator throttles (429) and the generator retries; batches with an id ending in 3
    fail. Every arrival still has exactly one record."""
    from pathlib import Path

    from labkit.aws.invoke import LambdaInvoker
    from labkit.emulator import FunctionConfig, LocalLambda

    handlers = Path(__file__).resolve().parents[1] / "handlers"
    config = FunctionConfig(name="f", code_dir=handlers, handler="fault_handlers.mnist_like",
                            concurrency=1)  # fmt: skip
    payloads_ = Payloads([{"id": "x", "image_b64": "AA=="}], np.zeros(1, dtype=int))
    with LocalLambda(config) as lam:
        invoker = LambdaInvoker(endpoint_url=lam.endpoint_url, max_connections=3)
        result = run_load(np.arange(0, 1.0, 0.02), StaticBatching(2),
                          lambda event: invoker.invoke("f", event), payloads_,
                          quiet(max_in_flight=3, throttle_retry_s=20))  # fmt: skip
    requests = result.requests.set_index("request_id")
    assert len(requests) == 50 and result.complete
    assert result.invocations["throttles"].sum() > 0
    failed = requests[requests["error"].notna()]
    assert set(failed.index) == {
        i for i in range(50) if i // 2 in {j // 2 for j in range(3, 50, 10)}
    }
    assert (failed["error"] == "ValueError").all()
    assert requests.loc[requests["error"].isna(), "correct"].all()  # label 0 == label 0
    assert result.invocations["cold_start"].sum() == 1
