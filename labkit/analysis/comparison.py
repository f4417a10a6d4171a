"""One policy against another, repetition by repetition: the figures, the change, and how
sure it is (:mod:`labkit.analysis.inference`). The claims (:mod:`labkit.analysis.claims`)
judge these against the paper; the A/A battery in the tests compares a policy with itself.

**The estimand is Table 1's.** A comparison's two figures are :func:`labkit.metrics.pooled`
over the cells of each side, with the options Table 1 uses (:func:`labkit.analysis.report.table1`):
latency and SLO in the steady state, cost over all requests with each cell's own cold starts
at their own Init Duration, warm cost without the init, Init Duration per cold start. The
change is between those two figures; the intervals are around that change.

**Pairs.** Cells are paired by their repetition number (``config.repetition``), and only
complete cells pair: a stopped cell would compare a shorter run with a full one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost, metrics
from labkit.analysis import inference
from labkit.analysis.cells import Cell, summarize_options

#: Workload metrics, with the view each is taken in.
VIEWS = {"mean_ms": "steady", "p50_ms": "steady", "p99_ms": "steady",
         "slo_attainment_pct": "steady", "cost_per_1m_requests_usd": "all",
         "warm_cost_per_1m_requests_usd": "all"}  # fmt: skip
#: Requests above the p99 a tail claim needs: below it, the p99 is a handful of requests.
TAIL_MIN = 10


@dataclass
class Comparison:
    """Side ``a`` against side ``b`` on one metric: pooled figures, the change, the
    per-repetition paired changes, and the two intervals (repetitions; blocks)."""

    metric: str
    a: float
    b: float
    change: float
    per_repetition: list[float]
    n: tuple[int, int]  # what each figure rests on: answered requests, or cold starts for init
    replicated: inference.Interval = inference.NO_INTERVAL
    blocks: inference.Interval = inference.NO_INTERVAL
    above_p99: tuple[int, int] | None = None  # p99 only: requests above each side's p99
    left_out: list[str] = field(default_factory=list)  # cells without a complete partner
    no_blocks: str = ""  # why there is no blocks interval, where there is none

    @property
    def repetitions(self) -> int:
        return len(self.per_repetition)

    @property
    def replicated_enough(self) -> bool:
        return self.repetitions >= inference.MIN_REPETITIONS

    @property
    def thin_tail(self) -> bool:
        return self.above_p99 is not None and min(self.above_p99) < TAIL_MIN

    @property
    def interval(self) -> inference.Interval:
        """The interval a verdict uses: the repetitions' once there are enough of them (they
        carry run-to-run variance, and need no choice of block); else the blocks'."""
        return self.replicated if self.replicated_enough else self.blocks

    @property
    def decided(self) -> bool:
        """Whether this comparison would decide (not tell apart from zero is undecided)."""
        return self.replicated_enough and not self.thin_tail and self.interval.excludes_zero


def pairs(a: list[Cell], b: list[Cell]) -> tuple[list[tuple[Cell, Cell]], list[str]]:
    """Complete cells of ``a`` and ``b`` with the same repetition number, in its order, and
    the names of the cells left out (incomplete, or without a complete partner)."""

    def complete(cells: list[Cell]) -> dict[int, Cell]:
        return {c.config.repetition: c for c in cells if c.status.get("status") == "complete"}

    ca, cb = complete(a), complete(b)
    both = sorted(set(ca) & set(cb))
    kept = {id(c) for r in both for c in (ca[r], cb[r])}
    return [(ca[r], cb[r]) for r in both], [c.name for c in [*a, *b] if id(c) not in kept]


@dataclass
class _CellFigures:
    """What one cell contributes: which requests a cold start delayed, its figures in both
    views, its answered steady latencies, and per-block sums for the bootstrap (``None``
    where the workload's blocks would not be alike)."""

    delayed: np.ndarray
    figures: dict[str, dict[str, float]]
    steady_latency: np.ndarray
    blocks: _Blocks | None


