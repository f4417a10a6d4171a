"""The paper's claims, checked: for each workload and metric, the change from static to
dynamic batching the paper reports, ours with a 95 % confidence interval, a verdict, and why.

**Changes** are relative (%) for latencies, Init Duration and cost, and in percentage points
for SLO attainment. Latency and SLO use the steady state (:mod:`labkit.metrics`); cost is per
1M requests over all requests; Init Duration is per cold start.

**Intervals** are percentile bootstraps that respect how the data were made: a cell's
requests are resampled in blocks of consecutive time (requests of one batch, or one burst,
share their fate, so resampling them one by one would make intervals too narrow), and where
the run repeats a cell the repetitions are resampled too, so run-to-run spread widens the
interval. The design is paired: static and dynamic in one repetition saw the same arrivals,
so they are resampled with the same repetitions and blocks. Init Durations are resampled one
cold start at a time.

**Verdicts** follow DESIGN.md: *reproduced* when our interval lies on the paper's side of
zero, *contradicted* when it lies on the other side, *inconclusive* when it spans zero. A
claim is also inconclusive, whatever the interval, where static and dynamic batching sent the
very same batches (checked by replaying both policies on the cell's arrivals): then no
difference between the two cells can be an effect of batching.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost, metrics
from labkit.analysis.cells import groups, paper_table1
from labkit.load import batching

METRICS = ("mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct", "init_duration_ms",
           "cost_per_1m_requests_usd")  # fmt: skip
LATENCY = ("mean_ms", "p50_ms", "p99_ms")
#: The paper's column each of our metrics is compared with.
PAPER_COLUMN = {"cost_per_1m_requests_usd": "cost_usd"}
COST_RULE = (
    "Cost per 1M requests bills each cold start at the run's pooled mean Init Duration: init "
    "runs before any invocation and cannot depend on the policy, while in short cells it is "
    "most of the bill, so its noise would otherwise decide the claim; each policy keeps its "
    "own number of cold starts, which can depend on it."
)
VERDICT_RULE = (
    "Our change from static to dynamic batching with its 95 % bootstrap interval (blocks of "
    "consecutive requests, and repetitions, resampled): *reproduced* when the interval lies "
    "on the paper's side of zero, *contradicted* when on the other side, *inconclusive* when "
    "it spans zero or when both policies sent the same batches. Latency and SLO in the steady "
    "state; changes in %, SLO in percentage points. " + COST_RULE
)


@dataclass
class _CellBlocks:
    """One cell cut into blocks of time for the bootstrap."""

    latency: list[np.ndarray]  # per block: answered steady-state latencies
    met: list[np.ndarray]  # per block: steady-state requests within the SLO
    usd: np.ndarray  # per block: cost of the invocations dispatched there, their init aside
    cold_starts: int  # the cell's, each billed at the run's pooled init cost (see COST_RULE)
    init_usd: float  # one cold start's billed init at the run's pooled mean Init Duration
    requests: np.ndarray  # per block: requests that arrived there

    def take(
        self, blocks: np.ndarray, rng: np.random.Generator, into: dict[str, list[Any]]
    ) -> None:
        blocks = blocks[blocks < len(self.latency)]
        into["latency"] += [self.latency[b] for b in blocks]
        into["met"] += [self.met[b] for b in blocks]
        into["usd"].append(float(self.usd[blocks].sum()) + self.cold_starts * self.init_usd)
        into["requests"].append(float(self.requests[blocks].sum()))


def _paired_resample(static: list[_CellBlocks], dynamic: list[_CellBlocks],
                     rng: np.random.Generator) -> tuple[dict[str, float], dict[str, float]]:  # fmt: skip
    """One bootstrap draw of both policies' figures. The design is paired: repetition r of
    static and dynamic saw the same arrivals, so both are resampled with the same
    repetitions and the same blocks of time (what the arrivals did cancels out; what the
    policies did stays). Unpaired cells (different repetition counts) are drawn apart."""
    paired = len(static) == len(dynamic)
    draws: tuple[dict[str, list[Any]], ...] = tuple(
        {"latency": [], "met": [], "usd": [], "requests": []} for _ in range(2)
    )
    reps = rng.integers(len(static), size=len(static)) if len(static) > 1 else np.zeros(1, int)
    for r in reps:
        n_blocks = len(static[r].latency)
        blocks = rng.integers(n_blocks, size=n_blocks)
        static[r].take(blocks, rng, draws[0])
        if paired:
            dynamic[r].take(blocks, rng, draws[1])
    if not paired:
        for r in rng.integers(len(dynamic), size=len(dynamic)):
            n_blocks = len(dynamic[r].latency)
            dynamic[r].take(rng.integers(n_blocks, size=n_blocks), rng, draws[1])
    return tuple(  # type: ignore[return-value]
        _statistics(np.concatenate(d["latency"]), np.concatenate(d["met"]), sum(d["usd"]),
                    sum(d["requests"]))
        for d in draws
    )  # fmt: skip


def _statistics(
    latency: np.ndarray, met: np.ndarray, usd: float, requests: float
) -> dict[str, float]:
    nan = math.nan
    return {
        "mean_ms": float(latency.mean()) if latency.size else nan,
        "p50_ms": float(np.percentile(latency, 50)) if latency.size else nan,
        "p99_ms": float(np.percentile(latency, 99)) if latency.size else nan,
        "slo_attainment_pct": float(met.mean() * 100) if met.size else nan,
        "cost_per_1m_requests_usd": usd / requests * 1e6 if requests else nan,
    }


def _block_s(cell: Any) -> float:
    """Blocks of at least one burst period (bursty), or a twentieth of the cell, >= 1 s."""
    workload = cell.config.workload
    length = max(float(workload.duration_s), 1.0)
    block = max(length / 20.0, 1.0)
    return max(block, float(workload.period_s)) if workload.kind == "bursty" else block


def _blocks(cells: list[Any], slo_ms: float, init_ms: float) -> list[_CellBlocks]:
    """Each cell (in repetition order) cut into blocks of :func:`_block_s` seconds; its cold
    starts billed at ``init_ms`` each (the run's pooled mean, see :data:`COST_RULE`)."""
    prices = cost.Prices()
    out = []
    for cell in sorted(cells, key=lambda c: c.config.repetition):
        req, inv = cell.requests, cell.invocations
        block_s = _block_s(cell)
        n_blocks = max(1, math.ceil((float(cell.config.workload.duration_s) + 1e-9) / block_s))
        steady = req[~metrics.cold_delayed(req, inv)]
        failed = steady["error"].notna().to_numpy()
        block = np.minimum(
            (steady["t_arrive_s"].to_numpy(float) // block_s).astype(int), n_blocks - 1
        )
        latency = steady["latency_ms"].to_numpy(float)
        met = (np.nan_to_num(latency, nan=np.inf) <= slo_ms) & ~failed
        gb = cell.config.function.memory_mb / 1024.0
        init_s = inv["init_duration_ms"].fillna(0).to_numpy(float) / 1000.0
        billed = np.ceil(inv["billed_duration_ms"].fillna(0).to_numpy(float)) / 1000.0
        inv_usd = prices.per_request + np.maximum(billed - init_s, 0) * gb * prices.per_gb_s
        inv_block = np.minimum(
            (inv["t_dispatch_s"].to_numpy(float) // block_s).astype(int), n_blocks - 1
        )
        req_block = np.minimum(
            (req["t_arrive_s"].to_numpy(float) // block_s).astype(int), n_blocks - 1
        )
        out.append(_CellBlocks(
            latency=[latency[(block == b) & ~failed] for b in range(n_blocks)],
            met=[met[block == b] for b in range(n_blocks)],
            usd=np.bincount(inv_block, weights=inv_usd, minlength=n_blocks),
            cold_starts=int(inv["cold_start"].sum()),
            init_usd=init_ms / 1000.0 * gb * prices.per_gb_s,
            requests=np.bincount(req_block, minlength=n_blocks).astype(float),
        ))  # fmt: skip
    return out


def _interval(changes: list[float], level: float) -> tuple[float, float]:
    values = np.asarray([c for c in changes if np.isfinite(c)])
    if values.size < 10:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    return float(np.quantile(values, alpha)), float(np.quantile(values, 1 - alpha))


def same_batches(static: list[Any], dynamic: list[Any]) -> bool:
    """Whether the two policies send identical batches on every one of the cells' arrivals,
    replayed on a virtual clock (``batching.same_batches``)."""
    workloads = {c.config.workload: c.config.workload for c in [*static, *dynamic]}
    for workload in workloads:
        s = [c for c in static if c.config.workload == workload]
        d = [c for c in dynamic if c.config.workload == workload]
        if not s or not d:
            continue
        policies = [c.config.policy.build() for c in (s[0], d[0])]
        if not batching.same_batches(policies, workload.arrivals().tolist()):
            return False
    return True


def verdict(paper_change: float, low: float, high: float) -> str:
    """DESIGN.md's rule: which side of zero our interval lies on, against the paper's change."""
    if (
        not (np.isfinite(paper_change) and np.isfinite(low) and np.isfinite(high))
        or paper_change == 0
    ):
        return "inconclusive"
    if low > 0 or high < 0:
        return "reproduced" if (low > 0) == (paper_change > 0) else "contradicted"
    return "inconclusive"


def evaluate(cells: list[Any], *, slo_ms: float | None = None, n_boot: int = 1000, seed: int = 0,
             level: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """One row per (workload, metric) where the run has both static and dynamic cells of a
    workload the paper has (uniform, bursty): the paper's change, ours, its interval, the
    verdict and the reason in a sentence."""
    paper = paper_table1().set_index(["batching", "workload"])
    by_group = groups(cells)
    workloads = [w for (b, w) in by_group if b == "static" and ("dynamic", w) in by_group]
    rows: list[dict[str, Any]] = []
    all_static = [c for w in workloads for c in by_group[("static", w)]]
    all_dynamic = [c for w in workloads for c in by_group[("dynamic", w)]]
    init = _init_interval(all_static, all_dynamic, np.random.default_rng(seed), n_boot, level)
    inits = np.concatenate([np.zeros(0)] + [c.invocations["init_duration_ms"].dropna().to_numpy(float)
                                            for c in all_static + all_dynamic])  # fmt: skip
    pooled_init_ms = float(inits.mean()) if len(inits) else 0.0  # no cold start, or no pair
    for workload in workloads:
        static, dynamic = by_group[("static", workload)], by_group[("dynamic", workload)]
        kind = static[0].paper_workload
        if ("static", kind) not in paper.index:
            continue
        slo = slo_ms or static[0].config.slo_ms
        rng = np.random.default_rng(seed)
        blocks = (_blocks(static, slo, pooled_init_ms), _blocks(dynamic, slo, pooled_init_ms))
        point = {p: metrics.pooled([c.records for c in group], slo_ms=slo, view="steady",
                                   memory_mb=group[0].config.function.memory_mb)
                 for p, group in (("static", static), ("dynamic", dynamic))}  # fmt: skip
        boots = [_paired_resample(*blocks, rng) for _ in range(n_boot)]
        for p, group in zip(("static", "dynamic"), blocks, strict=True):  # cost as in COST_RULE
            usd = sum(float(b.usd.sum()) + b.cold_starts * b.init_usd for b in group)
            point[p]["cost_per_1m_requests_usd"] = (
                usd / sum(float(b.requests.sum()) for b in group) * 1e6
            )
        coincide = same_batches(static, dynamic)
        context = _Context(workload, kind, static, dynamic, point, coincide, paper)
        for metric in METRICS:
            if metric == "init_duration_ms":
                ours_s, ours_d, low, high = init
            else:
                ours_s, ours_d = point["static"][metric], point["dynamic"][metric]
                low, high = _interval(
                    [metrics.change(metric, s[metric], d[metric]) for s, d in boots], level
                )
            rows.append(context.row(metric, ours_s, ours_d, low, high))
    return pd.DataFrame(rows)


def _init_interval(static: list[Any], dynamic: list[Any], rng: np.random.Generator, n_boot: int,
                   level: float) -> tuple[float, float, float, float]:  # fmt: skip
    """Init Duration per cold start, every static cell's cold starts against every dynamic
    cell's (init cannot depend on the policy, so all workloads pool), with an interval from
    a bootstrap over cells: the inits of one cell share its machine's moment."""
    inits = [[c.invocations["init_duration_ms"].dropna().to_numpy(float) for c in group]
             for group in (static, dynamic)]  # fmt: skip
    if not all(any(x.size for x in group) for group in inits):
        return math.nan, math.nan, math.nan, math.nan

    def mean(group: list[np.ndarray]) -> float:
        picked = [group[i] for i in rng.integers(len(group), size=len(group))]
        values = np.concatenate(picked)
        return float(values.mean()) if values.size else math.nan

    changes = [
        metrics.change("init_duration_ms", mean(inits[0]), mean(inits[1])) for _ in range(n_boot)
    ]
    low, high = _interval(changes, level)
    return float(np.concatenate(inits[0]).mean()), float(np.concatenate(inits[1]).mean()), low, high


@dataclass
class _Context:
    """What the reasons of one workload's claims draw on."""

    workload: str
    kind: str
    static: list[Any]
    dynamic: list[Any]
    point: dict[str, dict[str, float]]
    coincide: bool
    paper: pd.DataFrame

    def row(
        self, metric: str, ours_s: float, ours_d: float, low: float, high: float
    ) -> dict[str, Any]:
        column = PAPER_COLUMN.get(metric, metric)
        p_s, p_d = (float(self.paper.loc[(b, self.kind), column]) for b in ("static", "dynamic"))
        paper_change = metrics.change(metric, p_s, p_d)
        ours = metrics.change(metric, ours_s, ours_d)
        found = (
            "inconclusive"
            if self.coincide and metric != "init_duration_ms"
            else verdict(paper_change, low, high)
        )
        return {"workload": self.workload, "paper_workload": self.kind, "metric": metric,
                "paper_static": p_s, "paper_dynamic": p_d, "paper_change": paper_change,
                "ours_static": ours_s, "ours_dynamic": ours_d, "ours_change": ours,
                "ci_low": low, "ci_high": high, "verdict": found,
                "reason": self.reason(metric, found, ours_s, ours_d, ours, low, high, p_s, p_d, paper_change)}  # fmt: skip

    def reason(self, metric: str, found: str, s: float, d: float, change: float, low: float,
               high: float, p_s: float, p_d: float, paper_change: float) -> str:  # fmt: skip
        ours = f"{_fmt_change(metric, change)} [{_fmt_change(metric, low)}, {_fmt_change(metric, high)}]"
        config = self.dynamic[0].config
        if metric == "init_duration_ms":
            return (f"Init runs before any invocation, so it cannot depend on the batching policy; "
                    f"pooled over every cell of the run (all workloads), ours were {s:,.0f} vs {d:,.0f} ms "
                    f"per cold start, {ours}, a difference between moments of this machine. The paper's "
                    f"{paper_change:+.0f} % compares the inits of two runs (figure: cold_starts).")  # fmt: skip
        if self.coincide:
            workload = config.workload
            size, timeout = config.policy.size, config.policy.timeout_s
            why = (f"at {workload.rate:g} requests/s a batch of {size} is full {(size - 1) / workload.rate:.2f} s "
                   f"after its first request, before T = {timeout:g} s (above (N-1)/T = "
                   f"{batching.fills_before_timeout_rate(size, timeout):.1f}/s)"
                   if workload.kind == "uniform" else "the timeout never fires before a batch fills")  # fmt: skip
            return (f"static and dynamic sent the same batches on {self.workload}: {why}; "
                    f"the difference between the cells, {ours}, is noise (figure: rate_sweep).")  # fmt: skip
        if metric == "cost_per_1m_requests_usd":
            return self._cost_reason(found, ours, p_s, p_d)
        if found == "inconclusive":
            n = int(self.point["static"]["n"]), int(self.point["dynamic"]["n"])
            return (f"the interval spans zero: over {n[0]:,} and {n[1]:,} steady-state requests the "
                    f"difference, {ours}, is within the run-to-run noise (figure: claims).")  # fmt: skip
        unit = "%" if metric == "slo_attainment_pct" else " ms"
        moved = f"{s:,.1f}{unit} -> {d:,.1f}{unit}, {ours}"
        timeouts = _timeout_share(self.dynamic)
        if found == "reproduced":
            return (f"dynamic's timeout caps the wait for a batch (it sent {timeouts:.0f} % of its "
                    f"batches on the timeout): {moved} (figure: latency_cdf).")  # fmt: skip
        return (f"ours moved the other way, {moved}; dynamic sent {timeouts:.0f} % of its batches on "
                f"the timeout (figure: latency_cdf).")  # fmt: skip

    def _cost_reason(self, found: str, ours: str, p_s: float, p_d: float) -> str:
        b_s, b_d = self.point["static"]["mean_batch_size"], self.point["dynamic"]["mean_batch_size"]
        paper = self.paper
        gap_ms = (
            paper.loc[("static", self.kind), "init_duration_ms"]
            - paper.loc[("dynamic", self.kind), "init_duration_ms"]
        )
        gap_usd = gap_ms / 1000.0 * 1.0 * cost.Prices().per_gb_s  # the paper's 1,024 MB = 1 GB
        share = gap_usd / (p_s - p_d) * 100 if p_s != p_d else math.nan
        fewer = "more" if b_d < b_s else "fewer"
        warm = {p: (f["request_usd"] + f["compute_usd"] - f["init_usd"]) / f["requests"]
                for p, f in self.point.items()}  # fmt: skip
        warm_change = metrics.change("cost", warm["static"], warm["dynamic"])
        init_share = sum(f["init_usd"] for f in self.point.values()) / sum(
            f["cost_usd"] for f in self.point.values()) * 100  # fmt: skip
        return (f"dynamic sent {b_d:.2f} requests per invocation against static's {b_s:.2f}, "
                f"so {fewer} invocations and request fees per request: the part batching controls "
                f"(request fees and warm compute) changed by {warm_change:+.1f} %; cold-start init, "
                f"{init_share:.0f} % of these cells' bill, is billed at the pooled Init Duration for both, "
                f"so the total moved {ours}. In the paper, its own "
                f"Init gap ({gap_ms:,.0f} ms x 1 GB x ${cost.Prices().per_gb_s:.10f} per GB-s = "
                f"${gap_usd:.7f}) is {share:.0f} % of its cost gap (${p_s - p_d:.6f}): the cost "
                f"claim rides on which run's cold starts took longer (figure: cost_breakdown).")  # fmt: skip


def _timeout_share(cells: list[Any]) -> float:
    """Share (%) of a dynamic policy's batches smaller than its maximum (sent on the timeout)."""
    sizes = np.concatenate([c.invocations["batch_size"].to_numpy(float) for c in cells])
    sizes = sizes[sizes > 0]
    size = cells[0].config.policy.size
    return float((sizes < size).mean() * 100) if sizes.size else math.nan


def _fmt_change(metric: str, value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:+.1f} pt" if metric == "slo_attainment_pct" else f"{value:+.1f} %"


def table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdicts as a readable table: paper's change, ours with its interval, verdict."""
    return pd.DataFrame({
        "workload": verdicts["workload"], "metric": verdicts["metric"],
        "paper": [_fmt_change(m, v) for m, v in zip(verdicts["metric"], verdicts["paper_change"], strict=True)],
        "ours": [_fmt_change(m, v) for m, v in zip(verdicts["metric"], verdicts["ours_change"], strict=True)],
        "95 % interval": [f"[{_fmt_change(m, lo)}, {_fmt_change(m, hi)}]" for m, lo, hi in
                          zip(verdicts["metric"], verdicts["ci_low"], verdicts["ci_high"], strict=True)],
        "verdict": verdicts["verdict"],
    })  # fmt: skip


def verdicts_text(verdicts: pd.DataFrame) -> str:
    """The verdicts for a terminal, with a count per kind."""
    counts = verdicts["verdict"].value_counts()
    summary = ", ".join(
        f"{counts.get(v, 0)} {v}" for v in ("reproduced", "contradicted", "inconclusive")
    )
    return f"The paper's claims (dynamic vs static): {summary}\n" + table(verdicts).to_string(
        index=False
    )
