"""The paper's claims, checked: for each workload and metric, the change from static to
dynamic batching the paper reports, ours with a 95 % interval, a verdict, and why.

**What each claim measures** is what Table 1 shows beside it (:mod:`labkit.analysis.comparison`):
steady-state latency and SLO attainment; cost per 1M requests over all requests, each cell's
cold starts at their own Init Duration; *warm cost*, its own row, without the init (request
fees and warm compute: the part batching controls); Init Duration per cold start, once per
run (init runs before the first request, so every workload's cold starts pool). Changes are
relative (%), SLO attainment in percentage points.

**Verdicts** follow DESIGN.md's rule, on an interval that carries run-to-run variance:
*reproduced* when the interval lies on the paper's side of zero, *contradicted* when on the
other, *inconclusive* when it spans zero; beside the direction, the *magnitude* is
*consistent* when the paper's own change lies inside our interval and *differs* when it lies
outside. Before that rule, three things keep a claim from
being decided, each said in its reason: static and dynamic sent the very same batches
(replayed on the cells' arrivals: no difference can then be an effect of batching);
fewer than 3 repetitions (*unreplicated*: one run's blocks know nothing of the next run);
a p99 resting on fewer than 10 requests above it (*tail too thin*). The interval is the
repetitions' (Student's t over the per-repetition paired changes); the block bootstrap's is
shown beside it, and where the two disagree the reason says so
(:mod:`labkit.analysis.inference` says why the verdict uses the first).

**Many claims at once.** Each claim is judged at 95 %; the ``holm_verdict`` column keeps the
chance of any false verdict among the run's decided claims at 5 % (Holm's adjustment), and
:func:`family_sentence` says what that means for the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost, metrics
from labkit.analysis import comparison, inference, numbers
from labkit.analysis.cells import Cell, groups, paper_table1
from labkit.analysis.comparison import Comparison
from labkit.load import batching

#: The claims of one workload, in the order the tables show them.
METRICS = ("mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct", "cost_per_1m_requests_usd",
           "warm_cost_per_1m_requests_usd")  # fmt: skip
LATENCY = ("mean_ms", "p50_ms", "p99_ms")
#: Init Duration is judged once per run, on every workload's cold starts.
RUN_WIDE = "init_duration_ms"
ALL_WORKLOADS = "all workloads"
#: The paper's column each of our metrics is compared with (it gives only its total cost).
PAPER_COLUMN = {"cost_per_1m_requests_usd": "cost_usd", "warm_cost_per_1m_requests_usd": "cost_usd"}
DECIDED = ("reproduced", "contradicted")
VERDICTS = (*DECIDED, "inconclusive", "unreplicated", "tail too thin")
VERDICT_RULE = (
    "Our change from static to dynamic batching, the quantity Table 1 shows, with a 95 % "
    "interval from the repetitions (Student's t over the per-repetition paired changes): "
    "*reproduced* when the interval lies on the paper's side of zero, *contradicted* when on "
    "the other side, *inconclusive* when it spans zero or when both policies sent the same "
    "batches; *unreplicated* with fewer than 3 repetitions, *tail too thin* when a p99 rests on "
    "fewer than 10 requests above it. Magnitude: *consistent* when the paper's change lies "
    "inside our interval, *differs* when outside. Latency and SLO in the steady state, in % and "
    "percentage points; cost over all requests, each cell's cold starts at their own Init "
    "Duration, and warm cost without them; Init Duration once per run. The Holm column keeps "
    "the chance of any false verdict among the decided claims at 5 %."
)


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


def magnitude(paper_change: float, low: float, high: float) -> str:
    """Whether the paper's own change lies inside our interval: *consistent* (our data cannot
    tell its size from ours) or *differs* (it lies outside: a difference of size we can
    state even where the sign is inconclusive, such as the paper's -47 % Init change beside
    an interval around zero); ``-`` without an interval."""
    if not (np.isfinite(paper_change) and np.isfinite(low) and np.isfinite(high)):
        return "-"
    return "consistent" if low <= paper_change <= high else "differs"


def same_batches(static: list[Cell], dynamic: list[Cell]) -> bool:
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


def evaluate(cells: list[Cell], *, slo_ms: float | None = None, n_boot: int = 1000, seed: int = 0,
             level: float = 0.95) -> pd.DataFrame:  # fmt: skip
    """One row per (workload, metric) where the run has static and dynamic cells of a
    workload the paper has (uniform, bursty), and one Init Duration row for the run: the
    paper's change, ours and its interval, the verdict, the Holm-adjusted verdict, and the
    reason in a sentence. ``n_boot = 0`` skips the block bootstrap shown beside."""
    paper = paper_table1().set_index(["batching", "workload"])
    by_group = groups(cells)
    workloads = [w for (b, w) in by_group if b == "static" and ("dynamic", w) in by_group]
    workloads = [
        w for w in workloads if ("static", by_group[("static", w)][0].paper_workload) in paper.index
    ]
    rows: list[dict[str, Any]] = []
    for workload in workloads:
        static, dynamic = by_group[("static", workload)], by_group[("dynamic", workload)]
        found = comparison.compare(static, dynamic, slo_ms=slo_ms, level=level, n_boot=n_boot,
                                   seed=seed)  # fmt: skip
        if not found:
            continue
        claim = _Claim(workload, static[0].paper_workload, static, dynamic, found,
                       same_batches(static, dynamic), paper)  # fmt: skip
        rows += [claim.row(metric) for metric in METRICS]
    if workloads:
        static = [c for w in workloads for c in by_group[("static", w)]]
        dynamic = [c for w in workloads for c in by_group[("dynamic", w)]]
        init = comparison.compare_init(static, dynamic, level=level, n_boot=n_boot, seed=seed)
        kinds = sorted({c.paper_workload for c in static})
        rows.append(_init_row(init, kinds, paper))
    return _with_holm(pd.DataFrame(rows), level)


def _with_holm(table: pd.DataFrame, level: float) -> pd.DataFrame:
    """The Holm-adjusted p-value and verdict of every claim the rule judged (the family);
    the others keep their label."""
    if table.empty:
        return table
    judged = table["judged"].to_numpy(bool)
    p = np.where(judged, table["p_value"].to_numpy(float), np.nan)
    table["holm_p"] = inference.holm(p)
    keeps = table["holm_p"].to_numpy(float) < 1 - level
    table["holm_verdict"] = [
        v if (v not in DECIDED or keep) else "inconclusive"
        for v, keep in zip(table["verdict"], keeps, strict=True)
    ]
    return table.drop(columns=["judged"])


def family_sentence(verdicts: pd.DataFrame, level: float = 0.95) -> str:
    """What judging the run's claims together means, in two sentences."""
    judged = int(verdicts["holm_p"].notna().sum()) if "holm_p" in verdicts else 0
    if not judged:
        return (
            "No claim was judged by the interval rule (see each reason), so there is no "
            "family of claims to adjust."
        )
    decided = int(verdicts["verdict"].isin(DECIDED).sum())
    kept = int(verdicts["holm_verdict"].isin(DECIDED).sum())
    return (
        f"{judged} claims were judged, each at {level:.0%}: were none of the differences "
        f"real, the chance of at least one false verdict among them would be up to "
        f"{inference.family_error_pct(judged, level):.0f} % (independent claims; "
        f"{min(judged * (1 - level) * 100, 100):.0f} % at most in any case). Holm's adjustment "
        f"keeps it at {(1 - level) * 100:.0f} %: {kept} of the {decided} decided verdicts keep theirs "
        "(column `Holm`)."
    )