@dataclass
class _Blocks:
    latency: list[np.ndarray]
    met: list[np.ndarray]
    usd: np.ndarray
    warm_usd: np.ndarray
    requests: np.ndarray

    @property
    def count(self) -> int:
        return len(self.latency)


@dataclass
class Side:
    """One side of a comparison, measured once (:func:`measure`): its cells in repetition
    order, each cell's figures, and the pooled figures Table 1 shows."""

    cells: list[Cell]
    per_cell: list[_CellFigures]
    pooled: dict[str, dict[str, float]]  # view -> metrics.summarize's figures

    @property
    def steady_latency(self) -> np.ndarray:
        return np.concatenate([np.zeros(0), *(c.steady_latency for c in self.per_cell)])


def measure(cells: list[Cell], slo_ms: float | None = None, *, blocks: bool = True) -> Side:
    """The figures of one side's cells (one workload, one policy, its repetitions): per cell
    and pooled as :func:`labkit.metrics.pooled` pools them (each cell's cold-start rule on
    its own records); ``blocks=False`` leaves out what only the block bootstrap needs."""
    per_cell = [_cell_figures(cell, slo_ms, blocks) for cell in cells]
    options = summarize_options(cells, slo_ms)
    requests = pd.concat([c.requests for c in cells], ignore_index=True)
    invocations = pd.concat([c.invocations for c in cells], ignore_index=True)
    delayed = np.concatenate([f.delayed for f in per_cell])
    pooled = {view: metrics.summarize(requests, invocations, view=view, delayed=delayed, **options)
              for view in ("steady", "all")}  # fmt: skip
    return Side(list(cells), per_cell, pooled)


def compare(a: list[Cell], b: list[Cell], *, slo_ms: float | None = None, level: float = 0.95,
            n_boot: int = 1000, seed: int = 0) -> dict[str, Comparison]:  # fmt: skip
    """Each workload metric of :data:`VIEWS`, ``a`` against ``b`` (cells of one workload,
    repetitions of each side, paired by :func:`pairs`). ``n_boot = 0`` skips the block
    bootstrap."""
    paired, left_out = pairs(a, b)
    if not paired:
        return {}
    sides = [measure(list(side), slo_ms) for side in zip(*paired, strict=True)]
    return compare_sides(*sides, level=level, n_boot=n_boot, seed=seed, left_out=left_out)


def compare_sides(a: Side, b: Side, *, level: float = 0.95, n_boot: int = 1000, seed: int = 0,
                  left_out: list[str] | None = None) -> dict[str, Comparison]:  # fmt: skip
    """:func:`compare` on sides already measured, their cells paired in order (one side
    measured once can meet several others, as in the A/A battery)."""
    draws = _bootstrap([a.per_cell, b.per_cell], n_boot, seed) if n_boot else []
    no_blocks = "" if draws else _no_blocks(a.cells[0], n_boot)
    out = {}
    for metric, view in VIEWS.items():
        fa, fb = a.pooled[view][metric], b.pooled[view][metric]
        change = metrics.change(metric, fa, fb)
        per_rep = [metrics.change(metric, x.figures[view][metric], y.figures[view][metric])
                   for x, y in zip(a.per_cell, b.per_cell, strict=True)]  # fmt: skip
        answered = tuple(int(s.pooled[view]["n"] - s.pooled[view]["errors"]) for s in (a, b))
        above = None
        if metric == "p99_ms":
            above = tuple(
                int((s.steady_latency > s.pooled["steady"]["p99_ms"]).sum()) for s in (a, b)
            )
        out[metric] = Comparison(
            metric, fa, fb, change, per_rep, answered,  # type: ignore[arg-type]
            replicated=inference.replicated_interval(change, per_rep, level),
            blocks=inference.percentile_interval([d[metric] for d in draws], level),
            above_p99=above, left_out=left_out or [], no_blocks=no_blocks,  # type: ignore[arg-type]
        )  # fmt: skip
    return out


