"""A queue cell on the embedded local Lambda: what it costs beyond its traffic, and how well
the mapping's model predicts cells it was not fitted on.

For each mapping (BatchSize 5 / window 0 and BatchSize 10 / window 1 s), ``--repeats`` cells of
``--duration-s`` seconds at 10 requests/s, concurrency 2: the wall time split into set-up
(queues, function service, mapping), driving (sending and reading answers) and tear-down
(mapping, service, queues, records), then the model (fitted on the window-0 cells) against the
window-1 cells' steady-state mean and SLO attainment. Then the paper's bursty workload
(8/s, 60/s for 1 s in every 5 s) for ``--bursty-s`` seconds through BatchSize 10 with window
0 and 1 s, against the model fitted on all the uniform cells: what notebook 09 does when its
bursty placements are modelled (0 skips this part).
Run: ``python bench/queue_cell.py [--duration-s 8] [--repeats 2] [--bursty-s 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import mnist_bundle_and_payloads
from _table import print_figures, print_table

import labkit.load.queue_run as queue_run
from labkit import metrics
from labkit.load.batching import MappingSettings
from labkit.load.workloads import bursty, uniform
from labkit.sim.simulate import PlatformProfile, SimConfig
from labkit.sim.simulate_queue import fit_queue_latencies, simulate_queue

MAPPINGS = [MappingSettings(5, 0), MappingSettings(10, 1)]
BURSTY_MAPPINGS = [MappingSettings(10, 0), MappingSettings(10, 1)]


def timed_cell(
    arrivals, payloads, mapping: MappingSettings, bundle_path: Path
) -> tuple[dict, object]:
    """One cell with its phases timed (the driving phase wraps ``queue_run.drive``)."""
    marks: dict[str, float] = {}
    drive = queue_run.drive

    def marked(*args, **kwargs):
        marks["driving"] = time.perf_counter()
        try:
            return drive(*args, **kwargs)
        finally:
            marks["torn"] = time.perf_counter()

    queue_run.drive = marked
    try:
        start = time.perf_counter()
        cell = queue_run.run_through_queue(arrivals, payloads, mapping, bundle_path, concurrency=2,
                                           network="laptop-to-region", seed=1)  # fmt: skip
        end = time.perf_counter()
    finally:
        queue_run.drive = drive
    phases = {"setup_s": marks["driving"] - start, "drive_s": marks["torn"] - marks["driving"],
              "teardown_s": end - marks["torn"], "wall_s": end - start}  # fmt: skip
    return phases, cell


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--bursty-s", type=float, default=30.0)
    args = parser.parse_args()
    bundle, payloads = mnist_bundle_and_payloads(200)
    arrivals = uniform(10.0, args.duration_s)
    phases: dict[str, list[dict]] = {m.label: [] for m in MAPPINGS}
    cells: dict[str, list] = {m.label: [] for m in MAPPINGS}
    for _ in range(args.repeats):
        for mapping in MAPPINGS:
            timing, cell = timed_cell(arrivals, payloads, mapping, Path(bundle.path))
            phases[mapping.label].append(timing)
            cells[mapping.label].append(cell)
    rows = []
    for label, runs in phases.items():
        rows.append([label, *(statistics.median(r[k] for r in runs) for k in
                              ("setup_s", "drive_s", "teardown_s", "wall_s"))])  # fmt: skip
    print_table(["mapping", "set-up s", "driving s", "tear-down s", "wall s"], rows,
                f"queue cells of {args.duration_s:g} s at 10/s (median of {args.repeats})")  # fmt: skip
    window0 = [(c.result.requests, c.result.invocations, MAPPINGS[0]) for c in cells["sqs-5-0s"]]
    profile = fit_queue_latencies(window0, PlatformProfile.load("local"))
    live = [metrics.summarize(c.result.requests, c.result.invocations, view="steady")
            for c in cells["sqs-10-1s"]]  # fmt: skip
    modelled = [metrics.summarize(*_records(simulate_queue(arrivals, MAPPINGS[1], profile,
                                                           SimConfig(concurrency=2, seed=s))),
                                  view="steady") for s in range(5)]  # fmt: skip
    checks = []
    for metric in ("mean_ms", "p99_ms", "slo_attainment_pct"):
        measured = statistics.median(f[metric] for f in live)
        model = statistics.median(f[metric] for f in modelled)
        checks.append([metric, measured, model])
    print_table(["sqs-10-1s, steady state", "live", "model (fitted on sqs-5-0s)"], checks)
    bursty_errors = (check_bursty(cells, payloads, Path(bundle.path), args.bursty_s)
                     if args.bursty_s > 0 else {})  # fmt: skip
    overhead = statistics.median(
        r["wall_s"] - args.duration_s for runs in phases.values() for r in runs
    )
    print_figures({
        "setup_s_median": round(statistics.median(r["setup_s"] for v in phases.values() for r in v), 3),
        "teardown_s_median": round(statistics.median(r["teardown_s"] for v in phases.values() for r in v), 3),
        "overhead_s_beyond_traffic_median": round(overhead, 3),
        "model_mean_error_pct": round((checks[0][2] - checks[0][1]) / checks[0][1] * 100, 1),
        "model_slo_error_points": round(checks[2][2] - checks[2][1], 1),
        **bursty_errors,
    })  # fmt: skip


def check_bursty(uniform_cells: dict[str, list], payloads, bundle_path: Path,
                 duration_s: float) -> dict[str, float]:  # fmt: skip
    """Live bursty cells against the model fitted on the uniform cells alone."""
    fitted_on = [(c.result.requests, c.result.invocations, m)
                 for m in MAPPINGS for c in uniform_cells[m.label]]  # fmt: skip
    profile = fit_queue_latencies(fitted_on, PlatformProfile.load("local"))
    arrivals = bursty(8.0, 60.0, 1.0, 5.0, duration_s)
    rows, figures = [], {}
    for mapping in BURSTY_MAPPINGS:
        _, cell = timed_cell(arrivals, payloads, mapping, bundle_path)
        live = metrics.summarize(cell.result.requests, cell.result.invocations, view="steady")
        modelled = [metrics.summarize(*_records(simulate_queue(
            arrivals, mapping, profile, SimConfig(concurrency=2, seed=s))), view="steady")
            for s in range(5)]  # fmt: skip
        model = {k: statistics.median(f[k] for f in modelled)
                 for k in ("mean_ms", "p99_ms", "slo_attainment_pct")}  # fmt: skip
        rows.append([mapping.label, int(live["n"]), live["mean_ms"], model["mean_ms"],
                     live["p99_ms"], model["p99_ms"], live["slo_attainment_pct"],
                     model["slo_attainment_pct"]])  # fmt: skip
        key = mapping.label.replace("-", "_")
        figures[f"bursty_{key}_mean_error_pct"] = round(
            (model["mean_ms"] - live["mean_ms"]) / live["mean_ms"] * 100, 1
        )
        figures[f"bursty_{key}_slo_error_points"] = round(
            model["slo_attainment_pct"] - live["slo_attainment_pct"], 1
        )
    print_table(["bursty, steady state", "requests", "mean ms live", "model", "p99 ms live",
                 "model", "SLO % live", "model"], rows,
                f"bursty cells of {duration_s:g} s; model fitted on the uniform cells only")  # fmt: skip
    return figures


def _records(result):
    return result.requests, result.invocations


if __name__ == "__main__":
    main()
