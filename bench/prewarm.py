"""Predictive pre-warm on a rising request rate, on the embedded local Lambda.

A ramp from 5 to 150 requests/s over 20 s, no batching, concurrency 2 (this machine's
cores), one provisioned instance (so the run does not begin with both instances cold): the
second instance becomes necessary part-way through. Without pre-warm it starts when an
invocation finds the first one busy, and that invocation waits for its cold start. With the
predictive pre-warm, warm-ups start it ahead of need, and an overlapping request is at worst
throttled and retried for a few ms. Three seeds, each run with and without on a fresh
function.
Run: ``python bench/prewarm.py [--duration-s 20] [--repeats 3]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _setup import mnist_bundle_and_payloads
from _table import print_figures, print_table

from labkit import backends, metrics
from labkit.aws import image
from labkit.load.batching import NoBatching
from labkit.load.loadgen import LoadConfig, Payloads
from labkit.load.prewarm import PredictivePrewarm, PrewarmConfig
from labkit.load.workloads import ramp
from labkit.settings import FunctionSettings

SLO_S = 0.2
CONCURRENCY = 2


def one_run(bundle: image.Bundle, arrivals, payloads: Payloads, prewarm: bool) -> dict:
    function = FunctionSettings(concurrency=CONCURRENCY, provisioned=1, cpu_share=False)
    backend = backends.create("local", function, bundle_dir=bundle.path)
    warm = PredictivePrewarm(PrewarmConfig(max_instances=CONCURRENCY)) if prewarm else None
    result = backend.run_cell(arrivals, NoBatching(), payloads,
                              LoadConfig(max_in_flight=CONCURRENCY, progress=False), slo_s=SLO_S,
                              prewarm=warm)  # fmt: skip
    figures = metrics.summarize(result.requests, result.invocations, slo_ms=SLO_S * 1000)
    figures["requests_on_cold_starts"] = float(result.requests["cold_start"].sum())
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration-s", type=float, default=20.0)
    parser.add_argument("--end-rate", type=float, default=150.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bundle, payloads = mnist_bundle_and_payloads()
    rows, better = [], 0
    totals: dict[str, list[dict]] = {"off": [], "on": []}
    for seed in range(args.repeats):
        arrivals = ramp(5.0, args.end_rate, args.duration_s, seed=seed)
        pair = {}
        for mode in ("off", "on"):
            f = one_run(bundle, arrivals, payloads, prewarm=mode == "on")
            pair[mode] = f
            totals[mode].append(f)
            rows.append([seed, mode, f["requests_on_cold_starts"], f["throttles"], f["p99_ms"],
                         f["slo_attainment_pct"], f["cold_starts"], f["warmups"],
                         f["cost_per_1m_requests_usd"]])  # fmt: skip
        better += pair["on"]["requests_on_cold_starts"] < pair["off"]["requests_on_cold_starts"]
    print_table(["seed", "pre-warm", "requests on cold starts", "throttles", "p99 ms", "SLO %",
                 "cold starts", "warm-ups", "USD / 1M req"], rows,
                title=f"ramp 5 -> {args.end_rate:g} requests/s over {args.duration_s:g} s, no "
                      f"batching, concurrency {CONCURRENCY}, SLO {SLO_S * 1000:g} ms")  # fmt: skip

    def mean(mode: str, key: str) -> float:
        return round(sum(f[key] for f in totals[mode]) / len(totals[mode]), 4)

    print_figures({
        "repeats": args.repeats, "prewarm_fewer_cold_waits": better,
        "off_requests_on_cold_starts": mean("off", "requests_on_cold_starts"),
        "on_requests_on_cold_starts": mean("on", "requests_on_cold_starts"),
        "off_p99_ms": mean("off", "p99_ms"), "on_p99_ms": mean("on", "p99_ms"),
        "off_slo_pct": mean("off", "slo_attainment_pct"),
        "on_slo_pct": mean("on", "slo_attainment_pct"),
        "off_cost_per_1m_usd": mean("off", "cost_per_1m_requests_usd"),
        "on_cost_per_1m_usd": mean("on", "cost_per_1m_requests_usd"),
        "on_warmups": mean("on", "warmups"),
    })  # fmt: skip


if __name__ == "__main__":
    main()
