"""Calibrating the simulator on a run and validating it against the same run."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import experiment
from labkit.analysis import plots
from labkit.experiment import ExperimentConfig
from labkit.load.workloads import WorkloadConfig
from labkit.sim import simulate
from labkit.studies import calibrate


def test_a_profile_fitted_on_a_run_reproduces_that_run(tmp_path: Path) -> None:
    """A run made by the model with a known profile: the fit recovers it and validation
    against the run is close (the model validating itself, the lower bound of the error)."""
    base = ExperimentConfig(backend="simulated", profile="paper-aws")
    cells = experiment.paper_matrix(base, [WorkloadConfig("uniform", duration_s=60),
                                           WorkloadConfig("bursty", duration_s=60)])  # fmt: skip
    run = experiment.run_matrix(cells, tmp_path / "run", progress=False)
    truth = simulate.PlatformProfile.load("paper-aws")
    fitted = calibrate.fit_profile_from_run(run)
    assert "fitted from" in fitted.source and fitted.memory_mb == 1024
    assert abs(fitted.base_ms - truth.base_ms) / truth.base_ms < 0.2
    validation = calibrate.validate(run, truth, seeds=1)
    assert set(validation["cell"]) == {c.label for c in cells}
    errors = validation.pivot(index="cell", columns="metric", values="error").abs()
    assert (errors["mean_ms"] < 1e-6).all() and (errors["slo_attainment_pct"] < 1e-6).all()


def test_cross_validation_and_the_rate_sweep_of_a_run(tmp_path: Path) -> None:
    from labkit.load.workloads import paper_workloads

    base = ExperimentConfig(backend="simulated", profile="paper-aws")
    cells = experiment.paper_matrix(base, paper_workloads(60.0, [10.0, 25.0]), baseline=False)
    run = experiment.run_matrix(cells, tmp_path / "run", progress=False)
    held_out = calibrate.cross_validate(run, seeds=1)
    assert set(held_out["fitted_without"]) == {"uniform-10rps", "uniform-25rps", "bursty"}
    means = held_out[held_out["metric"] == "mean_ms"]
    assert (means["error"].abs() < 15).all(), means  # the model, refitted without each
    profile = calibrate.fit_profile_from_run(run)
    sweep, live = calibrate.rate_sweep(run, profile, points=3, duration_s=30.0)
    assert set(sweep["kind"]) == {"uniform", "bursty"} and sweep["rate"].nunique() >= 3
    assert set(live["policy"]) == {"static", "dynamic"} and (live["rate"] > 0).all()
    uniform = sweep[sweep["kind"] == "uniform"]
    assert set(uniform["crossover_rate"].round(6)) == {round(4 / 0.3, 6)}
    assert sweep[sweep["kind"] == "bursty"]["crossover_rate"].isna().all()
    figure = plots.rate_sweep(sweep, live)
    marked = [
        line.get_xdata()[0]
        for ax in figure.axes
        for line in ax.get_lines()
        if line.get_linestyle() == "--"
    ]
    assert marked and all(x == pytest.approx(4 / 0.3) for x in marked)  # the uniform row only
