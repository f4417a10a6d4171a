"""From a run folder to the paper's Table 1, the claims checklist, plots and a summary report.

A *run* is a matrix folder (``<run>/<cell>/requests.parquet ...``, see
:mod:`labkit.experiment`) or one cell folder. Everything here is recomputed from the raw
records, so a table can always be redone with another SLO or warm-up cut.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost, metrics
from labkit.experiment import cell_folders, load_cell

TABLE1_COLUMNS = ["batching", "workload", "mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct",
                  "init_duration_ms", "cost_usd"]  # fmt: skip
# The paper's claims, dynamic vs static per workload: lower is better except SLO attainment.
CLAIM_METRICS = {"mean_ms": "lower", "p50_ms": "lower", "p99_ms": "lower",
                 "slo_attainment_pct": "higher", "cost_usd": "lower", "init_duration_ms": "lower"}  # fmt: skip
COLORS = {"none": "#7f7f7f", "static": "#d62728", "dynamic": "#1f77b4", "adaptive": "#2ca02c",
          "slo-aware": "#9467bd"}  # fmt: skip


@dataclass
class Cell:
    """One loaded cell: name, config and records."""

    name: str
    config: Any
    status: dict[str, Any]
    requests: pd.DataFrame
    invocations: pd.DataFrame

    @property
    def batching(self) -> str:
        return self.config.policy.kind

    @property
    def workload(self) -> str:
        return self.config.workload.kind


def load_run(run: str | os.PathLike[str]) -> list[Cell]:
    """Every cell of a run folder, in the order it ran."""
    folders = cell_folders(run)
    if not folders:
        raise FileNotFoundError(f"no experiment cells under {run}")
    cells = []
    for folder in folders:
        c = load_cell(folder)
        cells.append(Cell(c["name"], c["config"], c["status"], c["requests"], c["invocations"]))
    return cells


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


# ----------------------------------------------------------------------------- plots
def _color(cell: Cell) -> str:
    return COLORS.get(cell.batching, "#17becf")


def _style(ax: Any) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def plot_latency_cdf(cells: list[Cell], slo_ms: float = 200.0) -> Any:
    """Latency CDF per cell, one panel per workload, log x, SLO line."""
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(c.workload for c in cells))
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        for cell in (c for c in cells if c.workload == workload):
            lat = np.sort(cell.requests["latency_ms"].dropna().to_numpy())
            if lat.size:
                ax.step(lat, np.arange(1, lat.size + 1) / len(cell.requests), where="post",
                        label=cell.batching, color=_color(cell))  # fmt: skip
        ax.axvline(slo_ms, color="black", linestyle="--", linewidth=1, label=f"SLO {slo_ms:g} ms")
        ax.set_xscale("log")
        ax.set(
            xlabel="latency (ms, log scale)",
            ylabel="share of requests",
            title=workload,
            ylim=(0, 1.01),
        )
        ax.legend(loc="lower right", fontsize=8)
        _style(ax)
    fig.tight_layout()
    return fig


def plot_latency_over_time(cell: Cell, slo_ms: float = 200.0) -> Any:
    """Each request's latency at its arrival time, batch dispatches and cold starts marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 3.5))
    req, inv = cell.requests, cell.invocations
    ax.scatter(req["t_arrive"], req["latency_ms"], s=6, color=_color(cell), label="request latency")
    failed = req[req["error"].notna()]
    if len(failed):
        ax.scatter(failed["t_arrive"], np.full(len(failed), slo_ms), marker="x", color="black",
                   s=12, label="failed")  # fmt: skip
    ymin = (
        max(req["latency_ms"].min(skipna=True) * 0.8, 0.1) if req["latency_ms"].notna().any() else 1
    )
    ax.vlines(
        inv["t_dispatch"], ymin, ymin * 1.5, color="grey", linewidth=0.5, label="batch dispatch"
    )
    cold = inv[inv["cold_start"]]
    ax.scatter(cold["t_dispatch"], np.full(len(cold), ymin * 2), marker="^", color="orange", s=40,
               label="cold start", zorder=3)  # fmt: skip
    ax.axhline(slo_ms, color="black", linestyle="--", linewidth=1)
    ax.set_yscale("log")
    ax.set(xlabel="arrival time (s since start)", ylabel="latency (ms, log)", title=cell.name)
    ax.legend(loc="upper right", fontsize=8, ncol=4)
    _style(ax)
    fig.tight_layout()
    return fig


