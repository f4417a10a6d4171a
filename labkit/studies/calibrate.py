"""Calibrating the simulator on a live run, and checking it against that run.

:func:`fit_profile_from_run` fits a :class:`labkit.sim.simulate.PlatformProfile` to every cell
of a run folder; :func:`validate` replays each cell of a run on the simulated backend and
compares its figures with the measured ones. Both read runs through :mod:`labkit.analysis.report`,
so the figures compared are exactly the ones the report shows.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import asdict
from typing import Any

import numpy as np
import pandas as pd

from labkit import metrics
from labkit.analysis import report
from labkit.backends.simulated import SimulatedBackend
from labkit.load.batching import fills_before_timeout_rate
from labkit.sim.simulate import PlatformProfile, client_time_ms, fit_profile
from labkit.sim.simulate import rate_sweep as sweep

VALIDATION_METRICS = ("mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct", "cold_starts",
                      "cost_usd")  # fmt: skip


def fit_profile_from_run(run: str | os.PathLike[str], name: str = "fitted") -> PlatformProfile:
    """Fit the model to every cell of a live run folder (see :func:`simulate.fit_profile`)."""
    cells = report.load_run(run)
    requests = pd.concat([c.requests for c in cells])
    invocations = pd.concat([c.invocations for c in cells])
    return fit_profile([c.invocations for c in cells], name=name, source=f"fitted from {run}",
                       memory_mb=cells[0].config.function.memory_mb,
                       client_ms=client_time_ms(requests, invocations))  # fmt: skip


def validate(run: str | os.PathLike[str], profile: PlatformProfile, seeds: int = 5, *,
             own_inits: bool = False) -> pd.DataFrame:  # fmt: skip
    """Simulate every cell of a live run with ``profile`` (median over ``seeds``) and compare:
    one row per (cell, metric) with live, simulated, and the error (% or, for SLO attainment,
    percentage points).

    ``own_inits`` draws each cell's cold starts from that cell's measured Init Durations
    instead of the pooled samples: in short cells one cold start decides most of the mean,
    and concurrent inits on a small machine vary from cell to cell."""
    rows = []
    for cell in report.load_run(run):
        cell_profile = profile
        if own_inits:
            inits = cell.invocations["init_duration_ms"].dropna().astype(float).tolist()
            cell_profile = PlatformProfile(
                **{**asdict(profile), "init_ms": inits or profile.init_ms}
            )
        rows += _compare(cell, cell_profile, seeds, view="all")
    return pd.DataFrame(rows)


def cross_validate(run: str | os.PathLike[str], seeds: int = 3) -> pd.DataFrame:
    """The simulator's out-of-sample test: for each workload of a run, a profile fitted on the
    *other* workloads' cells simulates this workload's cells, and the steady-state figures
    are compared with the measured ones (one row per cell and metric, as :func:`validate`).
    Needs at least two workloads."""
    cells = report.load_run(run)
    workloads = list(dict.fromkeys(c.workload for c in cells))
    if len(workloads) < 2:
        raise ValueError("cross-validation needs cells of at least two workloads")
    rows = []
    for held_out in workloads:
        train = [c for c in cells if c.workload != held_out]
        requests = pd.concat([c.requests for c in train])
        invocations = pd.concat([c.invocations for c in train])
        profile = fit_profile([c.invocations for c in train], name=f"without {held_out}",
                              memory_mb=train[0].config.function.memory_mb,
                              client_ms=client_time_ms(requests, invocations))  # fmt: skip
        for cell in (c for c in cells if c.workload == held_out):
            rows += _compare(cell, profile, seeds, view="steady", fitted_without=held_out)
    return pd.DataFrame(rows)


def _compare(cell: report.Cell, profile: PlatformProfile, seeds: int, *, view: str,
             **labels: str) -> list[dict[str, Any]]:  # fmt: skip
    """Rows of live vs simulated (median over ``seeds`` seeds from the cell's own
    ``sim_seed``: a simulated cell is replayed exactly by its first) for one cell."""
    config = cell.config
    options: dict[str, Any] = {"slo_ms": config.slo_ms, "view": view,
                               "memory_mb": config.function.memory_mb}  # fmt: skip
    live = metrics.summarize(cell.requests, cell.invocations, **options)
    sims = []
    for seed in range(seeds):
        backend = SimulatedBackend(config.function, profile=profile, seed=config.sim_seed + seed)
        result = backend.simulate(config.workload.arrivals(), config.policy.build(),
                                  slo_s=config.slo_ms / 1000.0)  # fmt: skip
        sims.append(metrics.summarize(result.requests, result.invocations, **options))
    rows = []
    for metric in VALIDATION_METRICS:
        simulated = float(np.median([s[metric] for s in sims]))
        error = metrics.change(metric, live[metric], simulated)
        rows.append({"cell": cell.name, "workload": cell.workload, "batching": cell.batching,
                     "metric": metric, "live": live[metric], "simulated": simulated,
                     "error": error, "unit": "points" if metric == "slo_attainment_pct" else "%",
                     **labels})  # fmt: skip
    return rows


def rate_sweep(run: str | os.PathLike[str], profile: PlatformProfile, *, points: int = 12,
               duration_s: float = 300.0, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """Where the run's policies differ: each workload shape of the run at ``points`` mean
    rates (a quarter to three times the run's own), through the run's static and dynamic
    policies on ``profile`` (calibrated on the run), for ``duration_s`` each. Returns (the
    dense simulated points, with ``crossover_rate`` for uniform load: the rate above which
    the dynamic policy's timeout never fires, ``batching.fills_before_timeout_rate``; the
    run's live points: pooled steady-state figures per policy and workload, at their mean
    rate)."""

    cells = [c for c in report.load_run(run) if c.batching in ("static", "dynamic")]
    live = report.table1(cells)
    live["rate"] = [next(c.config.workload.mean_rate for c in cells if c.workload == w)
                    for w in live["workload"]]  # fmt: skip
    live = live.rename(columns={"batching": "policy", "paper_workload": "kind"})
    frames, done = [], set()
    for cell in cells:
        workload = cell.config.workload
        if workload.kind in done or workload.kind not in ("uniform", "bursty"):
            continue
        done.add(workload.kind)
        same_kind = live[live["kind"] == workload.kind]["rate"]
        low, high = float(same_kind.min()) / 4, float(same_kind.max()) * 3
        rates = np.unique(np.round(np.geomspace(max(low, 0.5), high, points), 2)).tolist()
        policies = [c.config.policy for c in cells if c.config.workload == workload]
        policies = list({p.kind: p for p in policies}.values())
        long = dataclasses.replace(workload, duration_s=duration_s, name=workload.kind)
        frame = sweep(long, rates, policies, profile, slo_ms=cell.config.slo_ms,
                      concurrency=cell.config.function.concurrency or 10, seed=seed)  # fmt: skip
        timed = [p for p in policies if p.kind == "dynamic"]
        frame["crossover_rate"] = (
            fills_before_timeout_rate(timed[0].size, timed[0].timeout_s)
            if workload.kind == "uniform" and timed
            else math.nan
        )
        frames.append(frame)
    return pd.concat(frames, ignore_index=True), live


__all__ = ["VALIDATION_METRICS", "cross_validate", "fit_profile_from_run", "rate_sweep", "validate"]
