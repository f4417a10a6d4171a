"""Table 1 shape and columns, the claims checklist, plots in a headless backend, the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from labkit import report
from labkit.batching import PolicyConfig
from labkit.experiment import ExperimentConfig
from tests.cells import paper_run


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return paper_run(tmp_path)


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


def test_the_report_is_written_with_its_figures(run: Path) -> None:
    path = report.write_report(run)
    text = path.read_text()
    assert "## Table 1 (ours)" in text and "paper's claims" in text
    for name in ("latency_cdf", "latency_over_time", "cost_breakdown"):
        assert (run / "figures" / f"{name}.svg").is_file()
        assert f"figures/{name}.png" in text


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
