"""Table 1 shape and columns, the claims checklist, plots in a headless backend, the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from labkit.analysis import report
from labkit.experiment import ExperimentConfig
from labkit.load.batching import PolicyConfig
from tests.cells import paper_run


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return paper_run(tmp_path, repetitions=1)


def test_table1_pools_repetitions_and_keeps_cold_starts_apart(run: Path) -> None:
    table = report.table1(report.load_run(run)).set_index(["batching", "workload"])
    assert len(table) == 4
    row = table.loc[("static", "bursty")]
    assert row["mean_ms"] == 305.0 and row["slo_attainment_pct"] == 0.0
    assert row["n_steady"] == 45  # the first batch of 5 waited for the cold start
    assert row["cold_starts"] == 1 and row["init_per_cold_start_ms"] == 2000.0
    assert row["cold_delayed_pct"] == pytest.approx(10.0)
    assert row["repetitions"] == 1 and row["paper_workload"] == "bursty"


def test_comparison_puts_each_of_our_workloads_beside_the_papers_row(run: Path) -> None:
    comparison = report.comparison(report.load_run(run)).set_index(["batching", "workload"])
    assert len(comparison) == 4
    row = comparison.loc[("dynamic", "uniform")]
    assert row["mean_ms_paper"] == 133.0 and row["mean_ms_ours"] == 105.0
    assert row["init_duration_ms_ours"] == 2000.0


@pytest.mark.parametrize(("value", "text"), [(0.0000647, "0.0000647"), (0.153312, "0.153"),
                                             (18.7411, "18.74"), (0.0, "0"), (float("nan"), "-"),
                                             (0.000679, "0.000679")])  # fmt: skip
def test_costs_print_with_three_significant_digits(value: float, text: str) -> None:
    assert report.format_usd(value) == text


def test_costs_split_into_their_parts(run: Path) -> None:
    costs = report.costs(report.load_run(run)).set_index(["batching", "workload"])
    row = costs.loc[("static", "uniform")]
    parts = [
        "requests_usd_per_1m",
        "warm_compute_usd_per_1m",
        "init_usd_per_1m",
        "provisioned_usd_per_1m",
    ]
    assert sum(row[p] for p in parts) == pytest.approx(row["total_usd_per_1m"])
    assert row["invocations_per_1m"] == pytest.approx(200_000)  # batches of 5


def test_the_report_is_written_with_its_figures_and_definitions(run: Path) -> None:
    path = report.write_report(run, n_boot=100)
    text = path.read_text()
    assert "## Table 1 (ours)" in text and "paper's claims" in text and "## Definitions" in text
    assert "Steady state" in text and "reproduced" in text
    for name in ("latency_cdf", "latency_over_time", "cost_breakdown", "claims"):
        assert (run / "figures" / f"{name}.svg").is_file()
        assert f"figures/{name}.png" in text
    assert "0.00 " not in text  # costs never rounded away


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


def test_figures_with_a_panel_per_cell_show_one_repetition_of_each_setting() -> None:
    from labkit.experiment import paper_matrix
    from labkit.load.workloads import WorkloadConfig

    base = ExperimentConfig(backend="simulated")
    configs = paper_matrix(base, [WorkloadConfig("uniform", rate=10.0), WorkloadConfig("bursty")],
                           baseline=False, repetitions=3)  # fmt: skip
    bigger = dataclasses.replace(configs[0], name="static-uniform-3008mb",
                                 function=dataclasses.replace(configs[0].function, memory_mb=3008))  # fmt: skip
    cells = [report.Cell(c.label, c, {}, None, None, {}) for c in [*configs, bigger]]  # type: ignore[arg-type]
    shown = report.one_per_setting(cells)
    assert [c.name for c in shown] == ["static-uniform-r1", "dynamic-uniform-r1", "static-bursty-r1",
                                       "dynamic-bursty-r1", "static-uniform-3008mb"]  # fmt: skip


@pytest.mark.filterwarnings("error")  # a run with one policy has no pair to pool Inits over
def test_the_report_says_when_its_figures_show_one_repetition(tmp_path: Path) -> None:
    from tests.cells import fake_cell

    for rep in (1, 2):  # the same setting twice
        fake_cell(tmp_path / f"static-uniform-r{rep}", "static", "uniform", 150)
    text = report.write_report(tmp_path, n_boot=100).read_text()
    assert "first repetition of each setting (1 of 2 cells)" in text
