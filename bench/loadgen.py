"""The open-loop load generator's own precision, against a no-op backend.

1. Schedule accuracy: lag between each request's scheduled arrival and its actual release,
   p50 and p99, at 200, 1,000 and 2,000 requests/s (uniform, no batching, a backend that
   answers at once from the worker threads). Goal: p99 <= 1 ms at 1,000 requests/s (what
   wrk2 holds itself to).
2. Dynamic batching timeout precision: how long after T a timed-out batch is actually
   dispatched (Poisson at 5 requests/s, N=5, T=0.3 s, so most batches time out).
   Goal: p99 <= 2 ms.
Run: ``python bench/loadgen.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_figures, print_table

from labkit.aws.invoke import InvocationResult, ReportFields
from labkit.load.batching import DynamicBatching, NoBatching
from labkit.load.loadgen import LoadConfig, Payloads, run_load
from labkit.load.workloads import poisson, uniform

REPORT = ReportFields("r", 1.0, 1, 1024, 100)


def noop(event: dict) -> InvocationResult:
    predictions = [{"id": i["id"], "label": 0} for i in event["instances"]]
    return InvocationResult("r", 200, {"predictions": predictions}, None, REPORT, "", 0.0)


def main() -> None:
    payloads = Payloads([{"id": "0", "image_b64": ""}], np.zeros(1, dtype=int))
    config = LoadConfig(max_in_flight=16, progress=False)
    rows, figures = [], {}
    for rate in (200, 1000, 2000):
        result = run_load(uniform(rate, 10.0), NoBatching(), noop, payloads, config)
        lag_ms = (result.requests["t_release_s"] - result.requests["t_arrive_s"]).to_numpy() * 1000
        p50, p99 = float(np.percentile(lag_ms, 50)), float(np.percentile(lag_ms, 99))
        rows.append([f"{rate}/s uniform", len(lag_ms), p50, p99, float(lag_ms.max())])
        figures |= {f"lag_p50_ms_at_{rate}": round(p50, 3), f"lag_p99_ms_at_{rate}": round(p99, 3)}
    print_table(["schedule", "requests", "lag p50 ms", "lag p99 ms", "lag max ms"], rows,
                title="release lag behind schedule (goal: p99 <= 1 ms at 1,000/s)")  # fmt: skip
    result = run_load(poisson(5, 120.0, seed=1), DynamicBatching(5, 0.3), noop, payloads, config)
    req = result.requests
    first = req.groupby("batch_id").agg(t_first=("t_arrive_s", "min"), size=("batch_id", "size"),
                                        t_dispatch_s=("t_dispatch_s", "first"))  # fmt: skip
    timed_out = first[first["size"] < 5]
    late_ms = ((timed_out["t_dispatch_s"] - timed_out["t_first"] - 0.3) * 1000).to_numpy()
    print_table(["batches timed out", "late p50 ms", "late p99 ms", "late max ms"],
                [[len(late_ms), float(np.percentile(late_ms, 50)), float(np.percentile(late_ms, 99)),
                  float(late_ms.max())]],
                title="dynamic batching: dispatch after T (goal: p99 <= 2 ms)")  # fmt: skip
    figures |= {"timeout_late_p50_ms": round(float(np.percentile(late_ms, 50)), 3),
                "timeout_late_p99_ms": round(float(np.percentile(late_ms, 99)), 3),
                "timed_out_batches": len(late_ms)}  # fmt: skip
    print_figures(figures)


if __name__ == "__main__":
    main()
