"""A configuration's figures straight from the model's arrays: what the search reads.

The same definitions as :func:`labkit.metrics.summarize` over all requests (latency
percentiles over the answered requests, SLO attainment with failures as misses, cost as
:mod:`labkit.cost` bills it: one request fee and the billed duration, Init included, per
billed invocation), without building the record tables a notebook reads: for a search of
thousands of runs of 100,000 requests that is a third of each run's time
(``tests/tune/test_figures.py`` holds the two equal).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from labkit import cost
from labkit.sim.simulate import Platform
from labkit.tune.objective import Slo


def from_platform(platform: Platform, times: np.ndarray, slo: Slo,
                  prices: cost.Prices | None = None) -> dict[str, float]:  # fmt: skip
    """Latency, SLO, cold starts and cost of one model run (:func:`labkit.sim.simulate.run_platform`)."""
    run = platform.arrays(times)
    return figures(run.latency_ms, run.failed, slo, billed_ms=run.billed_ms, init_ms=run.init_ms,
                   sizes=run.sizes, throttles=run.throttles, memory_mb=platform.profile.memory_mb,
                   prices=prices or cost.Prices())  # fmt: skip


def figures(latency_ms: np.ndarray, failed: np.ndarray, slo: Slo, *, billed_ms: np.ndarray,
            init_ms: np.ndarray, sizes: np.ndarray, throttles: float, memory_mb: int,
            prices: cost.Prices, extra_usd: float = 0.0) -> dict[str, float]:  # fmt: skip
    """The figures from per-request latencies (ms) and failures, and per-invocation billed
    durations (billed invocations only), Init Durations (cold starts) and batch sizes.
    ``extra_usd``: what else the configuration pays (an SQS queue's requests)."""
    n = len(latency_ms)
    ok = latency_ms[~failed & np.isfinite(latency_ms)]
    met = (np.nan_to_num(latency_ms, nan=np.inf) <= slo.latency_ms) & ~failed
    gb = memory_mb / 1024.0
    total = (
        cost.on_demand_usd(len(billed_ms), float(billed_ms.sum()), memory_mb, prices) + extra_usd
    )
    init_usd = float(init_ms.sum()) / 1000.0 * gb * prices.per_gb_s
    nan = math.nan
    # one call for the four: numpy partitions once per call, and 100,000 latencies take ms
    p50, p95, p99, p_slo = (
        (float(x) for x in np.percentile(ok, [50, 95, 99, slo.percentile]))
        if ok.size
        else [nan] * 4
    )
    return {
        "requests": float(n),
        "slo_attainment_pct": float(met.mean() * 100.0) if n else nan,
        slo.percentile_column: p_slo,
        "mean_ms": float(ok.mean()) if ok.size else nan,
        "p50_ms": p50, "p95_ms": p95, "p99_ms": p99,
        "errors": float(failed.sum()),
        "throttles": throttles,
        "invocations": float(len(sizes)),
        "mean_batch_size": float(sizes[sizes > 0].mean()) if (sizes > 0).any() else nan,
        "cold_starts": float(len(init_ms)),
        "cost_per_1m_requests_usd": total / n * 1e6 if n else nan,
        "warm_cost_per_1m_requests_usd": (total - init_usd) / n * 1e6 if n else nan,
    }  # fmt: skip


def from_records(requests: Any, invocations: Any, slo: Slo, memory_mb: int,
                 prices: cost.Prices | None = None, extra_usd: float = 0.0) -> dict[str, float]:  # fmt: skip
    """The same figures from record tables (a queue's simulation, a live cell)."""
    inv = invocations
    billed = inv["billed_duration_ms"].dropna().to_numpy(float)
    return figures(
        requests["latency_ms"].to_numpy(float), requests["error"].notna().to_numpy(), slo,
        billed_ms=billed, init_ms=inv["init_duration_ms"].dropna().to_numpy(float),
        sizes=inv["batch_size"].to_numpy(float), throttles=float(inv["throttles"].sum()),
        memory_mb=memory_mb, prices=prices or cost.Prices(), extra_usd=extra_usd,
    )  # fmt: skip