def _init_row(init: Comparison, kinds: list[str], paper: pd.DataFrame) -> dict[str, Any]:
    p_s, p_d = (float(np.mean([paper.loc[(b, k), "init_duration_ms"] for k in kinds]))
                for b in ("static", "dynamic"))  # fmt: skip
    paper_change = metrics.change(RUN_WIDE, p_s, p_d)
    found, judged = judge(init, paper_change, coincide=False)
    ours = _interval_text(RUN_WIDE, init)
    reason = (f"Init runs before any invocation, so it cannot depend on the batching policy; "
              f"over every workload's cold starts ({init.n[0]} and {init.n[1]}), ours were "
              f"{init.a:,.0f} vs {init.b:,.0f} ms per cold start, {ours}: a difference between "
              f"moments of this machine. The paper's {paper_change:+.0f} % (its two workloads' "
              f"rows averaged) compares the inits of two runs (figure: cold_starts).")  # fmt: skip
    reason = _qualified(reason, found, init)
    return _row(ALL_WORKLOADS, "+".join(kinds), RUN_WIDE, p_s, p_d, paper_change, init, found,
                judged, reason)  # fmt: skip


def paper_figures(paper: pd.DataFrame, kind: str, metric: str) -> tuple[float, float, float]:
    """The paper's static and dynamic figures for ``metric`` on its ``kind`` row (Table 1,
    indexed by batching and workload; :data:`PAPER_COLUMN` names the column), and its change."""
    column = PAPER_COLUMN.get(metric, metric)
    p_s, p_d = (float(paper.loc[(b, kind), column]) for b in ("static", "dynamic"))
    return p_s, p_d, metrics.change(metric, p_s, p_d)


