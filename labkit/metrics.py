"""Latency, SLO, cold-start and cost figures of a cell, in two views.

Definitions are DESIGN.md's: latency from the scheduled arrival to the response; percentiles
with linear interpolation (numpy's default); SLO attainment counts a failed request as a
miss; a cold start is an invocation whose REPORT carries Init Duration (or, when AWS retried
an init that ran over 10 s, follows the environment's ``INIT_REPORT`` lines: see
:func:`labkit.aws.invoke.parse_report`).

**Two views of every cell.** *All requests*, and the *steady state*: the requests no cold
start delayed (:func:`cold_delayed` states the rule). The steady state is what the paper's
latency columns can be compared with (its p99 of 208-432 ms beside Init Durations of 4-8 s
says they were not dominated by cold-start waits); the all-requests view keeps what the
cold starts did. Cost is always over all requests: a cold start is paid for whatever view
one looks through.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost

VIEWS = ("steady", "all")
#: An invocation that started this much later than its batch was dispatched waited for a
#: free slot (the load generator's hand-off alone takes tens of microseconds).
WAIT_THRESHOLD_S = 0.001

STATISTICS: dict[str, Callable[[np.ndarray], float]] = {
    "mean_ms": np.mean,
    "p50_ms": lambda x: np.percentile(x, 50),
    "p99_ms": lambda x: np.percentile(x, 99),
}


def cold_delayed(requests: pd.DataFrame, invocations: pd.DataFrame) -> np.ndarray:
    """Which requests a cold start delayed (a boolean per row of ``requests``).

    The rule: a request is delayed by a cold start when its invocation

    1. was a cold start (its instance's init ran between the batch's dispatch and the
       answer), or
    2. waited (for a free slot in the client's in-flight limit, or in 429 back-off at the
       function's concurrency limit) while a delayed invocation was still unanswered: a
       cold-starting one, or one queued behind cold starts, and so on down the backlog
       they leave. An invocation that waited only behind warm, undelayed work is not delayed.

    An invocation waited when its last attempt began more than :data:`WAIT_THRESHOLD_S`
    after its dispatch. Requests never sent are not delayed by anything (they are failures,
    counted as SLO misses in both views). What the rule cannot see: a warm invocation slowed
    because an init elsewhere on the same machine took CPU from it."""
    inv = invocations.sort_values(["t_dispatch_s", "batch_id"], kind="stable")
    dispatch = inv["t_dispatch_s"].to_numpy(float)
    done = inv["t_done_s"].to_numpy(float)
    began = done - inv["round_trip_ms"].to_numpy(float) / 1000.0  # the last attempt
    cold = inv["cold_start"].to_numpy(bool)
    waited = (began - dispatch) > WAIT_THRESHOLD_S
    cold_start, cold_done = dispatch[cold], done[cold]
    delayed = np.zeros(len(inv), dtype=bool)
    horizon = -np.inf  # until when something delayed, dispatched earlier, was unanswered
    for i in range(len(inv)):
        if cold[i]:
            delayed[i] = True
        elif waited[i]:
            overlapping_cold = bool(((cold_start < began[i]) & (cold_done > dispatch[i])).any())
            delayed[i] = horizon > dispatch[i] or overlapping_cold
        if delayed[i]:
            horizon = max(horizon, done[i])
    batches = set(inv["batch_id"].to_numpy()[delayed].tolist())
    return requests["batch_id"].isin(batches).to_numpy(bool)


def in_view(requests: pd.DataFrame, invocations: pd.DataFrame, view: str,
            delayed: np.ndarray | None = None) -> pd.DataFrame:  # fmt: skip
    """The requests a view covers: ``all``, or ``steady`` (none a cold start delayed;
    ``delayed`` when the caller has the flags already)."""
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}, not {view!r}")
    if view == "all":
        return requests
    return requests[~(cold_delayed(requests, invocations) if delayed is None else delayed)]


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
    view: str = "all",
    memory_mb: int = 1024,
    prices: cost.Prices | None = None,
    provisioned_instances: int = 0,
    provisioned_seconds: float = 0.0,
    delayed: np.ndarray | None = None,
    sqs_usd: float = 0.0,
) -> dict[str, float]:
    """The figures of one cell (or of cells pooled, with each cell's ``delayed`` flags from
    :func:`cold_delayed`): latency and SLO over the requests of ``view``; cold starts,
    invocations and cost over all of them (see the module docstring)."""
    if slo_ms <= 0:
        raise ValueError(f"slo_ms must be > 0, not {slo_ms}")
    delayed = cold_delayed(requests, invocations) if delayed is None else delayed
    req = in_view(requests, invocations, view, delayed)
    failed = req["error"].notna().to_numpy()
    ok = req.loc[~failed, "latency_ms"].to_numpy(dtype=float)
    inv = invocations
    init = inv["init_duration_ms"].dropna().astype(float)
    billed_rows = inv[inv["billed_duration_ms"].notna()]
    # With provisioned concurrency, warm invocations are taken to run on the provisioned
    # instances (their lower duration price); cold ones spilled over to on-demand instances.
    on_provisioned = ~billed_rows["cold_start"].to_numpy(bool) if provisioned_instances else None
    bill = cost.invocation_cost(
        billed_rows["billed_duration_ms"].astype(float), memory_mb, init_ms=init,
        prices=prices or cost.Prices(), provisioned_instances=provisioned_instances,
        provisioned_seconds=provisioned_seconds, on_provisioned=on_provisioned,
    )  # fmt: skip
    bill = dataclasses.replace(bill, sqs_usd=sqs_usd)  # a queue in front: its SQS requests
    answered = req.loc[~failed]
    if "label" in answered:  # a model without labels (-1) is not scored
        answered = answered[answered["label"].to_numpy() >= 0]
    sizes = inv["batch_size"].to_numpy(dtype=float)
    nan = float("nan")
    return {
        "n": float(len(req)),
        "mean_ms": float(ok.mean()) if ok.size else nan,
        "p50_ms": float(np.percentile(ok, 50)) if ok.size else nan,
        "p95_ms": float(np.percentile(ok, 95)) if ok.size else nan,
        "p99_ms": float(np.percentile(ok, 99)) if ok.size else nan,
        "max_ms": float(ok.max()) if ok.size else nan,
        "slo_attainment_pct": slo_attainment_pct(req["latency_ms"], slo_ms, failed),
        "errors": float(failed.sum()),
        "accuracy_pct": float(answered["correct"].mean() * 100) if len(answered) else nan,
        # the whole cell, whatever the view
        "requests": float(len(requests)),
        "cold_delayed": float(delayed.sum()),
        "cold_delayed_pct": float(delayed.mean() * 100) if len(requests) else nan,
        "throttles": float(inv["throttles"].sum()) if "throttles" in inv else 0.0,
        "invocations": float(len(inv)),
        # Warm-ups (batch size 0, see labkit.load.prewarm) are invocations and billed, not batches.
        "mean_batch_size": float(sizes[sizes > 0].mean()) if (sizes > 0).any() else nan,
        "warmups": float((sizes == 0).sum()),
        "cold_starts": float(inv["cold_start"].astype(bool).sum()),
        "init_mean_ms": float(init.mean()) if len(init) else nan,
        "init_total_ms": float(init.sum()),
        "cost_usd": bill.total_usd,
        "request_usd": bill.request_usd,
        "compute_usd": bill.compute_usd,
        "init_usd": bill.init_usd,
        "provisioned_usd": bill.provisioned_usd,
        "sqs_usd": bill.sqs_usd,
        "cost_per_1m_requests_usd": bill.per_million(len(requests)),
        # What the requests cost once the instances are warm: requests and duration without
        # the billed init and the provisioned hours (the price of batching itself).
        "warm_cost_per_1m_requests_usd": (
            (bill.request_usd + bill.compute_usd - bill.init_usd + bill.sqs_usd)
            / len(requests)
            * 1_000_000
            if len(requests)
            else nan
        ),
    }


def pooled(cells: list[tuple[pd.DataFrame, pd.DataFrame]], **options: Any) -> dict[str, float]:
    """:func:`summarize` over several cells' ``(requests, invocations)`` at once (repetitions
    of one configuration): each cell's cold-start rule applied to its own records, then
    requests, invocations and cost pooled."""
    if not cells:
        raise ValueError("pooled() needs at least one cell")
    delayed = np.concatenate([cold_delayed(r, i) for r, i in cells])
    requests = pd.concat([r for r, _ in cells], ignore_index=True)
    invocations = pd.concat([i for _, i in cells], ignore_index=True)
    return summarize(requests, invocations, delayed=delayed, **options)


def change(metric: str, reference: float, value: float) -> float:
    """``value`` against ``reference`` for ``metric``: in points for SLO attainment (already a
    percentage), else in per cent of ``reference``; NaN where either is not finite or the
    reference is 0. One rule for the paper's claims (dynamic against static), the model's
    checks (modelled against live) and the placements' (the same)."""
    if not (np.isfinite(reference) and np.isfinite(value)):
        return float("nan")
    if metric == "slo_attainment_pct":
        return value - reference
    return (value - reference) / reference * 100.0 if reference else float("nan")


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
    requests: pd.DataFrame, invocations: pd.DataFrame, *, slo_ms: float = 200.0,
    view: str = "steady", n_boot: int = 1000, seed: int = 0,
) -> dict[str, tuple[float, float]]:  # fmt: skip
    """95 % bootstrap intervals (over requests) of mean, p50, p99 latency and SLO attainment
    in ``view``."""
    req = in_view(requests, invocations, view)
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
