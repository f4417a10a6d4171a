"""Experiment cells and matrices: configuration checked up front, one folder per cell with
its records, facts and status, never overwritten; every backend through one path."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from labkit import experiment, records
from labkit.analysis import report
from labkit.experiment import ExperimentConfig
from labkit.load.batching import PolicyConfig
from labkit.load.workloads import WorkloadConfig
from labkit.settings import FunctionSettings
from tests.cells import handler_bundle

SHORT = WorkloadConfig("uniform", rate=20, duration_s=5)


def simulated(**changes: object) -> ExperimentConfig:
    return ExperimentConfig(**({"backend": "simulated", "profile": "paper-aws",
                                "workload": SHORT} | changes))  # type: ignore[arg-type]  # fmt: skip


def test_the_saved_configuration_holds_the_concurrency_that_ran() -> None:
    assert simulated().function.concurrency == 10
    assert ExperimentConfig(backend="aws").function.concurrency == 10
    assert (
        ExperimentConfig(
            backend="aws", function=FunctionSettings(concurrency=3)
        ).function.concurrency
        == 3
    )


def test_configuration_is_checked_before_anything_runs() -> None:
    with pytest.raises(ValueError, match="bundle_dir"):
        ExperimentConfig()
    with pytest.raises(ValueError, match="backend must be one of"):
        ExperimentConfig(backend="docker")
    with pytest.raises(ValueError, match="slo_ms"):
        simulated(slo_ms=0)
    with pytest.raises(ValueError, match="pre-warm"):
        simulated(prewarm=True)


def test_configuration_round_trips_through_its_file() -> None:
    config = ExperimentConfig(bundle_dir="b", policy=PolicyConfig("dynamic", 5, 0.3),
                              function=FunctionSettings(memory_mb=2048, provisioned=1))  # fmt: skip
    assert ExperimentConfig.from_dict(json.loads(json.dumps(config.as_dict()))) == config


def test_a_cell_writes_every_file_and_never_overwrites(tmp_path: Path) -> None:
    folder = experiment.run_experiment(simulated(), tmp_path / "cell", progress=False)
    for name in (records.CONFIG_FILE, records.ENVIRONMENT_FILE, records.STATUS_FILE,
                 records.REQUESTS_FILE, records.INVOCATIONS_FILE):  # fmt: skip
        assert (folder / name).is_file(), name
    cell = report.load_cell(folder)
    assert cell.status["status"] == "complete" and cell.status["requests"] == 100
    assert cell.environment["backend"] == "simulated" and cell.environment["profile"] == "paper-aws"
    assert cell.environment["cpu_latency"] == "not asked for"
    with pytest.raises(FileExistsError, match="never overwritten"):
        experiment.run_experiment(simulated(), folder, progress=False)


def test_a_matrix_runs_its_cells_in_order_into_one_folder(tmp_path: Path) -> None:
    bursty = WorkloadConfig("bursty", duration_s=5)
    cells = experiment.paper_matrix(simulated(), [SHORT, bursty])
    assert [c.label for c in cells] == ["none-uniform", "static-uniform", "dynamic-uniform",
                                        "none-bursty", "static-bursty", "dynamic-bursty"]  # fmt: skip
    run = experiment.run_matrix(cells, tmp_path / "run", progress=False)
    assert json.loads((run / records.MATRIX_FILE).read_text())["status"] == "complete"
    assert [c.name for c in report.load_run(run)] == [c.label for c in cells]
    with pytest.raises(ValueError, match="unique"):
        experiment.run_matrix([cells[0], cells[0]], tmp_path / "again", progress=False)


def test_variants_and_memory_sweeps_name_their_cells(tmp_path: Path) -> None:
    base = simulated(policy=PolicyConfig("dynamic", 5, 0.3))
    v = experiment.variant(base, "slo-aware + provisioned", policy=PolicyConfig("slo-aware", 16),
                           provisioned=1)  # fmt: skip
    assert v.name == "slo-aware + provisioned" and v.function.provisioned == 1
    assert v.policy.kind == "slo-aware" and base.function.provisioned == 0
    run = experiment.memory_sweep(base, [1024, 2048], tmp_path / "sweep", progress=False)
    assert [c.config.function.memory_mb for c in report.load_run(run)] == [1024, 2048]
    with pytest.raises(ValueError, match="128-10240"):
        experiment.memory_sweep(base, [64])


@pytest.mark.slow
def test_a_local_cell_records_what_its_function_answered(tmp_path: Path) -> None:
    from labkit.load.loadgen import Payloads

    config = ExperimentConfig(bundle_dir=str(handler_bundle(tmp_path / "b")), workload=SHORT,
                              policy=PolicyConfig("static", 5),
                              function=FunctionSettings(cpu_share=False))  # fmt: skip
    payloads = Payloads([{"id": "x", "image_b64": "AA=="}], [0])
    folder = experiment.run_experiment(config, tmp_path / "cell", payloads=payloads,
                                       progress=False)  # fmt: skip
    cell = report.load_cell(folder)
    assert cell.environment["backend"] == "local" and "local_lambda" in cell.environment
    failed = cell.requests[cell.requests["error"].notna()]
    assert set(failed["error"]) == {"ValueError"}  # batches holding an id ending in 3
    assert cell.requests.loc[cell.requests["error"].isna(), "correct"].all()
    assert dataclasses.asdict(cell.config) == dataclasses.asdict(config)


def test_each_workload_and_repetition_draws_its_own_stream_the_policies_share() -> None:
    from labkit.experiment import ExperimentConfig, paper_matrix
    from labkit.load.workloads import WorkloadConfig

    workloads = [WorkloadConfig("bursty"), WorkloadConfig("poisson", rate=30, name="poisson")]
    cells = paper_matrix(ExperimentConfig(bundle_dir="b"), workloads, repetitions=3)
    seeds = {(c.workload.label, c.repetition, c.policy.kind): (c.workload.seed, c.sim_seed)
             for c in cells}  # fmt: skip
    for key in seeds:  # static and dynamic of one repetition: the same arrivals and noise
        assert seeds[key] == seeds[(key[0], key[1], "static")]
    distinct = {seeds[(w.label, r, "static")] for w in workloads for r in range(3)}
    assert len(distinct) == 6  # no two workloads or repetitions replay one stream
    assert (WorkloadConfig("bursty", seed=cells[0].workload.seed).arrivals()
            == cells[0].workload.arrivals()).all()  # fmt: skip