def judge(c: Comparison, paper_change: float, *, coincide: bool = False) -> tuple[str, bool]:
    """The verdict on ``c`` against the paper's change (``coincide``: both policies sent the
    same batches), and whether the interval rule made it (the claim is in Holm's family)."""
    if coincide:
        return "inconclusive", False
    if not c.replicated_enough:
        return "unreplicated", False
    if c.thin_tail:
        return "tail too thin", False
    interval = c.interval
    return verdict(paper_change, interval.low, interval.high), np.isfinite(interval.p_value)


def _row(workload: str, kind: str, metric: str, p_s: float, p_d: float, paper_change: float,
         c: Comparison, found: str, judged: bool, reason: str) -> dict[str, Any]:  # fmt: skip
    size = magnitude(paper_change, c.interval.low, c.interval.high) if judged else "-"
    return {"workload": workload, "paper_workload": kind, "metric": metric,
            "paper_static": p_s, "paper_dynamic": p_d, "paper_change": paper_change,
            **comparison.as_row(c), "verdict": found, "magnitude": size, "judged": judged,
            "reason": reason}  # fmt: skip


def _qualified(reason: str, found: str, c: Comparison) -> str:
    """``reason`` with what kept the claim from the rule, or where the two intervals part."""
    if found == "unreplicated":
        within = (f"the block bootstrap within the cells gives {_span(c.metric, c.blocks)}, but "
                  "without repetitions it knows nothing of run-to-run variance"
                  if np.isfinite(c.blocks.low) else f"no interval within the cells either: {c.no_blocks}")  # fmt: skip
        return (
            f"{reason} Not judged: {c.repetitions} repetition(s), and a claim needs "
            f"{inference.MIN_REPETITIONS} (`repetitions` in Lab 4); {within}."
        )
    if found == "tail too thin":
        return (
            f"{reason} Not judged: the p99 of {c.n[0]:,} and {c.n[1]:,} steady-state "
            f"requests rests on {c.above_p99[0]} and {c.above_p99[1]} requests above it "  # type: ignore[index]
            f"(a tail claim needs {comparison.TAIL_MIN}: longer cells or more repetitions)."
        )
    if found in (*DECIDED, "inconclusive") and np.isfinite(c.blocks.low):
        by_blocks = verdict(1.0, c.blocks.low, c.blocks.high)
        by_reps = verdict(1.0, c.replicated.low, c.replicated.high)
        if by_blocks != by_reps:
            return (
                f"{reason} The block bootstrap, {_span(c.metric, c.blocks)}, would decide "
                f"otherwise; the verdict uses the repetitions, which carry run-to-run "
                f"variance (a bootstrap of {c.repetitions} repetitions shrinks it by "
                f"{c.repetitions - 1}/{c.repetitions}) and need no choice of block."
            )
    return reason


