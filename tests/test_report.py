"""Table 1 shape and columns, the claims checklist, plots in a headless backend, the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest

from labkit import report
from labkit.batching import PolicyConfig
from labkit.experiment import ExperimentConfig, _save, _write_json
from labkit.loadgen import LoadResult
from labkit.workloads import WorkloadConfig

matplotlib.use("Agg")


def fake_cell(folder: Path, kind: str, workload: str, wait_ms: float) -> None:
    """A saved cell whose latencies are wait_ms + 5 ms, with one cold start."""
    n = 50
    config = ExperimentConfig(bundle_dir="b", policy=PolicyConfig(kind, 5),
                              workload=WorkloadConfig(workload), name=f"{kind}-{workload}")  # fmt: skip
    folder.mkdir(parents=True)
    _write_json(folder / "config.json", config.as_dict())
    t = np.arange(n) * 0.05
    requests = pd.DataFrame({
        "request_id": range(n), "t_arrive": t, "t_release": t, "batch_id": np.arange(n) // 5,
        "batch_size": 5, "t_dispatch": t, "t_done": t + (wait_ms + 5) / 1000,
        "latency_ms": np.full(n, wait_ms + 5.0), "label": 1, "predicted": 1, "correct": True,
        "cold_start": False, "init_duration_ms": None, "billed_duration_ms": 3, "error": None,
    })  # fmt: skip
    invocations = pd.DataFrame({
        "batch_id": range(n // 5), "batch_size": 5, "t_dispatch": t[::5], "t_start": t[::5],
        "t_done": t[::5] + 0.005, "round_trip_ms": 5.0, "throttles": 0,
        "cold_start": [True] + [False] * (n // 5 - 1),
        "init_duration_ms": [2000.0] + [None] * (n // 5 - 1), "duration_ms": 2.0,
        "billed_duration_ms": [2003] + [3] * (n // 5 - 1), "memory_size_mb": 1024,
        "max_memory_used_mb": 200, "error": None, "aws_request_id": "x",
    })  # fmt: skip
    _save(folder, LoadResult(requests, invocations, True), {"backend": "local"})


@pytest.fixture
def run(tmp_path: Path) -> Path:
    for kind, workload, wait in [("static", "uniform", 150), ("dynamic", "uniform", 100),
                                 ("static", "bursty", 300), ("dynamic", "bursty", 120)]:  # fmt: skip
        fake_cell(tmp_path / f"{kind}-{workload}", kind, workload, wait)
    return tmp_path


def test_table1_has_exactly_the_papers_columns(run: Path) -> None:
    table = report.table1(report.load_run(run))
    assert list(table.columns) == list(report.paper_table1().columns)
    assert len(table) == 4
    row = table.set_index(["batching", "workload"]).loc[("static", "bursty")]
    assert row["mean_ms"] == 305.0 and row["slo_attainment_pct"] == 0.0
    assert row["init_duration_ms"] == 2000.0


def test_comparison_and_claims(run: Path) -> None:
    cells = report.load_run(run)
    comparison = report.comparison(cells)
    assert {"mean_ms_paper", "mean_ms_ours"} <= set(comparison.columns) and len(comparison) == 4
    claims = report.claims(cells).set_index(["workload", "metric"])
    assert claims.loc[("uniform", "mean_ms"), "ours_change"] == pytest.approx(
        (105 - 155) / 155 * 100
    )
    assert bool(claims.loc[("uniform", "mean_ms"), "same_direction"]) is True
    assert claims.loc[("bursty", "slo_attainment_pct"), "ours_change"] == pytest.approx(100.0)


def test_plots_render_headless_and_report_is_written(run: Path) -> None:
    cells = report.load_run(run)
    for fig in (report.plot_latency_cdf(cells), report.plot_latency_over_time(cells[0]),
                report.plot_batch_sizes(cells), report.plot_cold_starts(cells),
                report.plot_cost_breakdown(cells)):  # fmt: skip
        assert fig.axes
    saved = report.save_figure(report.plot_latency_cdf(cells), run / "out", "cdf")
    assert all(p.stat().st_size > 0 for p in saved)
    path = report.write_report(run)
    text = path.read_text()
    assert "## Table 1 (ours)" in text and "paper's claims" in text
    assert (run / "figures" / "latency_cdf.svg").is_file()


def test_resolve_run_explains_when_nothing_ran(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABKIT_RESULTS_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="notebook 04"):
        report.resolve_run()
    with pytest.raises(FileNotFoundError, match="no experiment cells"):
        report.load_run(tmp_path)


def test_experiment_config_round_trips() -> None:
    config = ExperimentConfig(bundle_dir="b", policy=PolicyConfig("dynamic", 5, 0.3))
    again = ExperimentConfig.from_dict(dataclasses.asdict(config))
    assert again == config
    with pytest.raises(ValueError, match="bundle_dir"):
        ExperimentConfig()
