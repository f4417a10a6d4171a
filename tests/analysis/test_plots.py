"""Every figure the kit draws renders headless from its inputs, without pyplot."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.figure import Figure

from labkit.analysis import plots, report
from tests.cells import paper_run


@pytest.fixture
def cells(tmp_path: Path) -> list[report.Cell]:
    return report.load_run(paper_run(tmp_path / "run", repetitions=1))


def test_run_figures_render_one_panel_per_workload_or_cell(cells: list[report.Cell]) -> None:
    table = report.summary(cells)
    assert len(plots.latency_cdf(cells).axes) == 2  # uniform, bursty
    assert len(plots.latency_over_time(cells).axes) == len(cells)
    assert len(plots.batch_sizes(cells).axes) == len(cells)
    bars = plots.cold_starts(cells).axes[0].patches
    assert len(bars) == 4 and {b.get_width() for b in bars} == {2.0}  # one 2 s init per cell
    assert plots.cost_breakdown(table).axes[0].get_legend() is not None
    assert plt.get_fignums() == []  # nothing registered with pyplot


def test_memory_sweep_rings_the_cheapest_size_meeting_the_target() -> None:
    import pandas as pd

    table = pd.DataFrame({"memory_mb": [1024, 2048], "p50_ms": [50, 40], "p99_ms": [90, 60],
                          "mean_ms": [55, 45], "slo_attainment_pct": [90.0, 99.0],
                          "cost_per_1m_requests_usd": [0.2, 0.3]})  # fmt: skip
    legend = plots.memory_sweep(table, slo_target_pct=95).axes[1].get_legend()
    assert "2048 MB" in legend.get_texts()[0].get_text()


def test_model_workload_simulation_and_trial_figures() -> None:
    assert len(plots.digits(np.zeros((3, 28, 28)), ["a", "b", "c"], columns=2).axes) == 4
    history = [{"step": i, "loss": 1 / (i + 1), "accuracy": 0.5} for i in range(5)]
    assert len(plots.training_curve(history).axes) == 2
    assert plots.confusion(np.eye(10, dtype=int) * 9).axes
    assert len(plots.arrivals({"a": np.arange(0, 5, 0.1), "b": np.arange(0, 5, 0.5)}).axes) == 2
    import pandas as pd

    grid = pd.DataFrame({"N": [1, 1, 5, 5], "T_s": [0.1, 0.3, 0.1, 0.3],
                         "slo_attainment_pct": [99, 98, 90, 80],
                         "cost_per_1m_requests_usd": [0.4, 0.4, 0.1, 0.1]})  # fmt: skip
    assert len(plots.nxt_map(grid).axes) == 4  # two maps, two colour bars


def test_trial_colours_follow_the_trial_not_its_place(cells: list[report.Cell]) -> None:
    """The same trial keeps its colour when the window of shown trials moves."""

    def trial(number: int) -> SimpleNamespace:
        result = SimpleNamespace(requests=cells[0].requests)
        return SimpleNamespace(number=number, label=f"#{number}", result=result,
                               figures={"slo_attainment_pct": 50.0, "cost_per_1m_requests_usd": 0.1})  # fmt: skip

    first = plots.trials([trial(1), trial(2), trial(3)])
    later = plots.trials([trial(2), trial(3), trial(4)])
    colour = lambda fig, i: fig.axes[1].patches[i].get_facecolor()  # noqa: E731
    assert colour(first, 1) == colour(later, 0)  # trial 2 in both


def test_save_writes_png_and_svg(tmp_path: Path, cells: list[report.Cell]) -> None:
    saved = plots.save(plots.latency_cdf(cells), tmp_path / "out", "cdf")
    assert [p.suffix for p in saved] == [".png", ".svg"]
    assert all(p.stat().st_size > 0 for p in saved)
    assert isinstance(plots.latency_cdf(cells), Figure)


def test_placement_figures_one_panel_per_workload_modelled_lines_dashed() -> None:
    import dataclasses

    from labkit.experiment import ExperimentConfig
    from labkit.load.workloads import paper_workloads
    from labkit.settings import FunctionSettings
    from labkit.sim.simulate import PlatformProfile
    from labkit.studies import placement

    base = ExperimentConfig(backend="simulated", function=FunctionSettings(concurrency=2))
    modelled = placement.model(PlatformProfile.load("local"), base, paper_workloads(10.0, [10.0]),
                               ["sqs-5-0s", "none"], seeds=1)  # fmt: skip
    live = [dataclasses.replace(modelled[0], config=dataclasses.replace(
        modelled[0].config, backend="local", bundle_dir="b"))]  # fmt: skip
    groups = placement.choose(live, modelled)
    table = placement.compare(groups, live)
    cdfs = plots.placement_cdfs(groups, table)
    assert len(cdfs.axes) == 2
    styles = {line.get_label(): line.get_linestyle() for line in cdfs.axes[0].get_lines()}
    assert styles["SQS: BatchSize 5, window 0"] == "-"  # measured
    assert styles["nowhere: no batching (model)"] == "--"
    assert len(plots.placement_batches(groups).axes) == 2
    costs = plots.placement_costs(table)
    assert len(costs.axes) == 2 and costs.axes[0].get_legend() is not None
    assert plt.get_fignums() == []
