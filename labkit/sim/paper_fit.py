"""The inverse question: which workload and network would produce the paper's Table 1 under
its stated rule, and what can no setting produce?

The paper does not publish its request rates, burst shapes or where its client sat. The
simulator searches them: a uniform rate, a bursty shape (base and burst rates, burst length,
period) and a network distance (a round trip per invocation), with the paper's own function
on the model (the stated ``paper-aws`` profile's service time, no cold starts: the paper's
latency columns were not dominated by them), static batching of 5 and dynamic batching of
5 or 0.3 s as the paper states them. Each setting is scored against the paper's mean, p50,
p99 (log ratio) and SLO attainment (log ratio of the share that missed) in its four cells.

The best setting's residuals say how close the stated rule can come; :attr:`InverseFit.findings`
says, with figures, what no setting reached. Nothing here changes what was measured: it is a
statement about the paper, tested on the model.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from labkit.emulator.network import NetworkProfile
from labkit.load.batching import DynamicBatching, StaticBatching
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import PlatformProfile, SimConfig, simulate

PAPER_METRICS = ("mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct")
SLO_MS = 200.0
NETWORK_SIGMA = 0.35  # the shape of the laptop-to-region profile


@dataclass
class InverseFit:
    """The best setting, its per-cell residuals, every uniform setting tried, the findings."""

    settings: dict[str, float]
    table: pd.DataFrame  # cell, metric, paper, simulated, residual
    uniform: pd.DataFrame  # every (distance, rate) tried on uniform load
    findings: list[str] = field(default_factory=list)
    evaluated: int = 0  # settings simulated


def _profile(base: PlatformProfile, distance_ms: float, seed: int) -> PlatformProfile:
    network = NetworkProfile("fit", median_ms=distance_ms, sigma=NETWORK_SIGMA)
    trips = network.sampler(seed)
    overhead = [round(trips.next_s() * 1000, 3) for _ in range(2000)]
    return dataclasses.replace(
        base, overhead_ms=overhead, init_ms=[0.0], name=f"fit-{distance_ms:g}ms"
    )


def _figures(
    workload: WorkloadConfig, profile: PlatformProfile, seed: int
) -> dict[str, dict[str, float]]:
    arrivals = workload.arrivals()
    out = {}
    for name, policy in (("static", StaticBatching(5)), ("dynamic", DynamicBatching(5, 0.3))):
        result = simulate(
            arrivals, policy, profile, SimConfig(concurrency=1000, seed=seed, slo_s=0.2)
        )
        latency = result.requests["latency_ms"].to_numpy(float)
        out[name] = {"mean_ms": float(latency.mean()), "p50_ms": float(np.percentile(latency, 50)),
                     "p99_ms": float(np.percentile(latency, 99)),
                     "slo_attainment_pct": float((latency <= SLO_MS).mean() * 100)}  # fmt: skip
    return out


def _residuals(ours: dict[str, float], paper: pd.Series) -> dict[str, float]:
    """Log ratios: of latencies, and of the share of requests that missed the SLO."""
    out = {m: math.log(ours[m] / paper[m]) for m in PAPER_METRICS[:3]}
    missed = (100.5 - ours["slo_attainment_pct"]) / (100.5 - paper["slo_attainment_pct"])
    out["slo_attainment_pct"] = math.log(missed)
    return out


@dataclass
class _Tried:
    """One workload setting on the model: its figures and its distance from the paper."""

    score: float
    workload: WorkloadConfig
    figures: dict[str, dict[str, float]]


def _try(
    workload: WorkloadConfig, model: PlatformProfile, paper: pd.DataFrame, seed: int
) -> _Tried:
    figures = _figures(workload, model, seed)
    score = sum(r**2 for b in ("static", "dynamic")
                for r in _residuals(figures[b], paper.loc[(b, workload.kind)]).values())  # fmt: skip
    return _Tried(score, workload, figures)


def inverse_fit(
    paper: pd.DataFrame,
    *,
    profile: str | PlatformProfile = "paper-aws",
    distances_ms: tuple[float, ...] = (0, 15, 30, 45, 60, 80, 100, 130),
    uniform_rates: tuple[float, ...] = tuple(np.round(np.geomspace(2, 60, 20), 2)),
    bursty_candidates: int = 30,
    duration_s: float = 120.0,
    seed: int = 0,
) -> InverseFit:
    """Search distance x uniform rate, and distance x bursty shape (``bursty_candidates``
    seeded random shapes), for the best match to ``paper`` (the published Table 1, as
    :func:`labkit.analysis.report.paper_table1` gives it)."""
    base = profile if isinstance(profile, PlatformProfile) else PlatformProfile.load(profile)
    paper = paper.set_index(["batching", "workload"])
    rng = np.random.default_rng(seed)
    shapes = []
    for _ in range(bursty_candidates):
        burst_s = float(rng.uniform(0.25, 3.0))
        base_rate = float(rng.uniform(1.0, 30.0))
        shapes.append(WorkloadConfig("bursty", duration_s=duration_s, seed=seed, base_rate=base_rate,
                                     burst_rate=base_rate * float(rng.uniform(1.5, 15.0)),
                                     burst_s=burst_s, period_s=burst_s + float(rng.uniform(0.5, 15.0))))  # fmt: skip
    uniform_rows: list[dict[str, float]] = []
    fits: list[tuple[float, float, _Tried, _Tried]] = []  # (total, distance, uniform, bursty)
    for distance in distances_ms:
        model = _profile(base, distance, seed)
        tried_u = [_try(WorkloadConfig("uniform", rate=r, duration_s=duration_s), model, paper, seed)
                   for r in uniform_rates]  # fmt: skip
        for t in tried_u:
            s, d = t.figures["static"], t.figures["dynamic"]
            uniform_rows.append({"distance_ms": distance, "rate": t.workload.rate, "score": t.score,
                                 "static_slo_pct": s["slo_attainment_pct"], "static_mean_ms": s["mean_ms"],
                                 "dynamic_mean_change_pct": (d["mean_ms"] - s["mean_ms"]) / s["mean_ms"] * 100})  # fmt: skip
        best_u = min(tried_u, key=lambda t: t.score)
        best_b = min((_try(shape, model, paper, seed) for shape in shapes), key=lambda t: t.score)
        fits.append((best_u.score + best_b.score, distance, best_u, best_b))
    total, distance, uniform, bursty = min(fits, key=lambda f: f[0])
    u_figures, b_figures = uniform.figures, bursty.figures
    settings = {"distance_ms": distance, "uniform_rate": uniform.workload.rate,
                "bursty_base_rate": round(bursty.workload.base_rate, 2),
                "bursty_burst_rate": round(bursty.workload.burst_rate, 2),
                "bursty_burst_s": round(bursty.workload.burst_s, 2),
                "bursty_period_s": round(bursty.workload.period_s, 2), "score": round(total, 4)}  # fmt: skip
    rows = []
    for kind, figures in (("uniform", u_figures), ("bursty", b_figures)):
        for batching in ("static", "dynamic"):
            residuals = _residuals(figures[batching], paper.loc[(batching, kind)])
            for metric in PAPER_METRICS:
                rows.append({"cell": f"{batching}-{kind}", "metric": metric,
                             "paper": float(paper.loc[(batching, kind), metric]),
                             "simulated": figures[batching][metric], "log_residual": residuals[metric]})  # fmt: skip
    table = pd.DataFrame(rows)
    uniform_table = pd.DataFrame(uniform_rows)
    evaluated = len(distances_ms) * (len(uniform_rates) + len(shapes))
    fit = InverseFit(settings, table, uniform_table, evaluated=evaluated)
    fit.findings = _findings(fit, paper)
    return fit


def _findings(fit: InverseFit, paper: pd.DataFrame) -> list[str]:
    """What the search says about the paper, in sentences with their figures."""
    findings = []
    static_slo = float(paper.loc[("static", "uniform"), "slo_attainment_pct"])
    paper_gain = (
        paper.loc[("dynamic", "uniform"), "mean_ms"] / paper.loc[("static", "uniform"), "mean_ms"]
        - 1
    ) * 100
    near = fit.uniform[(fit.uniform["static_slo_pct"] - static_slo).abs() <= 5.0]
    if len(near):
        gain = max(-float(near["dynamic_mean_change_pct"].min()), 0.0)
        findings.append(
            f"Uniform load: wherever static batching comes near the paper's SLO attainment "
            f"({static_slo:.1f} +- 5 %; {len(near)} of {len(fit.uniform)} settings tried), dynamic "
            f"batching lowers the mean latency by at most {gain:.1f} % under the stated rule, "
            f"against the paper's {-paper_gain:.1f} %: at those rates a batch of 5 fills before "
            f"T = 0.3 s, so the two policies send the same batches."
        )  # fmt: skip
    else:
        top = fit.uniform.loc[fit.uniform["static_slo_pct"].idxmax()]
        findings.append(
            f"Uniform load: no setting tried brings static batching to the paper's SLO attainment "
            f"of {static_slo:.1f} % (best {top['static_slo_pct']:.1f} % at {top['rate']:g}/s, "
            f"{top['distance_ms']:g} ms)."
        )  # fmt: skip
    worst = fit.table.assign(off=fit.table["log_residual"].abs()).sort_values(
        "off", ascending=False
    )
    unmatched = worst[worst["off"] > math.log(1.2)]
    if len(unmatched):
        listed = "; ".join(f"{r.cell} {r.metric} {r.simulated:.1f} vs {r.paper:.1f}"
                           for r in unmatched.head(4).itertuples())  # fmt: skip
        findings.append(f"Even the best setting misses {len(unmatched)} of {len(fit.table)} published "
                        f"figures by more than 20 % (or, for SLO, by a fifth of the misses): {listed}.")  # fmt: skip
    else:
        findings.append("The best setting matches every published figure within 20 %.")
    return findings


def findings_text(fit: InverseFit) -> str:
    """The best setting and the findings, as Markdown."""
    s = fit.settings
    setting = (f"Best setting of {fit.evaluated} simulated: network round trip ~{s['distance_ms']:g} ms; "
               f"uniform {s['uniform_rate']:g}/s; bursty {s['bursty_base_rate']:g}/s with "
               f"{s['bursty_burst_s']:g} s at {s['bursty_burst_rate']:g}/s every {s['bursty_period_s']:g} s.")  # fmt: skip
    return "\n".join([setting, "", *(f"- {f}" for f in fit.findings)])
