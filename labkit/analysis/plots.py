"""Every figure the kit draws, in one place.

Each function returns a matplotlib :class:`~matplotlib.figure.Figure` built without pyplot:
nothing is registered globally, nothing needs closing, and the same call serves a notebook
(the figure displays when it is a cell's value, or with ``display``) and a headless script
(``save``). Functions draw what they are given; the numbers come from :mod:`labkit.analysis.report`,
:mod:`labkit.metrics` and :mod:`labkit.sim.simulate`.

``cells`` arguments are loaded cells (:class:`labkit.analysis.report.Cell`: ``name``, ``batching``,
``workload``, ``requests``, ``invocations``); ``table`` arguments are summary tables
(:func:`labkit.analysis.report.summary`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

from labkit.metrics import in_view

#: One colour per batching policy, the same in every figure.
POLICY_COLORS = {"none": "#7f7f7f", "static": "#d62728", "dynamic": "#1f77b4",
                 "adaptive": "#2ca02c", "slo-aware": "#9467bd"}  # fmt: skip
OTHER_COLOR = "#17becf"


def _style(ax: Any) -> None:
    ax.grid(True, alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def _color(batching: str) -> str:
    return POLICY_COLORS.get(batching, OTHER_COLOR)


def _empirical_cdf(ax: Any, latency_ms: pd.Series, n: int, **style: Any) -> None:
    """Share of all ``n`` requests answered within x (failures never reach 1)."""
    lat = np.sort(latency_ms.dropna().to_numpy(dtype=float))
    if lat.size:
        ax.step(lat, np.arange(1, lat.size + 1) / n, where="post", **style)


def save(fig: Figure, folder: str | os.PathLike[str], name: str) -> list[Path]:
    """Save as PNG and SVG into ``folder``; returns both paths. Every figure here lays itself
    out (``layout="constrained"``), so no ``bbox_inches="tight"``: its extra draw per file
    cost a quarter of the report's figure time (a report of the quick run: 7.2 s in savefig)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = [folder / f"{name}.png", folder / f"{name}.svg"]
    fig.savefig(out[0], dpi=120)
    fig.savefig(out[1])
    return out


