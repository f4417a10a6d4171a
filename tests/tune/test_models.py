"""The two models a search rests on: the figures it reads from the simulator's arrays (equal to
the lab's metrics), and the closed form it prunes with (close to the simulator where both
apply, a true bound where it claims one)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from labkit import metrics
from labkit.load.batching import PolicyConfig
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import PlatformProfile, SimConfig, run_platform
from labkit.tune import analytic, figures
from labkit.tune.objective import Slo

PROFILE = PlatformProfile(base_ms=12.0, per_image_ms=1.5, sigma=0.3,
                          overhead_ms=[25.0, 40.0, 55.0, 70.0, 90.0], init_ms=[2500.0])  # fmt: skip


@pytest.mark.parametrize("limit", [1000, 2])
def test_the_search_reads_the_figures_the_lab_computes(limit: int) -> None:
    """Cold starts, and (with a limit of 2 instances under a burst) throttles and failed
    batches: the same latency, SLO and cost as ``metrics.summarize`` over all requests."""
    arrivals = WorkloadConfig("bursty", duration_s=60, burst_rate=300, seed=2).arrivals()
    profile = dataclasses.replace(PROFILE, concurrency_limit=limit, memory_mb=1536)
    platform = run_platform(arrivals, PolicyConfig("dynamic", 4, 0.05).build(), profile,
                            SimConfig(concurrency=8, seed=1, throttle_retry_s=0.5))  # fmt: skip
    slo = Slo(200, 95)
    found = figures.from_platform(platform, arrivals, slo)
    result = platform.records(arrivals)
    lab = metrics.summarize(result.requests, result.invocations, slo_ms=200, memory_mb=1536)
    for name in ("slo_attainment_pct", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "errors",
                 "throttles", "invocations", "mean_batch_size", "cold_starts",
                 "cost_per_1m_requests_usd", "warm_cost_per_1m_requests_usd"):  # fmt: skip
        assert found[name] == pytest.approx(lab[name], rel=1e-9, nan_ok=True), name
    if limit == 2:
        assert found["errors"] > 0 and found["throttles"] > 0


@pytest.mark.parametrize(
    ("policy", "workload"),
    [(PolicyConfig("dynamic", 5, 0.1), WorkloadConfig("poisson", rate=20, duration_s=3000, seed=1)),
     (PolicyConfig("dynamic", 8, 0.05), WorkloadConfig("bursty", duration_s=3000, seed=1)),
     (PolicyConfig("static", 4), WorkloadConfig("poisson", rate=20, duration_s=3000, seed=1)),
     (PolicyConfig("none"), WorkloadConfig("poisson", rate=20, duration_s=3000, seed=1))],
)  # fmt: skip
def test_the_closed_form_agrees_with_the_simulator_where_both_apply(policy, workload) -> None:
    """Without cold starts (what the closed form leaves out): SLO attainment within 1.5
    points, the median within 3 %, the batch size within 2 %, the warm cost within 2 %."""
    warm = dataclasses.replace(PROFILE, init_ms=[0.0])
    model = analytic.predict(policy, workload, warm, 200, 95)
    run = run_platform(
        workload.arrivals(), policy.build(), warm, SimConfig(concurrency=1000, seed=4)
    )
    sim = figures.from_platform(run, workload.arrivals(), Slo(200, 95))
    assert model.attainment_pct == pytest.approx(sim["slo_attainment_pct"], abs=1.5)
    assert model.p50_ms == pytest.approx(sim["p50_ms"], rel=0.03)
    assert model.mean_batch_size == pytest.approx(sim["mean_batch_size"], rel=0.02)
    assert model.warm_cost_per_1m_usd == pytest.approx(
        sim["warm_cost_per_1m_requests_usd"], rel=0.02
    )


def test_the_best_case_bound_is_never_beaten_by_a_simulated_policy() -> None:
    """At 128 MB a batch of one alone misses 200 ms often; no policy does better."""
    small = PROFILE.at_memory(128)
    bound = analytic.best_case_attainment_pct(small, 200)
    assert 5 < bound < 95
    arrivals = WorkloadConfig("poisson", rate=30, duration_s=400, seed=3).arrivals()
    for policy in (
        PolicyConfig("none"),
        PolicyConfig("dynamic", 4, 0.02),
        PolicyConfig("static", 2),
    ):
        run = run_platform(arrivals, policy.build(), small, SimConfig(concurrency=1000, seed=5))
        assert (
            figures.from_platform(run, arrivals, Slo(200, 95))["slo_attainment_pct"] <= bound + 1.0
        )


def test_the_closed_form_says_where_it_does_not_apply() -> None:
    uniform = WorkloadConfig("uniform", rate=10)
    assert analytic.phases(uniform) is None
    assert not analytic.covers(PolicyConfig("dynamic"), uniform)
    assert not analytic.covers(PolicyConfig("slo-aware", 16), WorkloadConfig("poisson"))
    with pytest.raises(ValueError, match="covers none, static, dynamic"):
        analytic.predict(PolicyConfig("dynamic"), uniform, PROFILE, 200, 95)


def test_memory_scales_service_by_the_cpu_share() -> None:
    assert PROFILE.at_memory(1769).base_ms == pytest.approx(PROFILE.base_ms * 1024 / 1769)
    assert PROFILE.at_memory(3008).base_ms == PROFILE.at_memory(1769).base_ms  # one vCPU at most
    assert PROFILE.at_memory(512).init_ms == PROFILE.init_ms
    assert np.isclose(PROFILE.at_memory(512).service_s(4), PROFILE.service_s(4) * 2)
