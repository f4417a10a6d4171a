"""The discrete-event simulator: speed, and agreement with a measured run.

1. Speed: a Poisson workload of 1,000,000+ requests through the paper's dynamic policy and
   through no batching, on the AWS-shaped profile. Goal: >= 1,000,000 requests in <= 10 s.
   Beside it, the small cells the notebooks simulate by the hundred: a 90 s bursty cell
   (~1,600 requests) through the dynamic policy, per call, and notebook 05's inverse fit of
   the paper's Table 1 (the paper preset's 20 candidates x 90 s), and notebook 08's burst
   to thousands of instances without batching (two 1 s bursts at 20,000/s on the AWS-shaped
   profile, where throttled batches back off); no goal, a record.
2. Agreement: fit a profile from a live run of the paper matrix on the embedded local Lambda
   (``--run FOLDER``, or one is run now with ``--duration-s`` seconds per cell), simulate its
   cells (median of 5 seeds) and compare. Goals: mean, p50, p99 within 10 %, SLO attainment
   within 1 point, cost within 5 %. Compared twice: with the run's pooled Init Duration
   samples, and with each cell's own (``own_inits``). The goals are judged on the second: in
   30 s cells the two cold starts decide most of the mean, and a cell whose inits ran 10 %
   long (machine noise, not anything the model could know) is off by that much with pooled
   samples whatever the rest of the model does.
Run: ``python bench/simulate.py [--run FOLDER] [--duration-s 30]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_figures, print_table

from labkit import experiment, paths
from labkit.aws import image
from labkit.experiment import ExperimentConfig
from labkit.load import workloads
from labkit.load.batching import DynamicBatching, NoBatching
from labkit.studies import calibrate, simulate


def speed() -> dict[str, float]:
    arrivals = workloads.poisson(1000, 1000, seed=1)
    profile = simulate.PlatformProfile.load("paper-aws")
    figures = {"requests": len(arrivals)}
    for name, policy in (("dynamic", DynamicBatching(5, 0.3)), ("none", NoBatching())):
        start = time.perf_counter()
        simulate.simulate(arrivals, policy, profile, simulate.SimConfig(concurrency=1000))
        figures[f"{name}_s"] = time.perf_counter() - start
    return figures


def small_cells(calls: int = 50) -> dict[str, float]:
    from labkit.analysis import report
    from labkit.sim import paper_fit

    arrivals = workloads.WorkloadConfig("bursty", duration_s=90.0).arrivals()
    profile = simulate.PlatformProfile.load("local")
    start = time.perf_counter()
    for seed in range(calls):
        simulate.simulate(arrivals, DynamicBatching(5, 0.3), profile, simulate.SimConfig(seed=seed))
    per_cell_ms = (time.perf_counter() - start) / calls * 1000.0
    start = time.perf_counter()
    paper_fit.inverse_fit(report.paper_table1(), bursty_candidates=20, duration_s=90.0)
    inverse_fit_s = time.perf_counter() - start
    burst = workloads.bursty(0.0, 20000.0, 1.0, 60.0, 120.0, seed=2)
    start = time.perf_counter()
    result = simulate.simulate(burst, NoBatching(), simulate.PlatformProfile.load("paper-aws"),
                               simulate.SimConfig(concurrency=5000))  # fmt: skip
    return {"requests": len(arrivals), "cell_ms": per_cell_ms, "inverse_fit_s": inverse_fit_s,
            "burst_s": time.perf_counter() - start,
            "burst_throttles": int(result.invocations["throttles"].sum())}  # fmt: skip


def live_run(duration_s: float) -> Path:
    model = paths.resolve_model_dir(None)
    bundle = image.build_bundle(model, paths.default_bundle_dir(model))
    base = ExperimentConfig(bundle_dir=str(bundle.path))
    uniform = workloads.WorkloadConfig("uniform", duration_s=duration_s)
    bursty = workloads.WorkloadConfig("bursty", duration_s=duration_s)
    cells = experiment.paper_matrix(base, [uniform, bursty])
    return experiment.run_matrix(cells, label="bench-calibration", progress=False)


def _error_key(metric: str) -> str:
    if metric == "slo_attainment_pct":
        return "max_error_slo_points"
    return f"max_error_{metric.removesuffix('_ms').removesuffix('_usd')}_pct"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", default=None, help="a live run folder to calibrate from")
    parser.add_argument("--duration-s", type=float, default=30.0)
    args = parser.parse_args()
    s = speed()
    print_table(["policy", "requests", "wall s", "requests/s"],
                [[p, s["requests"], s[f"{p}_s"], s["requests"] / s[f"{p}_s"]] for p in ("dynamic", "none")],
                title="simulation speed (goal: >= 1,000,000 requests in <= 10 s)")  # fmt: skip
    small = small_cells()
    print_table(["what", "figure"], [[f"90 s bursty cell ({small['requests']} requests), ms per call",
                                      small["cell_ms"]],
                                     ["notebook 05's inverse fit (20 candidates x 90 s), s",
                                      small["inverse_fit_s"]],
                                     ["notebook 08's burst, no batching (40,000 requests), s",
                                      small["burst_s"]],
                                     ["  its throttles (retries after a 429)", small["burst_throttles"]]],
                title="small simulated cells")  # fmt: skip
    run = Path(args.run) if args.run else live_run(args.duration_s)
    profile = calibrate.fit_profile_from_run(run)
    worst_by = {}
    for own_inits in (False, True):
        validation = calibrate.validate(run, profile, seeds=5, own_inits=own_inits)
        table = validation.pivot(index="cell", columns="metric", values="error")
        inits = "each cell's own Init Durations" if own_inits else "pooled Init Duration samples"
        print_table(["cell", *table.columns],
                    [[cell, *(float(v) for v in row)] for cell, row in table.iterrows()],
                    title=f"simulated vs measured ({run}), {inits}; error in %, SLO in points")  # fmt: skip
        abs_error = validation.assign(abs_error=validation["error"].abs())
        worst_by[own_inits] = abs_error.groupby("metric")["abs_error"].max()
    worst = worst_by[False]
    print_figures({"requests": s["requests"], "dynamic_wall_s": round(s["dynamic_s"], 2),
                   "none_wall_s": round(s["none_s"], 2),
                   "bursty_90s_cell_ms": round(small["cell_ms"], 1),
                   "inverse_fit_s": round(small["inverse_fit_s"], 1),
                   "burst_no_batching_s": round(small["burst_s"], 2),
                   "burst_throttles": small["burst_throttles"],
                   **{_error_key(m): round(float(v), 2) for m, v in worst.items()},
                   **{"own_inits_" + _error_key(m): round(float(v), 2) for m, v in worst_by[True].items()},
                   "calibration_run": str(run)})  # fmt: skip


if __name__ == "__main__":
    main()
