"""From a run folder to the paper's Table 1, tables of every figure, and a Markdown report.

A *run* is a matrix folder (``<run>/<cell>/requests.parquet ...``, see
:mod:`labkit.records`) or one cell folder. Everything here is recomputed from the raw
records, so a table can always be redone with another SLO. Latency figures come in two views
(:mod:`labkit.metrics`): the *steady state* (requests no cold start delayed), which the
paper's latency columns compare with, and *all* requests. Verdicts on the paper's claims are
:mod:`labkit.analysis.claims`; figures are drawn by :mod:`labkit.analysis.plots`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import pandas as pd

from labkit import cost, metrics, paths
from labkit.analysis import claims, numbers, plots
from labkit.analysis.cells import (  # a run's cells, as report.load_run & co. since 0.1
    Cell,
    groups,
    load_cell,
    load_run,
    one_per_setting,
    paper_table1,
    summarize_options,
)

__all__ = [
    "Cell", "comparison", "costs", "groups", "headline", "intervals", "load_cell", "load_run",
    "one_per_setting", "paper_table1", "resolve_run", "side_by_side_text", "summarize_options",
    "summary", "table1", "write_report",
]  # fmt: skip

CLAIMS_FILE = "claims.csv"  # the verdicts write_report found, beside report.md
PAPER_COLUMNS = ["mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct", "init_duration_ms",
                 "cost_usd"]  # fmt: skip
#: The figures a first look at a run shows (notebook 04, ``labkit run``): steady state.
HEADLINE_COLUMNS = ["cell", "n", "mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct",
                    "cold_starts", "cold_delayed", "mean_batch_size", "errors",
                    "cost_per_1m_requests_usd"]  # fmt: skip

DEFINITIONS = """\
- **Latency**: from a request's *scheduled* arrival to the client having its answer (waiting
  for the batch, the invocation, any cold start). p50/p99 by linear interpolation.
