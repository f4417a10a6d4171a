"""Network distance on the local Lambda: a round trip per invocation that shows in the
client's latency, not in the function's Duration and not in CPU."""

from __future__ import annotations

import math
import time
from pathlib import Path

import psutil
import pytest

from labkit.aws.invoke import LambdaInvoker
from labkit.emulator import FunctionConfig, LocalLambda
from labkit.emulator.network import PROFILES, NetworkProfile, network_profile

HANDLERS = Path(__file__).resolve().parents[1] / "handlers"


def test_profiles_are_stated_with_their_source() -> None:
    assert {"same-region", "laptop-to-region"} <= set(PROFILES)
    for profile in PROFILES.values():
        assert profile.source.startswith("stated") and profile.median_ms > 0
    assert network_profile(None) is None and network_profile("none") is None
    assert network_profile("laptop-to-region") is PROFILES["laptop-to-region"]
    assert network_profile(PROFILES["same-region"].describe()) == PROFILES["same-region"]
    with pytest.raises(ValueError, match="unknown network profile 'moon'"):
        network_profile("moon")
    with pytest.raises(ValueError, match="sigma"):
        NetworkProfile("x", median_ms=10, sigma=-1)


def test_round_trips_follow_the_stated_distribution_and_are_seeded() -> None:
    profile = NetworkProfile("x", median_ms=40, sigma=0.3, max_ms=200)
    draws = [profile.sampler(seed=1).next_s() for _ in range(3)]
    assert draws == [profile.sampler(seed=1).next_s() for _ in range(3)]
    trips = profile.sampler(seed=2)
    many = sorted(trips.next_s() * 1000 for _ in range(4000))
    assert many[2000] == pytest.approx(40, rel=0.05)  # the median
    assert many[3960] == pytest.approx(profile.p99_ms, rel=0.1)
    assert max(many) <= 200 and NetworkProfile("z", 0).sampler().next_s() == 0


@pytest.mark.slow
def test_the_round_trip_is_slept_outside_the_function_and_the_cpu() -> None:
    profile = NetworkProfile("fixed", median_ms=80.0)  # every invocation: exactly 80 ms
    config = FunctionConfig(name="f", code_dir=HANDLERS, handler="fault_handlers.noop")
    calls = 15
    with LocalLambda(config, network=profile, network_seed=0) as lam:
        invoker = LambdaInvoker(endpoint_url=lam.endpoint_url)
        invoker.invoke("f", {})  # the cold start, not timed
        service = psutil.Process(lam.pid)
        cpu_before = sum(service.cpu_times()[:2])
        start = time.perf_counter()
        results = [invoker.invoke("f", {}) for _ in range(calls)]
        wall_s = time.perf_counter() - start
        cpu_s = sum(service.cpu_times()[:2]) - cpu_before
    for result in results:
        assert result.round_trip_ms >= 80.0  # in the client's latency
        assert result.report is not None and result.report.duration_ms < 40  # not in Duration
    assert wall_s >= calls * 0.080
    assert cpu_s < 0.5 * calls * 0.080, f"the service spent {cpu_s:.3f} s of CPU"  # slept
    assert math.isfinite(cpu_s)