# ----------------------------------------------------------------------------- the model
def digits(images: np.ndarray, titles: Sequence[str] | None = None, *, columns: int = 8) -> Figure:
    """A grid of 28x28 digits with an optional title under each."""
    n = len(images)
    rows = max(1, -(-n // columns))
    fig = Figure(figsize=(1.3 * columns, 1.5 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(np.asarray(images[i]), cmap="gray_r", vmin=0, vmax=255)
            if titles is not None:
                ax.set_title(titles[i], fontsize=9)
    return fig


def training_curve(history: Sequence[dict[str, float]]) -> Figure:
    """Loss and batch accuracy against training step."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    steps = [h["step"] for h in history]
    ax_loss.plot(steps, [h["loss"] for h in history], color="tab:blue")
    ax_loss.set(xlabel="training step", ylabel="cross-entropy loss", yscale="log", title="Loss")
    ax_acc.plot(steps, [100 * h["accuracy"] for h in history], color="tab:green")
    ax_acc.set(xlabel="training step", ylabel="batch accuracy (%)", title="Accuracy", ylim=(0, 100))
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
    return fig


def confusion(matrix: np.ndarray) -> Figure:
    """The 10x10 confusion matrix (rows: true digit, columns: predicted), counts annotated."""
    fig = Figure(figsize=(5.2, 4.6), layout="constrained")
    ax = fig.subplots()
    shown = np.log1p(matrix)
    image = ax.imshow(shown, cmap="Blues")
    for (row, col), count in np.ndenumerate(matrix):
        if count:
            light = shown[row, col] > shown.max() / 2
            ax.text(col, row, str(count), ha="center", va="center", fontsize=7,
                    color="white" if light else "black")  # fmt: skip
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit",
           title="Confusion matrix (test set)")  # fmt: skip
    fig.colorbar(image, ax=ax, label="log(1 + count)")
    return fig


# ----------------------------------------------------------------------------- workloads
def arrivals(series: dict[str, np.ndarray] | np.ndarray, bin_s: float = 1.0) -> Figure:
    """Requests per second over time for one or several workloads."""
    named = series if isinstance(series, dict) else {"arrivals": series}
    fig = Figure(figsize=(8, 2.2 * len(named)), layout="constrained")
    axes = fig.subplots(len(named), 1, squeeze=False, sharex=True)
    for ax, (name, times) in zip(axes[:, 0], named.items(), strict=True):
        end = float(times.max()) if len(times) else bin_s
        counts, edges = np.histogram(times, bins=np.arange(0.0, end + bin_s, bin_s))
        ax.step(edges[:-1], counts / bin_s, where="post")
        ax.set_ylabel("requests/s")
        ax.set_title(f"{name}: {len(times)} requests, mean {len(times) / max(end, 1e-9):.1f}/s",
                     fontsize=10)  # fmt: skip
    axes[-1, 0].set_xlabel("time since start (s)")
    return fig


# ----------------------------------------------------------------------------- a run's cells
def latency_cdf(cells: Sequence[Any], slo_ms: float = 200.0) -> Figure:
    """Latency CDF per cell, one panel per workload, log x, the SLO as a dashed line."""
    workloads = list(dict.fromkeys(c.workload for c in cells))
    fig = Figure(figsize=(5.5 * len(workloads), 4), layout="constrained")
    axes = fig.subplots(1, len(workloads), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        for cell in (c for c in cells if c.workload == workload):
            _empirical_cdf(ax, cell.requests["latency_ms"], len(cell.requests),
                           label=cell.name, color=_color(cell.batching))  # fmt: skip
        ax.axvline(slo_ms, color="black", linestyle="--", linewidth=1, label=f"SLO {slo_ms:g} ms")
        ax.set_xscale("log")
        ax.set(xlabel="latency (ms, log scale)", ylabel="share of requests", title=workload,
               ylim=(0, 1.01))  # fmt: skip
        ax.legend(loc="lower right", fontsize=8)
        _style(ax)
    return fig


def latency_over_time(cells: Sequence[Any], slo_ms: float = 200.0) -> Figure:
    """One panel per cell: each request's latency at its arrival time, batch dispatches as
    ticks, cold starts as triangles, failures as crosses on the SLO line."""
    fig = Figure(figsize=(10, 2.6 * len(cells)), layout="constrained")
    axes = fig.subplots(len(cells), 1, squeeze=False, sharex=True)
    for ax, cell in zip(axes[:, 0], cells, strict=True):
        req, inv = cell.requests, cell.invocations
        ax.scatter(req["t_arrive_s"], req["latency_ms"], s=6, color=_color(cell.batching),
                   label="request latency")  # fmt: skip
        failed = req[req["error"].notna()]
        if len(failed):
            ax.scatter(failed["t_arrive_s"], np.full(len(failed), slo_ms), marker="x",
                       color="black", s=12, label="failed")  # fmt: skip
        low = req["latency_ms"].min(skipna=True)
        ymin = max(low * 0.8, 0.1) if np.isfinite(low) else 1.0
        ax.vlines(inv["t_dispatch_s"], ymin, ymin * 1.5, color="grey", linewidth=0.5,
                  label="batch dispatch")  # fmt: skip
        cold = inv[inv["cold_start"]]
        ax.scatter(cold["t_dispatch_s"], np.full(len(cold), ymin * 2), marker="^", color="orange",
                   s=40, label="cold start", zorder=3)  # fmt: skip
        ax.axhline(slo_ms, color="black", linestyle="--", linewidth=1)
        ax.set_yscale("log")
        ax.set(ylabel="latency (ms, log)", title=cell.name)
        ax.legend(loc="upper right", fontsize=7, ncol=4)
        _style(ax)
    axes[-1, 0].set_xlabel("arrival time (s since start)")
    return fig


def batch_sizes(cells: Sequence[Any]) -> Figure:
    """Histogram of batch sizes (invocations) per cell; warm-ups (size 0) left out."""
    fig = Figure(figsize=(2.6 * len(cells), 2.8), layout="constrained")
    axes = fig.subplots(1, len(cells), squeeze=False, sharey=True)
    for ax, cell in zip(axes[0], cells, strict=True):
        sizes = cell.invocations["batch_size"]
        sizes = sizes[sizes > 0]
        top = int(sizes.max()) if len(sizes) else 1
        ax.hist(sizes, bins=np.arange(0.5, top + 1.5), color=_color(cell.batching))
        ax.set(title=cell.name, xlabel="batch size")
        _style(ax)
    axes[0, 0].set_ylabel("invocations")
    return fig


def cold_starts(cells: Sequence[Any]) -> Figure:
    """Cold starts on each cell's timeline; each bar is one Init Duration."""
    fig = Figure(figsize=(9, 0.5 + 0.45 * len(cells)), layout="constrained")
    ax = fig.subplots()
    for row, cell in enumerate(cells):
        cold = cell.invocations[cell.invocations["cold_start"]]
        ax.barh(np.full(len(cold), row), cold["init_duration_ms"] / 1000, left=cold["t_dispatch_s"],
                height=0.5, color=_color(cell.batching))  # fmt: skip
    ax.set_yticks(range(len(cells)), [c.name for c in cells])
    ax.set(xlabel="time since start (s); bar = Init Duration", title="cold starts")
    _style(ax)
    return fig


def cost_breakdown(table: pd.DataFrame) -> Figure:
    """Cost per 1M requests per cell, split into request fees, warm compute and cold-start
    init (``table``: :func:`labkit.analysis.report.summary`)."""
    n = table["n"].replace(0, np.nan)
    parts = {
        "requests": table["request_usd"] / n * 1e6,
        "compute (warm)": (table["compute_usd"] - table["init_usd"]) / n * 1e6,
        "init (cold starts)": table["init_usd"] / n * 1e6,
        "provisioned": table["provisioned_usd"] / n * 1e6,
    }
    fig = Figure(figsize=(1.4 * len(table) + 2, 3.5), layout="constrained")
    ax = fig.subplots()
    bottom = np.zeros(len(table))
    for (label, values), color in zip(parts.items(), ["#bcbd22", "#1f77b4", "#ff7f0e", "#9467bd"],
                                      strict=True):  # fmt: skip
        if label == "provisioned" and not values.fillna(0).any():
            continue
        ax.bar(table["cell"], values, bottom=bottom, label=label, color=color)
        bottom += values.fillna(0).to_numpy()
    ax.set(ylabel="USD per 1M requests", title="cost per 1 million requests")
    ax.tick_params(axis="x", rotation=30)
    ax.legend(fontsize=8)
    _style(ax)
    return fig


def memory_sweep(
    table: pd.DataFrame, slo_ms: float = 200.0, slo_target_pct: float = 95.0
) -> Figure:
    """Latency percentiles and cost per 1M requests against memory; the cheapest size whose
    SLO attainment reaches ``slo_target_pct`` is ringed."""
    table = table.sort_values("memory_mb")
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    lat, usd = fig.subplots(1, 2)
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
        usd.scatter([best["memory_mb"]], [best["cost_per_1m_requests_usd"]], s=200,
                    facecolors="none", edgecolors="green", linewidths=2,
                    label=f"cheapest with SLO >= {slo_target_pct:g} %: {int(best['memory_mb'])} MB")  # fmt: skip
        usd.legend(fontsize=8)
    for ax in (lat, usd):
        _style(ax)
    return fig


# ----------------------------------------------------------------------------- exploration
def trials(trials: Sequence[Any], slo_ms: float = 200.0) -> Figure:
    """Latency CDF, SLO attainment and cost per 1M requests of explorer trials
    (:class:`labkit.explore.Trial`: ``label``, ``number``, ``result``, ``figures``), each
    trial in the colour of its number, whichever trials are shown."""
    import matplotlib

    palette = matplotlib.colormaps["tab10"]
    fig = Figure(figsize=(13, 3.8), layout="constrained")
    cdf, slo, usd = fig.subplots(1, 3, gridspec_kw={"width_ratios": [2, 1, 1]})
    colors = [palette((t.number - 1) % 10) for t in trials]
    for trial, color in zip(trials, colors, strict=True):
        requests = trial.result.requests
        _empirical_cdf(cdf, requests["latency_ms"], len(requests), label=trial.label, color=color)
    cdf.axvline(slo_ms, color="black", linestyle="--", linewidth=1)
    cdf.set(xscale="log", xlabel="latency (ms, log)", ylabel="share of requests", ylim=(0, 1.01))
    if trials:
        cdf.legend(fontsize=7, loc="lower right")
    names = [f"#{t.number}" for t in trials]
    slo.bar(names, [t.figures["slo_attainment_pct"] for t in trials], color=colors)
    slo.set(ylabel=f"SLO attainment (%), {slo_ms:g} ms", ylim=(0, 100))
    usd.bar(names, [t.figures["cost_per_1m_requests_usd"] for t in trials], color=colors)
    usd.set(ylabel="USD per 1M requests")
    for ax in (cdf, slo, usd):
        ax.grid(True, alpha=0.3)
    return fig


def standing(result: Any) -> Figure:
    """One panel per workload of a :class:`labkit.course.assignment.Standing`, SLO attainment
    against cost per 1M requests: the target (dashed), every reference policy (grey dots, the
    best they reach as a line), the cheapest reference meeting the target (green diamond),
    the paper's rule (grey square) and the student's policy (red star); the panel title gives
    the workload's score and why, as the grade computes it."""
    table = result.table
    fig = Figure(figsize=(3.2 * len(table), 3.4), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(table), squeeze=False)[0])
    fronts = result.fronts  # computed on each access: once here, not once per panel
    for ax, row in zip(axes, table.itertuples(), strict=True):
        points = result.references[row.workload]
        ax.plot([p.cost_usd for p in points], [p.slo_pct for p in points], ".", color="0.75",
                label="reference policies")  # fmt: skip
        front = fronts[row.workload]
        ax.plot([p.cost_usd for p in front], [p.slo_pct for p in front], "-", color="0.6", lw=1)
        ax.axhline(result.target_pct, ls="--", color="tab:green", lw=1, label="target")
        ax.plot(row.cost_1m_usd_reference, row.slo_pct_reference, "D", color="tab:green",
                label="cheapest reference meeting it")  # fmt: skip
        ax.plot(row.cost_1m_usd_paper, row.slo_pct_paper, "s", color="grey", label="paper's rule")
        ax.plot(row.cost_1m_usd, row.slo_pct, "*", color="tab:red", markersize=12, label="yours")
        why = {"met": f"met, {row.extra_cost_pct:+.0f} % cost", "missed": "target missed",
               "attainment": "no reference meets it"}[row.basis]  # fmt: skip
        ax.set(title=f"{row.shape}\nscore {row.score:.2f} ({why})", xlabel="USD per 1M requests",
               ylim=(-2, 102))  # fmt: skip
        ax.title.set_fontsize(8)
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("SLO attainment (%)")
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(result.sentence(), fontsize=9)
    return fig


# ----------------------------------------------------------------------------- simulation
def nxt_map(table: pd.DataFrame) -> Figure:
    """Heatmaps of SLO attainment and cost per 1M requests over an N x T grid
    (:func:`labkit.sim.simulate.nxt_sweep`)."""
    fig = Figure(figsize=(11, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    panels = ((axes[0], "slo_attainment_pct", "RdYlGn", "SLO attainment (%)"),
              (axes[1], "cost_per_1m_requests_usd", "viridis_r", "USD per 1M requests"))  # fmt: skip
    for ax, column, cmap, label in panels:
        grid = table.pivot(index="N", columns="T_s", values=column)
        image = ax.imshow(grid.to_numpy(), cmap=cmap, aspect="auto", origin="lower")
        ax.set_xticks(range(len(grid.columns)), [f"{t:g}" for t in grid.columns])
        ax.set_yticks(range(len(grid.index)), grid.index)
        ax.set(xlabel="timeout T (s)", ylabel="max batch size N", title=label)
        for (r, c), value in np.ndenumerate(grid.to_numpy()):
            ax.text(c, r, f"{value:.1f}" if column.startswith("slo") else f"{value:.3f}",
                    ha="center", va="center", fontsize=7)  # fmt: skip
        fig.colorbar(image, ax=ax)
    return fig


# ----------------------------------------------------------------------------- the paper's claims
VERDICT_COLORS = {"reproduced": "#2ca02c", "contradicted": "#d62728", "inconclusive": "#7f7f7f",
                  "unreplicated": "#bcbd22", "tail too thin": "#9467bd"}  # fmt: skip


def claims(verdicts: pd.DataFrame) -> Figure:
    """Each claim's change from static to dynamic: ours as a dot with its 95 % interval,
    coloured by verdict; the paper's as a cross; zero as the line that decides
    (:func:`labkit.analysis.claims.evaluate`). Latencies, Init Duration and cost in %, SLO in points."""
    panels = [("%", verdicts[verdicts["metric"] != "slo_attainment_pct"]),
              ("percentage points", verdicts[verdicts["metric"] == "slo_attainment_pct"])]  # fmt: skip
    heights = [max(len(p), 1) for _, p in panels]
    fig = Figure(figsize=(9, 1.2 + 0.32 * sum(heights)), layout="constrained")
    axes = fig.subplots(2, 1, gridspec_kw={"height_ratios": heights})
    for ax, (unit, part) in zip(axes, panels, strict=True):
        labels = [f"{w}: {m.removesuffix('_ms').removesuffix('_usd')}"
                  for w, m in zip(part["workload"], part["metric"], strict=True)]  # fmt: skip
        y = np.arange(len(part))[::-1]
        for yi, (_, row) in zip(y, part.iterrows(), strict=True):
            color = VERDICT_COLORS.get(row["verdict"], OTHER_COLOR)
            if np.isfinite(row["ci_low"]):
                ax.hlines(yi, row["ci_low"], row["ci_high"], color=color, linewidth=3, alpha=0.6)
            ax.plot(row["ours_change"], yi, "o", color=color)
            ax.plot(row["paper_change"], yi, "x", color="black")
        ax.axvline(0, color="black", linewidth=1)
        ax.set_yticks(y, labels, fontsize=8)
        ax.set_xlabel(f"change from static to dynamic ({unit}); x = the paper's, dot = ours")
        _style(ax)
    handles = [_legend_line(color, name) for name, color in VERDICT_COLORS.items()]
    axes[0].legend(handles=handles, fontsize=8, loc="best")
    return fig


def _legend_line(color: str, label: str) -> Any:
    from matplotlib.lines import Line2D

    return Line2D([0], [0], color=color, linewidth=3, label=label)


def rate_sweep(sweep: pd.DataFrame, live: pd.DataFrame) -> Figure:
    """Where the policies differ: steady-state mean, p99, SLO attainment and cost per 1M
    requests against the mean request rate, one row per workload shape. Lines are the model
    (:func:`labkit.studies.calibrate.rate_sweep`); dots the run's own cells; the grey band is where
    static and dynamic batching send the very same batches, the dashed line (uniform load)
    the rate above which they must."""
    kinds = list(dict.fromkeys(sweep["kind"]))
    columns = [("mean_ms", "mean (ms)"), ("p99_ms", "p99 (ms)"),
               ("slo_attainment_pct", "SLO attainment (%)"), ("warm_cost_per_1m_requests_usd", "warm USD per 1M")]  # fmt: skip
    fig = Figure(figsize=(14, 3.2 * len(kinds)), layout="constrained")
    axes = fig.subplots(len(kinds), len(columns), squeeze=False)
    for row, kind in zip(axes, kinds, strict=True):
        part = sweep[sweep["kind"] == kind]
        same = part.groupby("rate")["same_batches"].all()
        for ax, (column, label) in zip(row, columns, strict=True):
            for rate in same[same].index:  # shade the rates where the policies coincide
                ax.axvspan(rate * 0.97, rate * 1.03, color="#dddddd", linewidth=0)
            for crossover in part.get("crossover_rate", pd.Series()).dropna().unique()[:1]:
                ax.axvline(crossover, color="black", linestyle="--", linewidth=1,
                           label=f"(N-1)/T = {crossover:.1f}/s")  # fmt: skip
            for policy, line in part.groupby("policy"):
                ax.plot(
                    line["rate"],
                    line[column],
                    "-",
                    color=_color(str(policy)),
                    label=f"{policy} (model)",
                )
            for _, point in live[live["kind"] == kind].iterrows():
                ax.plot(point["rate"], point[column], "o", color=_color(point["policy"]), markersize=7,
                        markeredgecolor="black")  # fmt: skip
            ax.set(
                xscale="log",
                xlabel="mean request rate (/s)",
                ylabel=label,
                title=f"{kind}: {label}",
            )
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # 2, 5, 10, 20, 50
            ax.xaxis.set_major_formatter(ScalarFormatter())
            ax.xaxis.set_minor_formatter(NullFormatter())
            _style(ax)
        row[0].legend(fontsize=7)
    return fig


def inverse_fit(fit: Any) -> Figure:
    """The paper's Table 1 beside the best setting the model found under the paper's stated
    rule (left), and every uniform setting tried: static batching's SLO attainment against
    dynamic batching's change of mean latency, with the paper's point (right)."""
    fig = Figure(figsize=(13, 4), layout="constrained")
    bars, scatter = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    latency = fit.table[fit.table["metric"] != "slo_attainment_pct"]
    labels = [
        f"{c}\n{m.removesuffix('_ms')}"
        for c, m in zip(latency["cell"], latency["metric"], strict=True)
    ]
    x = np.arange(len(latency))
    bars.bar(x - 0.2, latency["paper"], 0.4, label="paper", color="#444444")
    bars.bar(x + 0.2, latency["simulated"], 0.4, label="best setting (model)", color="#1f77b4")
    bars.set_xticks(x, labels, fontsize=6, rotation=45, ha="right")
    bars.set(ylabel="latency (ms)", title="the paper's Table 1 beside the closest setting")
    bars.legend(fontsize=8)
    u = fit.uniform
    points = scatter.scatter(u["static_slo_pct"], u["dynamic_mean_change_pct"], c=u["distance_ms"],
                             cmap="viridis", s=18)  # fmt: skip
    fig.colorbar(points, ax=scatter, label="network round trip (ms)")
    paper = fit.table.set_index(["cell", "metric"])["paper"]
    gain = (paper[("dynamic-uniform", "mean_ms")] / paper[("static-uniform", "mean_ms")] - 1) * 100
    scatter.plot(paper[("static-uniform", "slo_attainment_pct")], gain, "*", color="red", markersize=16,
                 label="the paper")  # fmt: skip
    scatter.set(xlabel="static batching: SLO attainment (%)", ylabel="dynamic vs static: mean (%)",
                title="uniform load, every setting tried")  # fmt: skip
    scatter.legend(fontsize=8)
    for ax in (bars, scatter):
        _style(ax)
    return fig


# ----------------------------------------------------------------------------- where to batch
#: One colour per placement (labkit.studies.placement), in the order its study lists them.
PLACEMENT_COLORS = ["#1f77b4", "#2ca02c", "#98df8a", "#ff7f0e", "#ffbb78", "#7f7f7f"]


def _placements(groups: dict[tuple[str, str], list[Any]]) -> list[str]:
    """The placements in the order the study gave them (:func:`labkit.studies.placement.choose`
    lists every contender, measured or modelled, in one order), so a placement keeps its
    colour in every figure of a run."""
    return list(dict.fromkeys(name for _, name in groups))


def _placement_color(name: str, names: Sequence[str]) -> str:
    index = list(names).index(name) if name in names else len(PLACEMENT_COLORS) - 1
    return PLACEMENT_COLORS[index % len(PLACEMENT_COLORS)]


def placement_cdfs(groups: dict[tuple[str, str], list[Any]], table: pd.DataFrame,
                   slo_ms: float = 200.0) -> Figure:  # fmt: skip
    """Steady-state latency CDF of each placement, one panel per workload; modelled
    placements dashed (``groups``: :func:`labkit.studies.placement.choose`; ``table``:
    :func:`labkit.studies.placement.compare`, whose ``source`` says which were measured)."""
    sources = dict(zip(zip(table["workload"], table["placement"], strict=True), table["source"],
                       strict=True))  # fmt: skip
    workloads = list(dict.fromkeys(w for w, _ in groups))
    fig = Figure(figsize=(5.8 * len(workloads), 4), layout="constrained")
    axes = fig.subplots(1, len(workloads), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        for (w, name), cells in groups.items():
            if w != workload:
                continue
            steady = [in_view(c.requests, c.invocations, "steady") for c in cells]
            latency = pd.concat([s["latency_ms"] for s in steady])
            dashed = sources.get((w, name)) == "modelled"
            _empirical_cdf(ax, latency, len(latency), label=name + (" (model)" if dashed else ""),
                           color=_placement_color(name, _placements(groups)),
                           linestyle="--" if dashed else "-")  # fmt: skip
        ax.axvline(slo_ms, color="black", linestyle=":", linewidth=1, label=f"SLO {slo_ms:g} ms")
        ax.set_xscale("log")
        ax.set(xlabel="latency (ms, log scale), steady state", ylabel="share of requests",
               title=workload, ylim=(0, 1.01))  # fmt: skip
        ax.legend(loc="lower right", fontsize=7)
        _style(ax)
    return fig


def placement_batches(groups: dict[tuple[str, str], list[Any]]) -> Figure:
    """Share of requests by the size of the batch they travelled in, per placement (one
    panel per workload)."""
    workloads = list(dict.fromkeys(w for w, _ in groups))
    fig = Figure(figsize=(5.8 * len(workloads), 3.6), layout="constrained")
    axes = fig.subplots(1, len(workloads), squeeze=False)
    for ax, workload in zip(axes[0], workloads, strict=True):
        names = [n for w, n in groups if w == workload]
        width = 0.8 / max(len(names), 1)
        for k, name in enumerate(names):
            sizes = pd.concat([c.requests["batch_size"] for c in groups[(workload, name)]]).dropna()
            shares = sizes.astype(int).value_counts(normalize=True).sort_index()
            ax.bar(shares.index + (k - (len(names) - 1) / 2) * width, shares.to_numpy(), width=width,
                   label=name, color=_placement_color(name, _placements(groups)))  # fmt: skip
        ax.set(xlabel="batch size", ylabel="share of requests", title=workload)
        ax.legend(fontsize=7)
        _style(ax)
    return fig


def placement_costs(table: pd.DataFrame) -> Figure:
    """Cost per 1M requests once warm, split by service, per placement and workload
    (``table``: :func:`labkit.studies.placement.compare`); cold-start init is left out (Table 1
    shows it apart)."""
    parts = {"Lambda requests": "Lambda requests $/1M",
             "Lambda duration (warm)": "Lambda warm compute $/1M",
             "SQS request queue": "SQS request queue $/1M", "SQS answers": "SQS answers $/1M"}  # fmt: skip
    colors = ["#bcbd22", "#1f77b4", "#ff7f0e", "#ffbb78"]
    workloads = list(dict.fromkeys(table["workload"]))
    fig = Figure(figsize=(5.8 * len(workloads), 4), layout="constrained")
    axes = fig.subplots(1, len(workloads), squeeze=False, sharey=True)
    for ax, workload in zip(axes[0], workloads, strict=True):
        part = table[table["workload"] == workload]
        bottom = np.zeros(len(part))
        for (label, column), color in zip(parts.items(), colors, strict=True):
            values = part[column].fillna(0).to_numpy(float)
            ax.barh(part["placement"], values, left=bottom, label=label, color=color)
            bottom += values
        ax.invert_yaxis()
        ax.set(xlabel="USD per 1M requests, once warm", title=workload)
        _style(ax)
    axes[0, 0].legend(fontsize=7, loc="lower right")
    return fig


# ----------------------------------------------------------------------------- your model
def _panel_per_model(names: list[str], ylabel: str) -> tuple[Figure, list[tuple[Any, str]]]:
    """A row of panels, one per model (titled, batch size along x, styled), and the figure;
    the first panel gets ``ylabel``."""
    fig = Figure(figsize=(3.4 * max(len(names), 1), 3.2), layout="constrained")
    axes = fig.subplots(1, max(len(names), 1), squeeze=False)[0]
    for ax, name in zip(axes, names, strict=False):
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("batch size")
        _style(ax)
    axes[0].set_ylabel(ylabel)
    return fig, list(zip(axes, names, strict=False))


def service_times(probes: dict[str, Any], fits: dict[str, Any]) -> Figure:
    """Each model's warm Duration against batch size: the probe's calls as dots, the fit
    (:mod:`labkit.studies.your_model`) as a line, one panel per model, one colour per
    memory size; log scale, since the models' times differ a thousandfold."""
    fig, panels = _panel_per_model(list(probes), "Duration (ms)")
    for ax, name in panels:
        calls, fitted = probes[name].calls, fits[name]
        for i, (memory, part) in enumerate(calls.groupby("memory_mb")):
            color = f"C{i}"
            ax.plot(part["batch_size"], part["duration_ms"], "o", color=color, alpha=0.5,
                    label=f"{memory:,} MB (probe)")  # fmt: skip
            sizes = np.arange(1, int(part["batch_size"].max()) + 1)
            ax.plot(sizes, fitted.duration_ms(sizes, int(memory)), "-", color=color)
        ax.set_yscale("log")
    panels[0][0].legend(fontsize=8)
    return fig


def batch_cost(curves: Any) -> Figure:
    """Warm cost per 1M requests against batch size, one panel per model, a line per memory
    size; solid where a batch's own service and the network fit the model's SLO, dotted where
    it does not (there batching costs the SLO)."""
    fig, panels = _panel_per_model(list(dict.fromkeys(curves["model"])), "warm USD per 1M requests")
    for ax, name in panels:
        part = curves[curves["model"] == name]
        for i, (memory, line) in enumerate(part.groupby("memory_mb")):
            ok = line[line["fits_slo"]]
            ax.plot(line["batch_size"], line["warm_usd_per_1m"], ":", color=f"C{i}")
            ax.plot(ok["batch_size"], ok["warm_usd_per_1m"], "-", color=f"C{i}",
                    label=f"{memory:,} MB")  # fmt: skip
    panels[0][0].legend(fontsize=8)
    return fig


def tune_frontier(table: pd.DataFrame, frontier: pd.DataFrame, *, percentile: float,
                  answer: Any = None, runner_up: Any = None) -> Figure:  # fmt: skip
    """A search's configurations: SLO attainment against cost per 1M requests, one colour
    per policy, the SLO-cost frontier as a line, the target as a band, the answer and the
    runner-up ringed (``labkit.tune``)."""
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    ax = fig.subplots()
    for policy, part in table.groupby("policy"):
        ax.scatter(part["cost_per_1m_requests_usd"], part["slo_attainment_pct"], s=8, alpha=0.45,
                   color=POLICY_COLORS.get(str(policy), OTHER_COLOR), label=str(policy))  # fmt: skip
    ax.step(frontier["cost_per_1m_requests_usd"], frontier["slo_attainment_pct"], where="post",
            color="black", linewidth=1, label="frontier")  # fmt: skip
    ax.axhspan(
        percentile, 100.5, color="#2ca02c", alpha=0.08, label=f"meets the SLO (>= {percentile:g} %)"
    )
    for row, name, marker in ((answer, "answer", "o"), (runner_up, "runner-up", "s")):
        if row is not None:
            ax.scatter([row["cost_per_1m_requests_usd"]], [row["slo_attainment_pct"]], s=120,
                       facecolors="none", edgecolors="black", marker=marker, label=name)  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("USD per 1M requests (log scale)")
    ax.set_ylabel("requests within the SLO (%)")
    low = max(0.0, min(percentile - 25, float(table["slo_attainment_pct"].quantile(0.05))))
    ax.set_ylim(low, 100.5)
    ax.legend(fontsize=8, loc="lower right")
    _style(ax)
    return fig


def tune_agreement(agreement: pd.DataFrame, *, percentile: float) -> Figure:
    """The closed-form model's SLO attainment against the simulator's, one dot per policy
    and memory both cover; the diagonal is agreement, the dashed lines the target."""
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for policy, part in agreement.groupby("policy"):
        ax.scatter(part["simulated_pct"], part["analytic_pct"], s=10,
                   color=POLICY_COLORS.get(str(policy), OTHER_COLOR), label=str(policy))  # fmt: skip
    low = float(min(agreement["simulated_pct"].min(), agreement["analytic_pct"].min(), percentile))
    ax.plot([low, 100], [low, 100], color="black", linewidth=0.8)
    ax.axvline(percentile, linestyle="--", color="grey")
    ax.axhline(percentile, linestyle="--", color="grey")
    ax.set_xlabel("simulated: within the SLO (%)")
    ax.set_ylabel("analytic: within the SLO (%)")
    ax.legend(fontsize=8)
    _style(ax)
    return fig