def _no_blocks(cell: Cell, n_boot: int) -> str:
    workload = cell.config.workload
    if not n_boot:
        return "the block bootstrap was not asked for (n_boot = 0)"
    return (f"a {workload.duration_s:g} s cell holds {workload.duration_s // workload.period_s:.0f} "
            f"whole {workload.period_s:g} s periods, and blocks alike in kind need "
            f"{inference.MIN_PERIODS}")  # fmt: skip


def compare_init(a: list[Cell], b: list[Cell], *, level: float = 0.95, n_boot: int = 1000,
                 seed: int = 0) -> Comparison:  # fmt: skip
    """Init Duration per cold start, every cold start of ``a``'s cells against ``b``'s
    (any workloads: init runs before the first request, whatever comes after). Repetition
    ``r``'s change compares the cold starts of its cells; the blocks interval resamples
    whole cells of each side (the inits of one cell share its machine's moment)."""

    def inits(cells: list[Cell]) -> list[np.ndarray]:
        return [c.invocations["init_duration_ms"].dropna().to_numpy(float) for c in cells]

    def mean(values: list[np.ndarray]) -> float:
        joined = np.concatenate([np.zeros(0), *values])
        return float(joined.mean()) if joined.size else math.nan

    complete = [[c for c in side if c.status.get("status") == "complete"] for side in (a, b)]
    left_out = [c.name for side, kept in zip((a, b), complete, strict=True)
                for c in side if c not in kept]  # fmt: skip
    values = [inits(side) for side in complete]
    fa, fb = mean(values[0]), mean(values[1])
    change = metrics.change("init_duration_ms", fa, fb)

    def of_repetition(side: int, r: int) -> float:
        return mean([v for c, v in zip(complete[side], values[side], strict=True)
                     if c.config.repetition == r])  # fmt: skip

    reps = sorted(
        {c.config.repetition for c in complete[0]} & {c.config.repetition for c in complete[1]}
    )
    per_rep = [
        metrics.change("init_duration_ms", of_repetition(0, r), of_repetition(1, r)) for r in reps
    ]
    rng = np.random.default_rng(seed)
    draws = []
    if n_boot and all(len(v) for v in values):
        for _ in range(n_boot):
            picked = [[side[i] for i in rng.integers(len(side), size=len(side))] for side in values]
            draws.append(metrics.change("init_duration_ms", mean(picked[0]), mean(picked[1])))
    counts = tuple(int(sum(len(x) for x in side)) for side in values)
    return Comparison("init_duration_ms", fa, fb, change, per_rep, counts,  # type: ignore[arg-type]
                      replicated=inference.replicated_interval(change, per_rep, level),
                      blocks=inference.percentile_interval(draws, level), left_out=left_out)  # fmt: skip


def _cell_figures(cell: Cell, slo_ms: float | None, with_blocks: bool = True) -> _CellFigures:
    options = summarize_options([cell], slo_ms)
    req, inv = cell.records
    delayed = metrics.cold_delayed(req, inv)
    figures = {view: metrics.summarize(req, inv, view=view, delayed=delayed, **options)
               for view in ("steady", "all")}  # fmt: skip
    steady = req[~delayed]
    failed = steady["error"].notna().to_numpy()
    latency = steady["latency_ms"].to_numpy(float)
    workload = cell.config.workload
    block_s = inference.block_length_s(workload.kind, workload.duration_s, workload.period_s)
    blocks = None
    if block_s is not None and with_blocks:
        blocks = _cut(cell, steady, failed, latency, block_s, options["slo_ms"])
    return _CellFigures(delayed, figures, latency[~failed], blocks)


