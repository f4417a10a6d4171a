"""The course checker: is a student's batching policy correct, and how good is it?

Two parts, both deterministic so every student is graded on the same ground:

1. **Contract** (:func:`check_contract`): on fixed seeded workloads, replayed on a virtual
   clock, every request is in exactly one batch, no batch is empty, order is kept within a
   batch, no batch leaves before its requests arrived, nothing is left after the flush, and
   no batch exceeds the policy's stated maximum (64, the function's limit, by default).
2. **Score** (:func:`score`): the same workloads through the kit's one platform model
   (:mod:`labkit.simulate`) with a stated profile, :data:`CHECKER_PROFILE`: a warm
   invocation takes ``15 ms + 1 ms x batch size``, no noise, no network, no cold starts,
   one instance per concurrent batch; so a request's latency is its wait for the batch plus
   the service time. SLO attainment and cost per 1M requests (:func:`labkit.metrics.summarize`)
   are compared with the paper's dynamic policy (N=5, T=0.3 s) on the same workloads. The
   model is stated, not measured: run the policy live with :class:`labkit.explore.Explorer`
   to see it on the real function.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from labkit import metrics
from labkit.batching import BatchingPolicy, DynamicBatching, Request, replay
from labkit.simulate import PlatformProfile, SimConfig, simulate
from labkit.workloads import WorkloadConfig

PolicyFactory = Callable[[], BatchingPolicy]

# Fixed, seeded workloads every student is graded on.
CHECK_WORKLOADS: dict[str, WorkloadConfig] = {
    "uniform-slow": WorkloadConfig("uniform", rate=5, duration_s=60),
    "uniform-fast": WorkloadConfig("uniform", rate=50, duration_s=60),
    "poisson": WorkloadConfig("poisson", rate=20, duration_s=60, seed=7),
    "bursty": WorkloadConfig(
        "bursty", base_rate=8, burst_rate=60, burst_s=1, period_s=5, duration_s=60, seed=11
    ),
    "edge-empty-gaps": WorkloadConfig(
        "bursty", base_rate=0, burst_rate=100, burst_s=0.2, period_s=10, duration_s=60, seed=3
    ),
}


#: The stated function the score is computed on (a model, not a measurement).
CHECKER_PROFILE = PlatformProfile(
    name="checker", source="stated: warm invocation 15 ms + 1 ms per image; no noise, no "
    "network, no cold starts; one instance per concurrent batch", base_ms=15.0, per_image_ms=1.0,
    sigma=0.0, overhead_ms=[0.0], init_ms=[0.0], memory_mb=1024, concurrency_limit=1_000_000,
)  # fmt: skip
UNLIMITED = 1_000_000  # instances in flight: the model never queues a batch


class ContractViolation(AssertionError):
    """The policy broke the batching contract; the message says how and where."""


def check_contract(factory: PolicyFactory, max_batch: int = 64) -> dict[str, int]:
    """Raise :class:`ContractViolation` at the first broken rule; returns batches per workload."""
    counts = {}
    for name, workload in CHECK_WORKLOADS.items():
        arrivals = workload.arrivals().tolist()
        try:
            batches = replay(factory(), arrivals)
        except Exception as exc:  # a crash is a violation too, reported with its workload
            raise ContractViolation(
                f"{name}: the policy raised {type(exc).__name__}: {exc}"
            ) from exc
        _check_batches(name, arrivals, batches, max_batch)
        counts[name] = len(batches)
    return counts


def _check_batches(name: str, arrivals: list[float], batches: list[tuple[float, list[Request]]],
                   max_batch: int) -> None:  # fmt: skip
    seen: dict[int, int] = {}
    for number, (t, batch) in enumerate(batches):
        if not batch:
            raise ContractViolation(f"{name}: batch {number} is empty")
        if len(batch) > max_batch:
            raise ContractViolation(
                f"{name}: batch {number} has {len(batch)} requests (max {max_batch})"
            )
        ids = [r.id for r in batch]
        if ids != sorted(ids):
            raise ContractViolation(f"{name}: batch {number} reorders requests: {ids[:10]}")
        for r in batch:
            if r.id in seen:
                raise ContractViolation(
                    f"{name}: request {r.id} is in batches {seen[r.id]} and {number}"
                )
            seen[r.id] = number
            if r.t_arrive > t + 1e-9:
                raise ContractViolation(f"{name}: request {r.id} sent at {t:.3f}s before it arrived "
                                        f"({r.t_arrive:.3f}s)")  # fmt: skip
    missing = set(range(len(arrivals))) - set(seen)
    if missing:
        raise ContractViolation(
            f"{name}: {len(missing)} request(s) never sent, e.g. {sorted(missing)[:5]}"
        )


def evaluate(factory: PolicyFactory, workload: WorkloadConfig,
             profile: PlatformProfile = CHECKER_PROFILE, slo_ms: float = 200.0) -> dict[str, float]:  # fmt: skip
    """SLO attainment, latency and cost of a policy on one workload under ``profile``."""
    result = simulate(workload.arrivals(), factory(), profile,
                      SimConfig(concurrency=UNLIMITED, slo_s=slo_ms / 1000.0))  # fmt: skip
    return metrics.summarize(result.requests, result.invocations, slo_ms=slo_ms,
                             memory_mb=profile.memory_mb)  # fmt: skip


def score(
    factory: PolicyFactory, *, slo_ms: float = 200.0, profile: PlatformProfile = CHECKER_PROFILE
) -> pd.DataFrame:
    """The student's policy beside the paper's dynamic policy on every check workload."""
    rows = []
    for name, workload in CHECK_WORKLOADS.items():
        if name.startswith("edge-"):
            continue
        yours = evaluate(factory, workload, profile, slo_ms)
        paper = evaluate(lambda: DynamicBatching(5, 0.3), workload, profile, slo_ms)
        rows.append({
            "workload": name,
            "slo_pct": yours["slo_attainment_pct"], "slo_pct_paper": paper["slo_attainment_pct"],
            "p99_ms": yours["p99_ms"], "p99_ms_paper": paper["p99_ms"],
            "cost_1m_usd": yours["cost_per_1m_requests_usd"],
            "cost_1m_usd_paper": paper["cost_per_1m_requests_usd"],
            "slo_at_least_paper": yours["slo_attainment_pct"] >= paper["slo_attainment_pct"] - 0.5,
            "cost_at_most_paper": yours["cost_per_1m_requests_usd"]
            <= paper["cost_per_1m_requests_usd"] * 1.0001,
        })  # fmt: skip
    return pd.DataFrame(rows).round(4)


def grade(factory: PolicyFactory, *, slo_ms: float = 200.0) -> dict[str, object]:
    """Contract first (a violation scores zero: 0 of 100), then 40 points for the contract,
    30 x the share of workloads where SLO attainment is at least the paper policy's (within
    0.5 points), 30 x the share where cost per 1M requests is at most the paper policy's."""
    try:
        check_contract(factory)
    except ContractViolation as exc:
        return {"contract": f"FAILED: {exc}", "points": 0, "table": None}
    table = score(factory, slo_ms=slo_ms)
    points = 40 + round(
        30 * table["slo_at_least_paper"].mean() + 30 * table["cost_at_most_paper"].mean()
    )
    return {"contract": "passed", "points": points, "table": table}