- **Steady state**: the requests no cold start delayed. A request is delayed by a cold start
  when its invocation was a cold start, or when its invocation waited (for a free slot in the
  client's in-flight limit, or in 429 back-off) while a delayed invocation was still
  unanswered: a cold-starting one, or one queued behind cold starts, and so on down the
  backlog they leave (`labkit.metrics.cold_delayed`). It is the view the paper's latency
  columns compare with; *all requests* keeps what the cold starts did.
- **SLO attainment**: share of requests answered within the SLO; a failed request is a miss.
- **Cold start**: an invocation whose REPORT carries Init Duration (or, for an init over 10 s
  that AWS retried inside the invocation, whose log carries the init). *Init per cold start* is
  the mean of those (what one REPORT line shows); *delayed* counts the requests the rule above
  assigns to cold starts; *init cost* is the billed Init Duration (container images bill it).
- **Cost**: requests x the request price + billed GB-seconds x the GB-second price, over all
  requests of a cell, per 1 million requests so cells of different lengths compare."""


def summary(
    cells: list[Cell], *, slo_ms: float | None = None, view: str = "steady"
) -> pd.DataFrame:
    """Every figure of :func:`labkit.metrics.summarize`, one row per cell, latency in ``view``."""
    rows = []
    for cell in cells:
        figures = metrics.summarize(*cell.records, view=view, **summarize_options([cell], slo_ms))
        rows.append({"cell": cell.name, "batching": cell.batching, "workload": cell.workload,
                     "repetition": cell.config.repetition, "memory_mb": cell.config.function.memory_mb,
                     "complete": cell.status.get("status") == "complete", **figures})  # fmt: skip
    return pd.DataFrame(rows)


def headline(cells: list[Cell], *, view: str = "steady", **kwargs: Any) -> pd.DataFrame:
    """The main figures of each cell (:data:`HEADLINE_COLUMNS`), one row per cell."""
    return summary(cells, view=view, **kwargs)[HEADLINE_COLUMNS].reset_index(drop=True)


def headline_text(cells: list[Cell], **kwargs: Any) -> str:
    """The headline table for a terminal, in the steady state; a cell whose steady state is
    empty (every request waited for a cold start, as in a short first run) shows its
    all-requests figures instead, marked ``(all)``, with a sentence saying why and what to
    change, so that no figure is missing without a reason."""
    steady = summary(cells, view="steady", **kwargs)
    every = summary(cells, view="all", **kwargs)
    empty = (steady["n"] == 0) & (every["n"] > 0)
    shown = steady.copy()
    shown.loc[empty] = every.loc[empty]
    shown.loc[empty, "cell"] = shown.loc[empty, "cell"] + " (all)"
    lines = [numbers.text(shown[HEADLINE_COLUMNS])]
    for _, row in every[empty].iterrows():
        lines.append(
            f"{row['cell']}: all {int(row['requests'])} requests waited for a cold start "
            f"({int(row['cold_starts'])} cold starts, Init Duration {row['init_mean_ms'] / 1000:.1f} s "
            "each), so there is no steady state to show; its row is every request. Run longer "
            "(--duration-s 60): warm instances then serve most requests, and the steady state "
            "shows."
        )  # fmt: skip
    return "\n".join(lines)


def intervals(cells: list[Cell], *, slo_ms: float | None = None, view: str = "steady",
              n_boot: int = 1000) -> pd.DataFrame:  # fmt: skip
    """95 % bootstrap intervals (over requests) of mean, p50, p99 and SLO attainment per
    cell, as ``low .. high`` text (one row per cell)."""
    rows = {}
    for cell in cells:
        found = metrics.confidence_intervals(*cell.records, slo_ms=slo_ms or cell.config.slo_ms,
                                             view=view, n_boot=n_boot)  # fmt: skip
        rows[cell.name] = {name: f"{low:.1f} .. {high:.1f}" for name, (low, high) in found.items()}
    return pd.DataFrame(rows).T


def table1(cells: list[Cell], *, slo_ms: float | None = None) -> pd.DataFrame:
    """Table 1 of this run: one row per (batching, workload), repetitions pooled.

    The paper's columns in the steady state (mean, p50, p99, SLO over the requests no cold
    start delayed), then the cold starts on their own (count, Init Duration per cold start,
    requests they delayed, what their init cost), the all-requests view beside, and the
    run-to-run spread of the steady p99 where cells repeat."""
    rows = []
    for (batching, workload), members in groups(cells).items():
        options = summarize_options(members, slo_ms)
        steady = metrics.pooled([c.records for c in members], view="steady", **options)
        everything = metrics.pooled([c.records for c in members], view="all", **options)
        p99s = [metrics.summarize(*c.records, view="steady", **summarize_options([c], slo_ms))["p99_ms"]
                for c in members]  # fmt: skip
        per_million = 1e6 / everything["requests"] if everything["requests"] else math.nan
        rows.append({
            "batching": batching, "workload": workload, "paper_workload": members[0].paper_workload,
            "repetitions": len(members), "n_steady": int(steady["n"]),
            "mean_ms": steady["mean_ms"], "p50_ms": steady["p50_ms"], "p99_ms": steady["p99_ms"],
            "slo_attainment_pct": steady["slo_attainment_pct"],
            "cold_starts": int(everything["cold_starts"]), "init_per_cold_start_ms": everything["init_mean_ms"],
            "cold_delayed_pct": everything["cold_delayed_pct"],
            "init_usd_per_1m": everything["init_usd"] * per_million,
            "all_mean_ms": everything["mean_ms"], "all_p99_ms": everything["p99_ms"],
            "all_slo_attainment_pct": everything["slo_attainment_pct"],
            "cost_per_1m_requests_usd": everything["cost_per_1m_requests_usd"],
            "warm_cost_per_1m_requests_usd": everything["warm_cost_per_1m_requests_usd"],
            "mean_batch_size": everything["mean_batch_size"],
            "p99_spread_ms": max(p99s) - min(p99s) if len(p99s) > 1 else math.nan,
        })  # fmt: skip
    return pd.DataFrame(rows)


def costs(cells: list[Cell]) -> pd.DataFrame:
    """What each (batching, workload) paid per 1M requests, repetitions pooled, split into
    request fees, warm compute, cold-start init and provisioned instances; with the mean batch
    size and invocations per 1M requests that drive the request fees."""
    rows = []
    for (batching, workload), members in groups(cells).items():
        f = metrics.pooled(
            [c.records for c in members], view="all", **summarize_options(members, None)
        )
        per = 1e6 / f["requests"] if f["requests"] else math.nan
        rows.append({"batching": batching, "workload": workload, "mean_batch_size": f["mean_batch_size"],
                     "invocations_per_1m": f["invocations"] * per, "requests_usd_per_1m": f["request_usd"] * per,
                     "warm_compute_usd_per_1m": (f["compute_usd"] - f["init_usd"]) * per,
                     "init_usd_per_1m": f["init_usd"] * per, "provisioned_usd_per_1m": f["provisioned_usd"] * per,
                     "total_usd_per_1m": f["cost_per_1m_requests_usd"]})  # fmt: skip
    return pd.DataFrame(rows)


def comparison(cells: list[Cell], *, slo_ms: float | None = None) -> pd.DataFrame:
    """Paper and ours side by side: each of our static/dynamic rows beside the paper's row of
    its workload kind (steady-state latency; Init Duration per cold start; cost per 1M
    requests, where the paper gives its run's total)."""
    ours = table1(cells, slo_ms=slo_ms)
    ours = ours[ours["batching"].isin(["static", "dynamic"])]
    paper = paper_table1().rename(columns={"workload": "paper_workload"})
    merged = ours.merge(paper, on=["batching", "paper_workload"], suffixes=("_ours", "_paper"))
    merged = merged.rename(columns={"init_duration_ms": "init_duration_ms_paper",
                                    "init_per_cold_start_ms": "init_duration_ms_ours",
                                    "cost_usd": "cost_usd_paper"})  # fmt: skip
    columns = ["batching", "workload"]
    for metric in PAPER_COLUMNS[:5]:
        columns += [f"{metric}_paper", f"{metric}_ours"]
    return merged[[*columns, "cost_usd_paper", "cost_per_1m_requests_usd"]]


def side_by_side_text(cells: list[Cell], *, slo_ms: float | None = None) -> str:
    """Table 1 as plain text for a terminal: each figure as ``paper / ours`` (steady state)."""
    rows = []
    for _, r in comparison(cells, slo_ms=slo_ms).iterrows():
        row = {"batching": r["batching"], "workload": r["workload"]}
        for metric in PAPER_COLUMNS[:5]:
            ours = r[f"{metric}_ours"]
            row[metric] = f"{r[f'{metric}_paper']:.1f} / " + (
                f"{ours:.1f}" if pd.notna(ours) else "-"
            )
        row["cost"] = (
            f"${format_usd(r['cost_usd_paper'])} per run / ${format_usd(r['cost_per_1m_requests_usd'])} per 1M"
        )
        rows.append(row)
    return ("Table 1, paper / ours (steady state: requests no cold start delayed; Init Duration "
            "per cold start):\n" + pd.DataFrame(rows).to_string(index=False))  # fmt: skip


format_usd = cost.format_usd  # re-exported: where the tables of this module format money


def write_report(
    run: str | os.PathLike[str],
    *,
    slo_ms: float | None = None,
    n_boot: int = 1000,
    verdicts: pd.DataFrame | None = None,
    extra_sections: dict[str, str] | None = None,
    extra_figures: dict[str, Any] | None = None,
) -> Path:
    """A Markdown report (``report.md``) with definitions, Table 1 in both views, the paper
    beside it, a verdict on each of the paper's claims with its reason, and the figures;
    readable without Jupyter. ``extra_sections`` (title -> Markdown) and ``extra_figures``
    (name -> Figure) add what a notebook computed (the rate sweep, the inverse fit);
    ``verdicts`` are :func:`labkit.analysis.claims.evaluate`'s, computed here when not given."""
    run = Path(run)
    cells = load_run(run)
    slo = slo_ms or cells[0].config.slo_ms
    table = table1(cells, slo_ms=slo)
    if verdicts is None:
        verdicts = claims.evaluate(cells, slo_ms=slo, n_boot=n_boot)
    verdicts.to_csv(run / CLAIMS_FILE, index=False)
    shown = one_per_setting(cells)  # a panel per cell: one repetition of each setting
    figures = {"latency_cdf": plots.latency_cdf(cells, slo), "batch_sizes": plots.batch_sizes(shown),
               "cold_starts": plots.cold_starts(shown),
               "cost_breakdown": plots.cost_breakdown(summary(cells, slo_ms=slo)),
               "latency_over_time": plots.latency_over_time(shown, slo)}  # fmt: skip
    if len(verdicts):
        figures["claims"] = plots.claims(verdicts)
    figures |= extra_figures or {}
    for name, fig in figures.items():
        plots.save(fig, run / "figures", name)
    lines = [f"# labkit run `{run.name}`", "",
             f"SLO {slo:g} ms; {sum(len(c.requests) for c in cells):,} requests in {len(cells)} "
             f"cells; backend {cells[0].config.backend}; prices {cost.PRICES_SOURCE}.", "",
             "## Definitions", "", DEFINITIONS, "",
             "## Table 1 (ours): steady state, cold starts apart, all requests beside", "",
             numbers.markdown(table), ""]  # fmt: skip
    if len(verdicts):
        lines += ["## Beside the paper", "", numbers.markdown(comparison(cells, slo_ms=slo)), "",
                  "## The paper's claims: dynamic vs static", "", claims.VERDICT_RULE, "",
                  numbers.markdown(claims.table(verdicts)), "", claims.family_sentence(verdicts), "",
                  "### Why", "",
                  *[f"- **{r.workload}, {r.metric}** ({r.verdict}): {r.reason}"
                    for r in verdicts.itertuples()], ""]  # fmt: skip
    for title, text in (extra_sections or {}).items():
        lines += [f"## {title}", "", text, ""]
    every = summary(cells, slo_ms=slo).drop(columns=["complete"])
    lines += ["## Every figure, per cell (steady state)", "", numbers.markdown(every), ""]
    if len(shown) < len(cells):
        lines += [f"Batch sizes, cold starts and latency over time show the first repetition of "
                  f"each setting ({len(shown)} of {len(cells)} cells); the tables pool them all.", ""]  # fmt: skip
    lines += [f"![{name}](figures/{name}.png)" for name in figures]
    incomplete = [c.name for c in cells if c.status.get("status") != "complete"]
    if incomplete:
        lines.insert(2, f"**Incomplete cells (stopped early): {', '.join(incomplete)}**\n")
    path = run / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def resolve_run(results: str | os.PathLike[str] | None = None, run_dir: str | None = None) -> Path:
    """The run to analyse: ``results`` if given, else the lab run's ``experiments`` folder,
    else the latest folder under ``results/experiments``."""
    if results:
        path = Path(results)
    elif run_dir and (Path(run_dir) / "experiments").is_dir():
        path = Path(run_dir) / "experiments"
    else:
        latest = paths.latest_run_dir("experiments")
        if latest is None:
            raise FileNotFoundError(
                "no experiment runs found under results/experiments; run notebook 04 "
                "(or `labkit run`) first, or pass results=<folder>"
            )
        path = latest
    if not path.is_dir():
        raise FileNotFoundError(f"results folder not found: {path}")
    return path
