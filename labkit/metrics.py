"""Latency, SLO, cold-start and cost figures of a cell, with bootstrap confidence intervals.

Definitions are DESIGN.md's: latency from the scheduled arrival to the response; percentiles
with linear interpolation (numpy's default) over all requests after an optional warm-up cut;
SLO attainment counts a failed request as a miss; a cold start is an invocation whose REPORT
carries Init Duration.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost

STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "mean_ms": np.mean,
    "p50_ms": lambda x: np.percentile(x, 50),
    "p99_ms": lambda x: np.percentile(x, 99),
}


def _after_warmup(requests: pd.DataFrame, warmup_s: float) -> pd.DataFrame:
    if warmup_s < 0:
        raise ValueError(f"warmup_s must be >= 0, not {warmup_s}")
    return requests[requests["t_arrive_s"] >= warmup_s] if warmup_s else requests


def slo_attainment_pct(
    latency_ms: pd.Series | np.ndarray, slo_ms: float, failed: Any = None
) -> float:
    """Share (%) of requests answered within ``slo_ms``; failures and NaN latencies miss."""
    latency = np.asarray(latency_ms, dtype=float)
    if latency.size == 0:
        return float("nan")
    met = np.nan_to_num(latency, nan=np.inf) <= slo_ms
    if failed is not None:
        met &= ~np.asarray(failed, dtype=bool)
    return float(met.mean() * 100.0)


def summarize(
    requests: pd.DataFrame,
    invocations: pd.DataFrame,
    *,
    slo_ms: float = 200.0,
    warmup_s: float = 0.0,
    memory_mb: int = 1024,
    prices: cost.Prices | None = None,
    provisioned_instances: int = 0,
    provisioned_seconds: float = 0.0,
) -> dict[str, float]:
    """The figures of one cell (see the module docstring for definitions)."""
    if slo_ms <= 0:
        raise ValueError(f"slo_ms must be > 0, not {slo_ms}")
    req = _after_warmup(requests, warmup_s)
    failed = req["error"].notna().to_numpy()
    ok = req.loc[~failed, "latency_ms"].to_numpy(dtype=float)
    inv = invocations
    init = inv["init_duration_ms"].dropna().astype(float)
    billed = inv["billed_duration_ms"].dropna().astype(float)
    bill = cost.invocation_cost(
        billed, memory_mb, init_ms=init, prices=prices or cost.Prices(),
        provisioned_instances=provisioned_instances, provisioned_seconds=provisioned_seconds,
    )  # fmt: skip
    answered = req.loc[~failed]
    sizes = inv["batch_size"].to_numpy(dtype=float)
    figures = {
        "n": float(len(req)),
        "mean_ms": float(ok.mean()) if ok.size else float("nan"),
        "p50_ms": float(np.percentile(ok, 50)) if ok.size else float("nan"),
        "p95_ms": float(np.percentile(ok, 95)) if ok.size else float("nan"),
        "p99_ms": float(np.percentile(ok, 99)) if ok.size else float("nan"),
        "max_ms": float(ok.max()) if ok.size else float("nan"),
        "slo_attainment_pct": slo_attainment_pct(req["latency_ms"], slo_ms, failed),
        "errors": float(failed.sum()),
        "throttles": float(inv["throttles"].sum()) if "throttles" in inv else 0.0,
        "invocations": float(len(inv)),
        # Warm-ups (batch size 0, see labkit.prewarm) are invocations and billed, not batches.
        "mean_batch_size": float(sizes[sizes > 0].mean()) if (sizes > 0).any() else float("nan"),
        "warmups": float((sizes == 0).sum()),
        "cold_starts": float(len(init)),
        "init_mean_ms": float(init.mean()) if len(init) else 0.0,
        "init_duration_ms": float(init.sum()),
        "accuracy_pct": float(answered["correct"].mean() * 100) if len(answered) else float("nan"),
        "cost_usd": bill.total_usd,
        "request_usd": bill.request_usd,
        "compute_usd": bill.compute_usd,
        "init_usd": bill.init_usd,
        "provisioned_usd": bill.provisioned_usd,
        "cost_per_1m_requests_usd": bill.per_million(len(requests)),
    }
    return figures


def bootstrap_ci(
    values: np.ndarray | pd.Series,
    statistic: Callable[[np.ndarray], float] | str,
    *,
    n_boot: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """A percentile-bootstrap confidence interval of ``statistic`` over ``values``."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return (float("nan"), float("nan"))
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), not {level}")
    stat = STATISTICS[statistic] if isinstance(statistic, str) else statistic
    rng = np.random.default_rng(seed)
    # Resample in chunks so memory stays bounded for long runs.
    estimates = []
    for start in range(0, n_boot, 100):
        idx = rng.integers(0, x.size, size=(min(100, n_boot - start), x.size))
        samples = x[idx]
        if statistic in ("p50_ms", "p99_ms"):
            estimates.append(np.percentile(samples, 50 if statistic == "p50_ms" else 99, axis=1))
        elif statistic == "mean_ms":
            estimates.append(samples.mean(axis=1))
        else:
            estimates.append(np.array([stat(s) for s in samples]))
    all_estimates = np.concatenate(estimates)
    alpha = (1 - level) / 2
    return (float(np.quantile(all_estimates, alpha)), float(np.quantile(all_estimates, 1 - alpha)))


def confidence_intervals(
    requests: pd.DataFrame, *, slo_ms: float = 200.0, warmup_s: float = 0.0, n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """95 % bootstrap intervals of mean, p50, p99 latency and SLO attainment."""
    req = _after_warmup(requests, warmup_s)
    failed = req["error"].notna().to_numpy()
    ok = req.loc[~failed, "latency_ms"].to_numpy(dtype=float)
    met = (np.nan_to_num(req["latency_ms"].to_numpy(dtype=float), nan=np.inf) <= slo_ms) & ~failed
    out = {name: bootstrap_ci(ok, name, n_boot=n_boot, seed=seed) for name in STATISTICS}
    lo, hi = bootstrap_ci(met.astype(float), "mean_ms", n_boot=n_boot, seed=seed)
    out["slo_attainment_pct"] = (lo * 100, hi * 100)
    return out


def aggregate_repetitions(summaries: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Median and spread (min, max) of every figure across repeated runs of the same cell."""
    numeric = summaries.select_dtypes("number").columns.difference(by)
    grouped = summaries.groupby(by)[list(numeric)]
    median = grouped.median()
    spread = grouped.max() - grouped.min()
    out = median.join(spread.add_suffix("_spread"))
    out["repetitions"] = grouped.size()
    return out.reset_index()