def plot_batch_sizes(cells: list[Cell]) -> Any:
    """Histogram of batch sizes (invocations) per cell."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1, len(cells), figsize=(2.6 * len(cells), 2.8), squeeze=False, sharey=True
    )
    for ax, cell in zip(axes[0], cells, strict=True):
        sizes = cell.invocations["batch_size"]
        bins = np.arange(0.5, max(int(sizes.max()) if len(sizes) else 1, 1) + 1.5)
        ax.hist(sizes, bins=bins, color=_color(cell))
        ax.set(title=cell.name, xlabel="batch size")
        _style(ax)
    axes[0, 0].set_ylabel("invocations")
    fig.tight_layout()
    return fig


def plot_cold_starts(cells: list[Cell]) -> Any:
    """Cold starts on each cell's timeline, with their Init Duration."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 0.5 + 0.45 * len(cells)))
    for row, cell in enumerate(cells):
        cold = cell.invocations[cell.invocations["cold_start"]]
        for _, c in cold.iterrows():
            ax.barh(
                row,
                c["init_duration_ms"] / 1000,
                left=c["t_dispatch"],
                height=0.5,
                color=_color(cell),
            )
    ax.set_yticks(range(len(cells)), [c.name for c in cells])
    ax.set(xlabel="time since start (s); bar = Init Duration", title="cold starts")
    _style(ax)
    fig.tight_layout()
    return fig


def plot_cost_breakdown(cells: list[Cell]) -> Any:
    """Cost per 1M requests, split into request fees, warm compute and cold-start init."""
    import matplotlib.pyplot as plt

    table = summary(cells)
    n = table["n"].replace(0, np.nan)
    parts = {
        "requests": table["request_usd"] / n * 1e6,
        "compute (warm)": (table["compute_usd"] - table["init_usd"]) / n * 1e6,
        "init (cold starts)": table["init_usd"] / n * 1e6,
    }
    fig, ax = plt.subplots(figsize=(1.4 * len(cells) + 2, 3.5))
    bottom = np.zeros(len(table))
    for (label, values), color in zip(
        parts.items(), ["#bcbd22", "#1f77b4", "#ff7f0e"], strict=True
    ):
        ax.bar(table["cell"], values, bottom=bottom, label=label, color=color)
        bottom += values.fillna(0).to_numpy()
    ax.set(ylabel="USD per 1M requests", title="cost per 1 million requests")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    _style(ax)
    fig.tight_layout()
    return fig


def plot_memory_sweep(
    cells: list[Cell], slo_ms: float = 200.0, slo_target_pct: float = 95.0
) -> Any:
    """Latency percentiles and cost per 1M requests against memory; the cheapest memory size
    whose SLO attainment reaches ``slo_target_pct`` is marked."""
    import matplotlib.pyplot as plt

    table = summary(cells, slo_ms=slo_ms).sort_values("memory_mb")
    fig, (lat, usd) = plt.subplots(1, 2, figsize=(11, 3.8))
    for column, style in (("p50_ms", "o-"), ("p99_ms", "s--"), ("mean_ms", "^:")):
        lat.plot(table["memory_mb"], table[column], style, label=column.replace("_ms", ""))
    lat.axhline(slo_ms, color="black", linestyle="--", linewidth=1, label=f"SLO {slo_ms:g} ms")
    lat.set(xlabel="memory (MB)", ylabel="latency (ms)", yscale="log", title="latency vs memory")
    lat.legend(fontsize=8)
    usd.plot(table["memory_mb"], table["cost_per_1m_requests_usd"], "o-", color="#ff7f0e")
    usd.set(xlabel="memory (MB)", ylabel="USD per 1M requests", title="cost vs memory")
    ok = table[table["slo_attainment_pct"] >= slo_target_pct]
    if len(ok):
        best = ok.loc[ok["cost_per_1m_requests_usd"].idxmin()]
        usd.scatter([best["memory_mb"]], [best["cost_per_1m_requests_usd"]], s=200, facecolors="none",
                    edgecolors="green", linewidths=2,
                    label=f"cheapest with SLO >= {slo_target_pct:g} %: {int(best['memory_mb'])} MB")  # fmt: skip
        usd.legend(fontsize=8)
    for ax in (lat, usd):
        _style(ax)
    fig.tight_layout()
    return fig


def save_figure(fig: Any, folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Save as PNG and SVG; returns both paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(out[0], dpi=120, bbox_inches="tight")
    fig.savefig(out[1], bbox_inches="tight")
    return out


def write_report(run: str | os.PathLike[str], *, slo_ms: float | None = None) -> Path:
    """A Markdown report (``report.md``) with tables and figures, readable without Jupyter."""
    import matplotlib.pyplot as plt

    run = Path(run)
    cells = load_run(run)
    slo = slo_ms or cells[0].config.slo_ms
    figures = run / "figures"
    plots = {"latency_cdf": plot_latency_cdf(cells, slo), "batch_sizes": plot_batch_sizes(cells),
             "cold_starts": plot_cold_starts(cells), "cost_breakdown": plot_cost_breakdown(cells)}  # fmt: skip
    for cell in cells:
        plots[f"timeline_{cell.name}"] = plot_latency_over_time(cell, slo)
    for name, fig in plots.items():
        save_figure(fig, figures, name)
        plt.close(fig)
    table = summary(cells, slo_ms=slo)
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
    lines += [f"![{name}](figures/{name}.png)" for name in plots]
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