@dataclass
class _Claim:
    """One workload's claims: its cells, comparisons and the paper's rows."""

    workload: str
    kind: str
    static: list[Cell]
    dynamic: list[Cell]
    found: dict[str, Comparison]
    coincide: bool
    paper: pd.DataFrame

    def row(self, metric: str) -> dict[str, Any]:
        c = self.found[metric]
        p_s, p_d, paper_change = paper_figures(self.paper, self.kind, metric)
        found, judged = judge(c, paper_change, coincide=self.coincide)
        reason = _qualified(self.reason(c, found, paper_change, p_s, p_d), found, c)
        if c.left_out:
            reason += f" Left out (incomplete, or no complete partner): {', '.join(c.left_out)}."
        return _row(self.workload, self.kind, metric, p_s, p_d, paper_change, c, found, judged,
                    reason)  # fmt: skip

    def reason(self, c: Comparison, found: str, paper_change: float, p_s: float, p_d: float) -> str:
        ours = _interval_text(c.metric, c)
        config = self.dynamic[0].config
        if self.coincide:
            workload = config.workload
            size, timeout = config.policy.size, config.policy.timeout_s
            why = (f"at {workload.rate:g} requests/s a batch of {size} is full {(size - 1) / workload.rate:.2f} s "
                   f"after its first request, before T = {timeout:g} s (above (N-1)/T = "
                   f"{batching.fills_before_timeout_rate(size, timeout):.1f}/s)"
                   if workload.kind == "uniform" else "the timeout never fires before a batch fills")  # fmt: skip
            return (f"static and dynamic sent the same batches on {self.workload}: {why}; "
                    f"the difference between the cells, {ours}, is noise (figure: rate_sweep).")  # fmt: skip
        if c.metric == "cost_per_1m_requests_usd":
            return self._cost_reason(ours, p_s, p_d)
        if c.metric == "warm_cost_per_1m_requests_usd":
            return (f"request fees and warm compute, the part of the bill batching controls "
                    f"(cold-start init and provisioned hours aside): {_money(c.a)} -> "
                    f"{_money(c.b)} per 1M requests, {ours}. The paper gives only its total "
                    f"cost, so its direction ({paper_change:+.1f} %) is the total's "
                    f"(figure: cost_breakdown).")  # fmt: skip
        if found in ("inconclusive", "unreplicated", "tail too thin"):
            spread = ", ".join(_fmt_change(c.metric, x) for x in c.per_repetition)
            return (f"over {c.n[0]:,} and {c.n[1]:,} steady-state requests in {c.repetitions} "
                    f"repetition(s), the change is {ours}; the repetitions' own changes were "
                    f"{spread or '-'} (figure: claims).")  # fmt: skip
        unit = "%" if c.metric == "slo_attainment_pct" else " ms"
        moved = f"{c.a:,.1f}{unit} -> {c.b:,.1f}{unit}, {ours}"
        timeouts = _timeout_share(self.dynamic)
        if found == "reproduced":
            return (f"dynamic's timeout caps the wait for a batch (it sent {timeouts:.0f} % of its "
                    f"batches on the timeout): {moved} (figure: latency_cdf).")  # fmt: skip
        return (f"ours moved the other way, {moved}; dynamic sent {timeouts:.0f} % of its batches on "
                f"the timeout (figure: latency_cdf).")  # fmt: skip

    def _cost_reason(self, ours: str, p_s: float, p_d: float) -> str:
        total, warm = (
            self.found["cost_per_1m_requests_usd"],
            self.found["warm_cost_per_1m_requests_usd"],
        )
        sizes = [metrics.pooled([c.records for c in side], view="all")["mean_batch_size"]
                 for side in (self.static, self.dynamic)]  # fmt: skip
        init_share = [(t - w) / t * 100 if t else math.nan
                      for t, w in ((total.a, warm.a), (total.b, warm.b))]  # fmt: skip
        paper = self.paper
        gap_ms = (paper.loc[("static", self.kind), "init_duration_ms"]
                  - paper.loc[("dynamic", self.kind), "init_duration_ms"])  # fmt: skip
        gap_usd = gap_ms / 1000.0 * 1.0 * cost.Prices().per_gb_s  # the paper's 1,024 MB = 1 GB
        share = gap_usd / (p_s - p_d) * 100 if p_s != p_d else math.nan
        fewer = "more" if sizes[1] < sizes[0] else "fewer"
        return (f"dynamic sent {sizes[1]:.2f} requests per invocation against static's "
                f"{sizes[0]:.2f}, so {fewer} invocations and request fees per request (warm cost, "
                f"the row below: {_fmt_change(warm.metric, warm.change)}); cold-start init, each "
                f"cell's own, is {init_share[0]:.0f} % and {init_share[1]:.0f} % of these bills, so "
                f"the total, as Table 1 shows it, moved {ours}. In the paper, its own Init gap "
                f"({gap_ms:,.0f} ms x 1 GB x ${cost.Prices().per_gb_s:.10f} per GB-s = "
                f"${gap_usd:.7f}) is {share:.0f} % of its cost gap (${p_s - p_d:.6f}): the cost "
                f"claim rides on which run's cold starts took longer (figure: cost_breakdown).")  # fmt: skip


