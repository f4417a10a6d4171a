"""Calibrating the simulator on a live run, and checking it against that run.

:func:`fit_profile_from_run` fits a :class:`labkit.simulate.PlatformProfile` to every cell
of a run folder; :func:`validate` replays each cell of a run on the simulated backend and
compares its figures with the measured ones. Both read runs through :mod:`labkit.report`,
so the figures compared are exactly the ones the report shows.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict

import numpy as np
import pandas as pd

from labkit import metrics, report
from labkit.backends.simulated import SimulatedBackend
from labkit.simulate import PlatformProfile, client_time_ms, fit_profile

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
        config = cell.config
        memory = config.function.memory_mb
        live = metrics.summarize(cell.requests, cell.invocations, slo_ms=config.slo_ms,
                                 memory_mb=memory)  # fmt: skip
        cell_profile = profile
        if own_inits:
            inits = cell.invocations["init_duration_ms"].dropna().astype(float).tolist()
            cell_profile = PlatformProfile(
                **{**asdict(profile), "init_ms": inits or profile.init_ms}
            )
        sims = []
        for seed in range(seeds):
            backend = SimulatedBackend(config.function, profile=cell_profile, seed=seed)
            result = backend.simulate(config.workload.arrivals(), config.policy.build(),
                                      slo_s=config.slo_ms / 1000.0)  # fmt: skip
            sims.append(metrics.summarize(result.requests, result.invocations,
                                          slo_ms=config.slo_ms, memory_mb=memory))  # fmt: skip
        for metric in VALIDATION_METRICS:
            simulated = float(np.median([s[metric] for s in sims]))
            if metric == "slo_attainment_pct":
                error = simulated - live[metric]
            else:
                error = (
                    (simulated - live[metric]) / live[metric] * 100 if live[metric] else math.nan
                )
            rows.append({"cell": cell.name, "metric": metric, "live": live[metric],
                         "simulated": simulated, "error": error,
                         "unit": "points" if metric == "slo_attainment_pct" else "%"})  # fmt: skip
    return pd.DataFrame(rows)


__all__ = ["VALIDATION_METRICS", "fit_profile_from_run", "validate"]
