"""From a run folder to the paper's Table 1, the claims checklist, plots and a summary report.

A *run* is a matrix folder (``<run>/<cell>/requests.parquet ...``, see
:mod:`labkit.records`) or one cell folder. Everything here is recomputed from the raw
records, so a table can always be redone with another SLO or warm-up cut. Figures are
drawn by :mod:`labkit.plots`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost, metrics, plots, records
from labkit.experiment import ExperimentConfig

TABLE1_COLUMNS = ["batching", "workload", "mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct",
                  "init_duration_ms", "cost_usd"]  # fmt: skip
# The paper's claims, dynamic vs static per workload: lower is better except SLO attainment.
CLAIM_METRICS = {"mean_ms": "lower", "p50_ms": "lower", "p99_ms": "lower",
                 "slo_attainment_pct": "higher", "cost_usd": "lower", "init_duration_ms": "lower"}  # fmt: skip


@dataclass
class Cell:
    """One loaded cell: its name, configuration, facts, status and records."""

    name: str
    config: ExperimentConfig
    status: dict[str, Any]
    requests: pd.DataFrame
    invocations: pd.DataFrame
    environment: dict[str, Any]

    @property
    def batching(self) -> str:
        return self.config.policy.kind

    @property
    def workload(self) -> str:
        return self.config.workload.kind


def load_run(run: str | os.PathLike[str]) -> list[Cell]:
    """Every cell of a run folder, in the order it ran."""
    folders = records.cell_folders(run)
    if not folders:
        raise FileNotFoundError(f"no experiment cells under {run}")
    return [load_cell(folder) for folder in folders]


def load_cell(folder: str | os.PathLike[str]) -> Cell:
    """One saved cell, its configuration typed."""
    saved = records.load_cell(folder)
    return Cell(saved.name, ExperimentConfig.from_dict(saved.config), saved.status,
                saved.requests, saved.invocations, saved.environment)  # fmt: skip


def paper_table1() -> pd.DataFrame:
    """The published Table 1 (see ``labkit/reference/README.md``)."""
    with resources.files("labkit.reference").joinpath("paper_table1.csv").open() as handle:
        return pd.read_csv(handle)


def summary(
    cells: list[Cell], *, slo_ms: float | None = None, warmup_s: float = 0.0
) -> pd.DataFrame:
    """Every figure of :func:`labkit.metrics.summarize`, one row per cell."""
    rows = []
    for cell in cells:
        cfg = cell.config
        figures = metrics.summarize(
            cell.requests, cell.invocations, slo_ms=slo_ms or cfg.slo_ms, warmup_s=warmup_s,
            memory_mb=cfg.function.memory_mb, provisioned_instances=cfg.function.provisioned,
            provisioned_seconds=float(cell.status.get("wall_s", 0.0)),
        )  # fmt: skip
        figures["memory_mb"] = cfg.function.memory_mb
        rows.append({"cell": cell.name, "batching": cell.batching, "workload": cell.workload,
                     "complete": cell.status.get("status") == "complete", **figures})  # fmt: skip
    return pd.DataFrame(rows)


#: The figures a first look at a run shows (notebook 04, ``labkit run``).
HEADLINE_COLUMNS = ["cell", "n", "mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct",
                    "invocations", "mean_batch_size", "cold_starts", "errors",
                    "cost_per_1m_requests_usd"]  # fmt: skip


def headline(cells: list[Cell], **kwargs: Any) -> pd.DataFrame:
    """The main figures of each cell (:data:`HEADLINE_COLUMNS`), one row per cell."""
    return summary(cells, **kwargs)[HEADLINE_COLUMNS].reset_index(drop=True)


def intervals(cells: list[Cell], *, slo_ms: float | None = None, warmup_s: float = 0.0,
              n_boot: int = 1000) -> pd.DataFrame:  # fmt: skip
    """95 % bootstrap intervals of mean, p50, p99 and SLO attainment per cell, as
    ``low .. high`` text (one row per cell)."""
    rows = {}
    for cell in cells:
        found = metrics.confidence_intervals(cell.requests, slo_ms=slo_ms or cell.config.slo_ms,
                                             warmup_s=warmup_s, n_boot=n_boot)  # fmt: skip
        rows[cell.name] = {name: f"{low:.1f} .. {high:.1f}" for name, (low, high) in found.items()}
    return pd.DataFrame(rows).T


def table1(cells: list[Cell], **kwargs: Any) -> pd.DataFrame:
    """The paper's columns, for the kit's run (one row per cell)."""
    return summary(cells, **kwargs)[TABLE1_COLUMNS].reset_index(drop=True)


def comparison(cells: list[Cell], **kwargs: Any) -> pd.DataFrame:
    """Paper and ours side by side, for the cells the paper has (static/dynamic x workloads)."""
    ours = table1(cells, **kwargs)
    paper = paper_table1()
    merged = paper.merge(
        ours, on=["batching", "workload"], how="left", suffixes=("_paper", "_ours")
    )
    return merged[["batching", "workload"] + [f"{m}_{s}" for m in TABLE1_COLUMNS[2:]
                                              for s in ("paper", "ours")]]  # fmt: skip


def claims(cells: list[Cell], **kwargs: Any) -> pd.DataFrame:
    """For each of the paper's claims (dynamic vs static, per workload and metric): the change
    the paper reports, ours, and whether ours points the same way."""
    ours = table1(cells, **kwargs).set_index(["batching", "workload"])
    paper = paper_table1().set_index(["batching", "workload"])
    rows = []
    for workload in ("uniform", "bursty"):
        for metric, better in CLAIM_METRICS.items():
            p_static, p_dynamic = (
                paper.loc[("static", workload), metric],
                paper.loc[("dynamic", workload), metric],
            )
            try:
                o_static, o_dynamic = (
                    ours.loc[("static", workload), metric],
                    ours.loc[("dynamic", workload), metric],
                )
            except KeyError:
                o_static = o_dynamic = np.nan
            paper_change = _relative(p_dynamic, p_static, metric)
            our_change = _relative(o_dynamic, o_static, metric)
            same = (
                bool(np.sign(paper_change) == np.sign(our_change))
                if np.isfinite(our_change)
                else None
            )
            rows.append({
                "workload": workload, "metric": metric, "better": better,
                "paper_static": p_static, "paper_dynamic": p_dynamic, "paper_change": paper_change,
                "ours_static": o_static, "ours_dynamic": o_dynamic, "ours_change": our_change,
                "same_direction": same,
            })  # fmt: skip
    return pd.DataFrame(rows)


def _relative(dynamic: float, static: float, metric: str) -> float:
    """Change from static to dynamic: percentage points for SLO attainment, % otherwise."""
    if not (np.isfinite(dynamic) and np.isfinite(static)):
        return float("nan")
    if metric == "slo_attainment_pct":
        return float(dynamic - static)
    return float((dynamic - static) / static * 100) if static else float("nan")


def write_report(run: str | os.PathLike[str], *, slo_ms: float | None = None) -> Path:
    """A Markdown report (``report.md``) with tables and figures, readable without Jupyter."""
    run = Path(run)
    cells = load_run(run)
    slo = slo_ms or cells[0].config.slo_ms
    table = summary(cells, slo_ms=slo)
    figures = {"latency_cdf": plots.latency_cdf(cells, slo), "batch_sizes": plots.batch_sizes(cells),
               "cold_starts": plots.cold_starts(cells), "cost_breakdown": plots.cost_breakdown(table),
               "latency_over_time": plots.latency_over_time(cells, slo)}  # fmt: skip
    for name, fig in figures.items():
        plots.save(fig, run / "figures", name)
    has_paper_cells = {"static", "dynamic"} <= set(table["batching"])
    lines = [f"# labkit run `{run.name}`", "",
             f"SLO {slo:g} ms; {int(table['n'].sum())} requests in {len(cells)} cells; prices "
             f"{cost.PRICES_SOURCE}.", "", "## Table 1 (ours)", "",
             table[TABLE1_COLUMNS].round(7).to_markdown(index=False), ""]  # fmt: skip
    if has_paper_cells:
        lines += ["## Beside the paper", "", comparison(cells, slo_ms=slo).round(7).to_markdown(index=False),
                  "", "## The paper's claims (dynamic vs static)", "",
                  claims(cells, slo_ms=slo).round(2).to_markdown(index=False), ""]  # fmt: skip
    lines += [
        "## All figures",
        "",
        table.drop(columns=["complete"]).round(3).to_markdown(index=False),
        "",
    ]
    lines += [f"![{name}](figures/{name}.png)" for name in figures]
    incomplete = table.loc[~table["complete"], "cell"].tolist()
    if incomplete:
        lines.insert(2, f"**Incomplete cells (stopped early): {', '.join(incomplete)}**\n")
    path = run / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def resolve_run(results: str | os.PathLike[str] | None = None, run_dir: str | None = None) -> Path:
    """The run to analyse: ``results`` if given, else the lab run's ``experiments`` folder,
    else the latest folder under ``results/experiments``."""
    from labkit import paths

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


def side_by_side_text(cells: list[Cell], **kwargs: Any) -> str:
    """Table 1 as plain text for a terminal: each figure as ``paper / ours``."""
    merged = comparison(cells, **kwargs)
    rows = []
    for _, r in merged.iterrows():
        row = {"batching": r["batching"], "workload": r["workload"]}
        for metric in TABLE1_COLUMNS[2:]:
            fmt = "{:.6f}" if metric == "cost_usd" else "{:.1f}"
            ours = r[f"{metric}_ours"]
            row[metric] = f"{fmt.format(r[f'{metric}_paper'])} / " + (
                fmt.format(ours) if pd.notna(ours) else "-"
            )
        rows.append(row)
    return "Table 1, paper / ours:\n" + pd.DataFrame(rows).to_string(index=False)