def _interval_text(metric: str, c: Comparison) -> str:
    if not np.isfinite(c.interval.low):
        return _fmt_change(metric, c.change)
    return f"{_fmt_change(metric, c.change)} {_span(metric, c.interval)}"


def _span(metric: str, interval: inference.Interval) -> str:
    return f"[{_fmt_change(metric, interval.low)}, {_fmt_change(metric, interval.high)}]"


def _money(usd: float) -> str:
    return f"${cost.format_usd(usd)}"


def _timeout_share(cells: list[Cell]) -> float:
    """Share (%) of a dynamic policy's batches smaller than its maximum (sent on the timeout)."""
    sizes = np.concatenate([c.invocations["batch_size"].to_numpy(float) for c in cells])
    sizes = sizes[sizes > 0]
    size = cells[0].config.policy.size
    return float((sizes < size).mean() * 100) if sizes.size else math.nan


def _fmt_change(metric: str, value: float) -> str:
    if not np.isfinite(value):
        return "-"
    return f"{value:+.1f} pt" if metric == "slo_attainment_pct" else f"{value:+.1f} %"


def _evidence(row: pd.Series) -> str:
    """What a claim rests on: repetitions, and requests (or cold starts), and for p99 the
    requests above it."""
    if not np.isfinite(row["repetitions"]):
        return "-"
    n = f"{int(row['n_static']):,} / {int(row['n_dynamic']):,}"
    if row["metric"] == "p99_ms" and np.isfinite(row["above_p99_static"]):
        n += f" ({int(row['above_p99_static'])} / {int(row['above_p99_dynamic'])} above p99)"
    return f"{int(row['repetitions'])} x; {n}"


def _with_defaults(verdicts: pd.DataFrame) -> pd.DataFrame:
    """``verdicts`` with the columns a claims.csv of labkit 0.2 lacks (no Holm, no evidence)."""
    out = verdicts.copy()
    if "holm_verdict" not in out:
        out["holm_verdict"] = out["verdict"]
    if "magnitude" not in out:
        out["magnitude"] = "-"
    for column in ("repetitions", "n_static", "n_dynamic", "above_p99_static", "above_p99_dynamic"):
        if column not in out:
            out[column] = math.nan
    return out


def table(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The verdicts as a readable table: the paper's change, ours with its interval, what it
    rests on (repetitions; requests, or cold starts for Init), the verdict and Holm's."""
    verdicts = _with_defaults(verdicts)
    rows = verdicts.to_dict("records")
    return pd.DataFrame({
        "workload": verdicts["workload"], "metric": verdicts["metric"],
        "paper": [_fmt_change(r["metric"], r["paper_change"]) for r in rows],
        "ours": [_fmt_change(r["metric"], r["ours_change"]) for r in rows],
        "95 % interval": [f"[{_fmt_change(r['metric'], r['ci_low'])}, {_fmt_change(r['metric'], r['ci_high'])}]"
                          for r in rows],
        "rests on": [_evidence(pd.Series(r)) for r in rows],
        "verdict": verdicts["verdict"], "magnitude": verdicts["magnitude"],
        "Holm": verdicts["holm_verdict"],
    })  # fmt: skip


def verdicts_text(verdicts: pd.DataFrame) -> str:
    """The verdicts for a terminal, with a count per kind and the family sentence."""
    counts = verdicts["verdict"].value_counts()
    summary = ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS if counts.get(v, 0) or v in DECIDED
                        or v == "inconclusive")  # fmt: skip
    return (
        f"The paper's claims (dynamic vs static): {summary}\n"
        + numbers.text(table(verdicts))
        + "\n"
        + family_sentence(verdicts)
    )