def _cut(cell: Cell, steady: pd.DataFrame, failed: np.ndarray, latency: np.ndarray,
         block_s: float, slo_ms: float) -> _Blocks:  # fmt: skip
    """The cell in blocks of ``block_s`` seconds (the last takes any remainder): steady
    latencies and SLO hits by arrival, cost by dispatch, billed invocations only (as
    :func:`labkit.metrics.summarize` bills them)."""
    n = max(1, int(float(cell.config.workload.duration_s) // block_s))

    def block_of(times: pd.Series) -> np.ndarray:
        return np.minimum((times.to_numpy(float) // block_s).astype(int), n - 1)

    at = block_of(steady["t_arrive_s"])
    met = (np.nan_to_num(latency, nan=np.inf) <= slo_ms) & ~failed
    inv = cell.invocations[cell.invocations["billed_duration_ms"].notna()]
    prices = cost.Prices()
    gb = cell.config.function.memory_mb / 1024.0
    billed_s = inv["billed_duration_ms"].to_numpy(float) / 1000.0
    init_s = inv["init_duration_ms"].fillna(0.0).to_numpy(float) / 1000.0
    usd = prices.per_request + billed_s * gb * prices.per_gb_s
    warm = prices.per_request + np.maximum(billed_s - init_s, 0.0) * gb * prices.per_gb_s
    dispatched = block_of(inv["t_dispatch_s"])
    return _Blocks(
        latency=[latency[(at == k) & ~failed] for k in range(n)],
        met=[met[at == k] for k in range(n)],
        usd=np.bincount(dispatched, weights=usd, minlength=n),
        warm_usd=np.bincount(dispatched, weights=warm, minlength=n),
        requests=np.bincount(block_of(cell.requests["t_arrive_s"]), minlength=n).astype(float),
    )  # fmt: skip


def _bootstrap(sides: list[list[_CellFigures]], n_boot: int, seed: int) -> list[dict[str, float]]:
    """Paired draws of every metric's change (:func:`labkit.analysis.inference.block_bootstrap`)."""
    blocks = [[s.blocks for s in side if s.blocks is not None] for side in sides]
    if any(len(kept) < len(side) for kept, side in zip(blocks, sides, strict=True)):
        return []
    counts = [min(a.count, b.count) for a, b in zip(*blocks, strict=True)]

    def statistic(picks: list[tuple[int, np.ndarray]]) -> dict[str, float]:
        figures = [_figures([(side[r], k) for r, k in picks]) for side in blocks]
        return {m: metrics.change(m, figures[0][m], figures[1][m]) for m in VIEWS}

    return inference.block_bootstrap(statistic, counts, n_boot=n_boot, seed=seed)


def _figures(picks: list[tuple[_Blocks, np.ndarray]]) -> dict[str, float]:
    latency = np.concatenate([np.zeros(0), *(b.latency[k] for b, ks in picks for k in ks)])
    met = np.concatenate([np.zeros(0, bool), *(b.met[k] for b, ks in picks for k in ks)])
    requests = sum(float(b.requests[ks].sum()) for b, ks in picks)
    usd = sum(float(b.usd[ks].sum()) for b, ks in picks)
    warm = sum(float(b.warm_usd[ks].sum()) for b, ks in picks)
    nan = math.nan
    return {
        "mean_ms": float(latency.mean()) if latency.size else nan,
        "p50_ms": float(np.percentile(latency, 50)) if latency.size else nan,
        "p99_ms": float(np.percentile(latency, 99)) if latency.size else nan,
        "slo_attainment_pct": float(met.mean() * 100) if met.size else nan,
        "cost_per_1m_requests_usd": usd / requests * 1e6 if requests else nan,
        "warm_cost_per_1m_requests_usd": warm / requests * 1e6 if requests else nan,
    }


def as_row(comparison: Comparison) -> dict[str, Any]:
    """The comparison's numbers as flat columns (for a claims table)."""
    c = comparison
    return {"ours_static": c.a, "ours_dynamic": c.b, "ours_change": c.change,
            "ci_low": c.interval.low, "ci_high": c.interval.high, "method": c.interval.method,
            "p_value": c.interval.p_value, "repetitions": c.repetitions,
            "n_static": c.n[0], "n_dynamic": c.n[1],
            "above_p99_static": c.above_p99[0] if c.above_p99 else math.nan,
            "above_p99_dynamic": c.above_p99[1] if c.above_p99 else math.nan,
            "blocks_low": c.blocks.low, "blocks_high": c.blocks.high,
            "repetitions_low": c.replicated.low, "repetitions_high": c.replicated.high}  # fmt: skip
