"""The course checker: is a student's batching policy correct, and how good is it?

Two parts, both deterministic so every student is graded on the same ground:

1. **Contract** (:func:`check_contract`): on fixed seeded workloads, replayed on a virtual
   clock, every request is in exactly one batch, no batch is empty, order is kept within a
   batch, no batch leaves before its requests arrived, nothing is left after the flush, and
   no batch exceeds the policy's stated maximum (64, the function's limit, by default).
2. **Score** (:func:`score`): the same workloads through a fixed model of the function (a warm
   invocation takes ``base_ms + per_image_ms x batch size``; one instance per concurrent
   batch, no cold starts) give each request's latency = wait for its batch + service time.
   SLO attainment and cost per 1M requests are compared with the paper's dynamic policy
   (N=5, T=0.3 s) on the same workloads. The model is stated, not measured: run the policy
   live with :class:`labkit.explore.Explorer` to see it on the real function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from labkit import cost
from labkit.batching import BatchingPolicy, DynamicBatching, Request, replay
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


@dataclass(frozen=True)
class ServiceModel:
    """The fixed function model used for scoring (warm, one instance per batch)."""

    base_ms: float = 15.0  # invocation overhead: network, runtime, JSON
    per_image_ms: float = 1.0
    memory_mb: int = 1024

    def service_ms(self, batch_size: int) -> float:
        return self.base_ms + self.per_image_ms * batch_size


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


def evaluate(factory: PolicyFactory, workload: WorkloadConfig, model: ServiceModel | None = None,
             slo_ms: float = 200.0) -> dict[str, float]:  # fmt: skip
    """SLO attainment, latency and cost of a policy on one workload under the service model."""
    model = model or ServiceModel()
    arrivals = workload.arrivals().tolist()
    batches = replay(factory(), arrivals)
    latency = np.empty(len(arrivals))
    billed = []
    for t, batch in batches:
        service = model.service_ms(len(batch))
        billed.append(math.ceil(service))
        for r in batch:
            latency[r.id] = (t - r.t_arrive) * 1000 + service
    bill = cost.invocation_cost(billed, model.memory_mb)
    return {
        "requests": float(len(arrivals)),
        "invocations": float(len(batches)),
        "mean_batch_size": len(arrivals) / max(len(batches), 1),
        "mean_ms": float(latency.mean()) if len(arrivals) else math.nan,
        "p99_ms": float(np.percentile(latency, 99)) if len(arrivals) else math.nan,
        "slo_attainment_pct": float((latency <= slo_ms).mean() * 100)
        if len(arrivals)
        else math.nan,
        "cost_per_1m_requests_usd": bill.per_million(len(arrivals)),
    }


def score(
    factory: PolicyFactory, *, slo_ms: float = 200.0, model: ServiceModel | None = None
) -> pd.DataFrame:
    """The student's policy beside the paper's dynamic policy on every check workload."""
    rows = []
    for name, workload in CHECK_WORKLOADS.items():
        if name.startswith("edge-"):
            continue
        yours = evaluate(factory, workload, model, slo_ms)
        paper = evaluate(lambda: DynamicBatching(5, 0.3), workload, model, slo_ms)
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
