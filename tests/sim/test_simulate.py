"""The simulator: live record schema, nothing lost, determinism, the platform's rules, and
profile fitting that recovers what it was given."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from labkit import metrics
from labkit.load.batching import (
    DynamicBatching,
    NoBatching,
    PolicyConfig,
    SloAwareBatching,
    StaticBatching,
)
from labkit.load.workloads import WorkloadConfig
from labkit.records import INVOCATION_COLUMNS, REQUEST_COLUMNS
from labkit.sim import simulate

PROFILE = simulate.PlatformProfile(base_ms=10, per_image_ms=1, sigma=0.0, overhead_ms=[5.0],
                                   init_ms=[1000.0], keep_alive_s=60)  # fmt: skip


def test_records_have_the_live_schema_and_nothing_is_lost() -> None:
    arrivals = np.sort(np.random.default_rng(0).uniform(0, 30, 600))
    result = simulate.simulate(arrivals, DynamicBatching(5, 0.3), PROFILE)
    assert list(result.requests.columns) == REQUEST_COLUMNS
    assert list(result.invocations.columns) == INVOCATION_COLUMNS
    assert len(result.requests) == 600 and result.complete
    assert result.invocations["batch_size"].sum() == 600
    assert (result.requests["latency_ms"] > 0).all()
    metrics.summarize(result.requests, result.invocations)  # the analysis works unchanged


def test_latency_by_hand() -> None:
    # One request: cold start 1000 ms + service 11 ms + overhead 5 ms, no waiting.
    result = simulate.simulate(np.array([0.0]), NoBatching(), PROFILE)
    assert result.requests["latency_ms"].iloc[0] == pytest.approx(1016.0)
    assert result.invocations["billed_duration_ms"].iloc[0] == 1011
    # Static batch of 2: the first waits 0.1 s for the second; the instance is warm by then?
    warm = simulate.simulate(np.array([0.0, 2.0, 2.1]), StaticBatching(2), PROFILE,
                             simulate.SimConfig(concurrency=1))  # fmt: skip
    assert warm.invocations["cold_start"].tolist() == [True, False]


def test_measured_per_size_service_and_client_time_are_used() -> None:
    profile = simulate.PlatformProfile(**{**PROFILE.__dict__, "service_ms_by_size": {"1": 20.0},
                                          "client_ms": 0.5})  # fmt: skip
    result = simulate.simulate(np.array([0.0]), NoBatching(), profile)
    # cold start 1000 + the measured 20 ms for one image (not the line's 11) + 5 + 0.5
    assert result.requests["latency_ms"].iloc[0] == pytest.approx(1025.5)
    pair = simulate.simulate(np.array([0.0, 0.01]), StaticBatching(2), profile)
    assert pair.invocations["duration_ms"].iloc[0] == pytest.approx(12.0)  # size 2: the line


def test_same_seed_same_result_and_policy_reuse() -> None:
    arrivals = np.sort(np.random.default_rng(1).uniform(0, 20, 300))
    profile = simulate.PlatformProfile(
        sigma=0.3, overhead_ms=[3.0, 5.0, 9.0], init_ms=[900.0, 1500.0]
    )
    a = simulate.simulate(arrivals, DynamicBatching(), profile, simulate.SimConfig(seed=4))
    b = simulate.simulate(arrivals, DynamicBatching(), profile, simulate.SimConfig(seed=4))
    pd.testing.assert_frame_equal(a.requests, b.requests)


def test_keep_alive_retires_idle_instances() -> None:
    arrivals = np.array([0.0, 30.0, 200.0])  # 170 s idle > keep-alive 60 s
    result = simulate.simulate(arrivals, NoBatching(), PROFILE, simulate.SimConfig(concurrency=1))
    assert result.invocations["cold_start"].tolist() == [True, False, True]


def test_provisioned_instances_never_cold_start() -> None:
    result = simulate.simulate(np.arange(0, 5, 0.1), NoBatching(), PROFILE,
                               simulate.SimConfig(concurrency=2, provisioned=2))  # fmt: skip
    assert not result.invocations["cold_start"].any()


def test_client_concurrency_queues_and_the_limit_throttles() -> None:
    burst = np.zeros(50)  # 50 requests at once, 10 in flight at most
    result = simulate.simulate(burst, NoBatching(), PROFILE, simulate.SimConfig(concurrency=10))
    assert simulate.peak_concurrency(result.invocations) == 10
    assert result.invocations["cold_start"].sum() == 10
    limited = simulate.PlatformProfile(**{**PROFILE.__dict__, "concurrency_limit": 3})
    throttled = simulate.simulate(burst, NoBatching(), limited, simulate.SimConfig(concurrency=10))
    assert simulate.peak_concurrency(throttled.invocations) == 3 and throttled.complete


def test_a_throttled_batch_keeps_its_client_slot_and_backs_off_as_the_load_generator_does() -> None:
    """A 429 keeps the worker's slot; retries wait a jittered back-off from 20 ms that doubles
    up to 1 s (labkit.load.loadgen), and the record counts them."""
    profile = simulate.PlatformProfile(base_ms=1000, per_image_ms=0, sigma=0.0, overhead_ms=[0.0],
                                       init_ms=[0.0], concurrency_limit=1)  # fmt: skip
    result = simulate.simulate(
        np.zeros(3), NoBatching(), profile, simulate.SimConfig(concurrency=2)
    )
    inv = result.invocations.sort_values("t_start_s")
    # the first holds the only instance for 1 s; the third waits for a client slot and takes
    # the instance the moment the first ends, while the second is still backing off
    assert list(inv["throttles"])[:2] == [0, 0] and inv.iloc[1]["t_start_s"] == 1.0
    # the second retries until the instance is free at 2 s: at least 7 retries (six back-offs
    # of 20 ms * 2^(k-1) * [0.5, 1.5) add up to at most 1.89 s), at most 10 (at least 0.63 s,
    # then >= 0.5 s each); a fixed 20 ms back-off would retry ~100 times
    retried = inv.iloc[2]
    assert 7 <= retried["throttles"] <= 10
    assert 2.0 <= retried["t_start_s"] < 2.0 + 1.5  # within one capped back-off of the free
    assert result.complete


def test_a_batch_throttled_past_the_retry_limit_fails_unbilled_and_frees_its_slot() -> None:
    """As the load generator does: after ``throttle_retry_s`` of 429s the batch fails with
    TooManyRequestsException; it is not billed, and the next batch gets the client slot."""
    profile = simulate.PlatformProfile(base_ms=40_000, per_image_ms=0, sigma=0.0,
                                       overhead_ms=[0.0], init_ms=[0.0], concurrency_limit=1)  # fmt: skip
    arrivals = np.array([0.0, 0.0, 45.0])
    result = simulate.simulate(arrivals, NoBatching(), profile, simulate.SimConfig(concurrency=2))
    req = result.requests.set_index("request_id")
    inv = result.invocations.set_index("batch_id")
    assert req.loc[1, "error"] == "TooManyRequestsException"
    assert req.loc[0, "error"] is None and req.loc[2, "error"] is None
    # the first holds the only instance for 40 s; the second gives up before its next wait
    # (at most 1 s) would pass 30 s
    assert 29.0 <= req.loc[1, "t_done_s"] <= 30.0
    assert req.loc[2, "t_done_s"] == 85.0  # the freed slot took the third at 45 s
    gave_up = inv.loc[req.loc[1, "batch_id"]]
    # back-offs of 20 ms doubling to 1 s, each x [0.5, 1.5): 25-66 tries fill 30 s
    assert 20 <= gave_up["throttles"] <= 70
    assert np.isnan(gave_up["billed_duration_ms"]) and not gave_up["cold_start"]
    # its record starts at its first try, as the load generator's; its round trip is the last
    # (refused) attempt's, so the 30 s of back-off count as waiting
    assert gave_up["t_start_s"] == 0.0 and gave_up["round_trip_ms"] == 0.0
    assert result.complete and inv["error"].notna().sum() == 1
    figures = metrics.summarize(result.requests, result.invocations)
    assert figures["errors"] == 1 and figures["invocations"] == 3
    at_once = simulate.simulate(arrivals, NoBatching(), profile,
                                simulate.SimConfig(concurrency=2, throttle_retry_s=0.0))  # fmt: skip
    failed = at_once.invocations[at_once.invocations["error"].notna()]
    assert list(failed["throttles"]) == [1] and list(failed["t_done_s"]) == [0.0]
    with pytest.raises(ValueError, match="throttle_retry_s"):
        simulate.SimConfig(throttle_retry_s=-1.0)


def test_scaling_rate_caps_new_instances() -> None:
    burst = np.zeros(3000)
    profile = simulate.PlatformProfile(base_ms=50, per_image_ms=0, sigma=0.0, overhead_ms=[0.0],
                                       init_ms=[20000.0], concurrency_limit=5000)  # fmt: skip
    result = simulate.simulate(burst, NoBatching(), profile, simulate.SimConfig(concurrency=5000))
    first_10s = result.invocations[result.invocations["t_start_s"] < 10.0]
    assert first_10s["cold_start"].sum() == simulate.SCALING_PER_10S
    assert result.complete


def test_slo_aware_policy_runs_in_the_simulator_and_learns() -> None:
    arrivals = np.sort(np.random.default_rng(2).uniform(0, 60, 3000))
    result = simulate.simulate(arrivals, SloAwareBatching(16), PROFILE)
    figures = metrics.summarize(result.requests, result.invocations)
    assert figures["mean_batch_size"] > 3 and figures["slo_attainment_pct"] > 90


def test_fit_profile_recovers_the_service_model() -> None:
    profile = simulate.PlatformProfile(base_ms=8, per_image_ms=2, sigma=0.1, overhead_ms=[4.0],
                                       init_ms=[1500.0, 1700.0])  # fmt: skip
    arrivals = np.sort(np.random.default_rng(3).uniform(0, 300, 6000))
    result = simulate.simulate(arrivals, DynamicBatching(8, 0.05), profile)
    fitted = simulate.fit_profile(result.invocations)
    assert fitted.base_ms == pytest.approx(8, rel=0.15)
    assert fitted.per_image_ms == pytest.approx(2, rel=0.15)
    assert np.median(fitted.overhead_ms) == pytest.approx(4.0, abs=0.5)
    assert set(fitted.init_ms) <= {1500.0, 1700.0}
    for size, median in fitted.service_ms_by_size.items():  # per-size medians near the line
        assert median == pytest.approx(8 + 2 * int(size), rel=0.1)


def test_profiles_load_and_round_trip(tmp_path) -> None:
    aws = simulate.PlatformProfile.load("paper-aws")
    assert aws.name == "paper-aws" and "stated" in aws.source
    local = simulate.PlatformProfile.load("local")
    assert "fitted" in local.source and local.init_ms and local.base_ms > 0
    path = PROFILE.save(tmp_path / "p.json")
    assert simulate.PlatformProfile.load(path) == PROFILE
    with pytest.raises(FileNotFoundError):
        simulate.PlatformProfile.load("no-such-profile")
    with pytest.raises(ValueError, match="at least 5 warm"):
        simulate.fit_profile(pd.DataFrame(columns=INVOCATION_COLUMNS))


def test_synthetic_day_and_nxt_sweep() -> None:
    counts = simulate.synthetic_day_counts(2.0, seed=0)
    assert len(counts) == 1440 and counts.sum() / 86400 == pytest.approx(2.0, rel=0.05)
    table = simulate.nxt_sweep(np.sort(np.random.default_rng(0).uniform(0, 30, 600)), PROFILE,
                               [1, 5], [0.1, 0.3])  # fmt: skip
    assert len(table) == 4
    one = table[table["N"] == 1]["cost_per_1m_requests_usd"].iloc[0]
    five = table[table["N"] == 5]["cost_per_1m_requests_usd"].max()
    assert five < one  # batching cuts the cost per request


def test_a_rate_sweep_marks_where_the_policies_send_the_same_batches() -> None:
    from labkit.load.batching import PolicyConfig
    from labkit.load.workloads import WorkloadConfig

    policies = [PolicyConfig("static", 5), PolicyConfig("dynamic", 5, 0.3)]
    sweep = simulate.rate_sweep(WorkloadConfig("uniform", duration_s=60), [8.0, 25.0], policies,
                                PROFILE, slo_ms=200.0)  # fmt: skip
    same = sweep.groupby("rate")["same_batches"].all()
    assert not same[8.0] and same[25.0]  # below and above (N-1)/T = 13.3/s
    at_25 = sweep[sweep["rate"] == 25.0].set_index("policy")
    assert at_25.loc["static", "mean_ms"] == pytest.approx(
        at_25.loc["dynamic", "mean_ms"], rel=0.02
    )
    at_8 = sweep[sweep["rate"] == 8.0].set_index("policy")
    assert at_8.loc["dynamic", "mean_ms"] < at_8.loc["static", "mean_ms"]


def test_a_network_adds_its_round_trip_to_the_overhead() -> None:
    from labkit.emulator.network import NetworkProfile

    far = simulate.add_network(PROFILE, NetworkProfile("far", median_ms=50.0), seed=1)
    assert np.median(far.overhead_ms) == pytest.approx(55.0)  # 5 ms of its own + 50
    assert "far" in far.name and "far" in far.source
    # a queue's client sends across half the trip and reads its answers across the other half
    assert np.median(far.queue_pickup_ms) == pytest.approx(
        np.median(PROFILE.queue_pickup_ms) + 25.0
    )
    assert np.median(far.queue_answer_ms) == pytest.approx(
        np.median(PROFILE.queue_answer_ms) + 25.0
    )
    assert far.queue_extra_ms == PROFILE.queue_extra_ms  # the handler's sends stay in the region


@pytest.mark.parametrize(
    "policy", [PolicyConfig("none"), PolicyConfig("static", 4), PolicyConfig("dynamic", 5, 0.3)]
)
def test_batches_formed_first_give_the_records_of_the_coupled_loop(policy: PolicyConfig) -> None:
    """A policy that does not learn is simulated as batches formed first, then served; the
    same policy run coupled (made to look as if it learned) gives the very same records,
    throttles and cold starts included."""
    arrivals = WorkloadConfig("bursty", duration_s=40, burst_rate=400, seed=3).arrivals()
    limited = dataclasses.replace(PROFILE, concurrency_limit=3, keep_alive_s=2.0, sigma=0.3,
                                  overhead_ms=[3.0, 5.0, 9.0], init_ms=[800.0, 1200.0])  # fmt: skip
    config = simulate.SimConfig(concurrency=4, seed=9)

    class Coupled(type(policy.build())):  # type: ignore[misc]
        def observe(self, batch_size: int, service_s: float, cold_start: bool) -> None:
            return None

    coupled = Coupled.__new__(Coupled)
    coupled.__dict__.update(policy.build().__dict__)
    assert coupled.learns and not policy.build().learns
    formed = simulate.simulate(arrivals, policy.build(), limited, config)
    served = simulate.simulate(arrivals, coupled, limited, config)
    assert formed.invocations["throttles"].sum() > 0 and formed.invocations["cold_start"].sum() > 1
    pd.testing.assert_frame_equal(formed.requests, served.requests)
    pd.testing.assert_frame_equal(formed.invocations, served.invocations)
