"""Cells with the platform batching: the ``sqs`` policy checked as AWS checks a mapping, the
mapping's model (labkit.sim.simulate_queue), a queue cell run and saved like any other on the
local Lambda, the model against live queue cells, and a Ctrl-C in the middle of one."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from labkit import metrics, records
from labkit.analysis import report
from labkit.aws import image
from labkit.cli import EXIT_BAD_INPUT, EXIT_INTERRUPTED, main
from labkit.experiment import ExperimentConfig, run_experiment
from labkit.journal import load_cell
from labkit.load.batching import MappingError, MappingSettings, PolicyConfig, QueueBatching
from labkit.load.workloads import WorkloadConfig
from labkit.settings import FunctionSettings
from labkit.sim.simulate import PlatformProfile, SimConfig, peak_concurrency
from labkit.sim.simulate_queue import fit_queue_latencies, simulate_queue
from tests.conftest import needs_mnist, wait_for

# A platform whose every figure is stated: 10 ms per batch, no network, no init.
STILL = PlatformProfile(name="still", base_ms=10.0, per_image_ms=0.0, sigma=0.0, init_ms=[0.0],
                        overhead_ms=[0.0], queue_pickup_ms=[5.0], queue_extra_ms=[0.0],
                        queue_answer_ms=[5.0])  # fmt: skip


# ----------------------------------------------------------------------------- the policy
def test_the_sqs_policy_takes_whole_second_windows_as_aws_does() -> None:
    assert PolicyConfig("sqs", 10, 1).label == "sqs-10-1s"
    assert isinstance(PolicyConfig("sqs", 5, 0).build(), QueueBatching)
    with pytest.raises(MappingError, match="whole seconds"):
        PolicyConfig("sqs", 5, 0.3).build()  # the paper's T cannot be asked of a mapping
    with pytest.raises(MappingError, match="greater than 0 if maximum batch size is greater"):
        MappingSettings(batch_size=20, window_s=0)
    with pytest.raises(MappingError, match="MaximumConcurrency"):
        MappingSettings(batch_size=5, max_concurrency=1)
    with pytest.raises(ValueError, match="pre-warm"):
        ExperimentConfig(policy=PolicyConfig("sqs", 5, 0), backend="simulated", prewarm=True)


def test_the_cli_refuses_a_mapping_aws_would_refuse(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["run", "--policy", "sqs", "--size", "20", "--backend", "simulated"])
    assert code == EXIT_BAD_INPUT
    assert "greater than 0 if maximum batch size is greater than 10" in capsys.readouterr().err


def test_queue_cells_are_named_by_their_mapping() -> None:
    config = ExperimentConfig(policy=PolicyConfig("sqs", 10, 1), backend="simulated",
                              workload=WorkloadConfig("uniform", rate=10, name="u"))  # fmt: skip
    assert config.label == "sqs-10-1s-u"


# ----------------------------------------------------------------------------- the model
def _simulate(arrivals: np.ndarray, mapping: MappingSettings, concurrency: int = 10,
              profile: PlatformProfile = STILL):  # fmt: skip
    return simulate_queue(arrivals, mapping, profile, SimConfig(concurrency=concurrency))


def test_window_0_invokes_with_what_one_poll_returns() -> None:
    result = _simulate(np.arange(0.0, 10.0, 1.0), MappingSettings(10, 0))  # 1/s: idle pollers
    assert (result.invocations["batch_size"] == 1).all()
    # pickup 5 ms + 10 ms service + answer 5 ms, nothing else
    assert np.allclose(result.requests["latency_ms"], 20.0)
    assert list(result.requests.columns) == records.REQUEST_COLUMNS


def test_a_window_gathers_until_full_or_closed() -> None:
    slow = _simulate(np.arange(0.0, 10.0, 0.1), MappingSettings(10, 1), concurrency=1)
    sizes = slow.invocations["batch_size"]
    assert sizes.max() <= 10 and sizes.sum() == 100
    first = slow.requests.sort_values("t_arrive_s").iloc[0]
    assert first["latency_ms"] == pytest.approx(905 + 10 + 5)  # full when the 10th is visible
    sparse = _simulate(np.arange(0.0, 12.0, 0.3), MappingSettings(10, 1), concurrency=1)
    first = sparse.requests.sort_values("t_arrive_s").iloc[0]
    assert first["latency_ms"] == pytest.approx(1005 + 10 + 5)  # the window closed first
    assert (sparse.invocations["batch_size"] == 4).all()  # what 1 s holds at 0.3 s apart
    burst = _simulate(np.arange(0.0, 1.0, 1 / 60), MappingSettings(5, 1), concurrency=1)
    assert (burst.invocations["batch_size"].iloc[:-1] == 5).all()  # full before the window
    assert burst.requests["latency_ms"].max() < 1000.0


def test_pollers_scale_with_the_backlog_and_respect_both_caps() -> None:
    profile = dataclasses.replace(
        STILL, base_ms=400.0, queue_pickup_ms=[0.0], queue_answer_ms=[0.0]
    )
    backlog = np.zeros(200)  # 200 messages at once, 0.4 s each at BatchSize 1
    scaled = _simulate(backlog, MappingSettings(1, 0), concurrency=8, profile=profile)
    assert peak_concurrency(scaled.invocations) == 8  # the function's concurrency
    capped = _simulate(backlog, MappingSettings(1, 0, max_concurrency=3), concurrency=8,
                       profile=profile)  # fmt: skip
    assert peak_concurrency(capped.invocations) == 3
    wide = _simulate(backlog, MappingSettings(1, 0), concurrency=100, profile=profile)
    early = wide.invocations[wide.invocations["t_start_s"] < 1.0]
    assert 5 < peak_concurrency(early) <= 5 + 5  # five to start, one more per 0.2 s


def test_idle_pollers_alike_are_still_retired_one_by_one() -> None:
    """Two idle pollers with the same state are two pollers: retiring one must not remove
    the other (a 60 s bursty cell on the paper's profile once stopped with ValueError)."""
    arrivals = WorkloadConfig("bursty", duration_s=60).arrivals()
    result = simulate_queue(arrivals, MappingSettings(5, 0), PlatformProfile.load("paper-aws"),
                            SimConfig(concurrency=10, seed=0))  # fmt: skip
    assert result.complete and len(result.requests) == len(arrivals)


def test_queue_cells_cost_sqs_requests() -> None:
    config = ExperimentConfig(policy=PolicyConfig("sqs", 5, 0), backend="simulated",
                              workload=WorkloadConfig("uniform", rate=10, duration_s=10))  # fmt: skip
    backend = config.backend_instance()
    from labkit.load.loadgen import LoadConfig, Payloads

    result = backend.run_cell(config.workload.arrivals(), config.policy.build(), Payloads.empty(),
                              LoadConfig(), slo_s=0.2)  # fmt: skip
    traffic = result.facts["sqs"]
    assert traffic["sends"] == 100 and traffic["deletes"] == len(result.invocations)
    summary = metrics.summarize(result.requests, result.invocations,
                                sqs_usd=0.4e-6 * sum(traffic[k] for k in traffic if k != "sends"))  # fmt: skip
    assert summary["sqs_usd"] > 0 and summary["cost_usd"] > summary["compute_usd"]


def test_an_interrupted_cell_s_unknown_cold_start_end_is_read_without_warnings() -> None:
    """A Ctrl-C can leave a cold invocation without an end; the dispatch rule then counts no
    invocation as after the cold starts (the transport floor is 0) and warns nobody."""
    import warnings

    import pandas as pd

    from labkit.load.queue_run import place_dispatch

    invocations = pd.DataFrame({"t_dispatch_s": [0.0, 1.0], "t_start_s": [0.05, 1.04],
                                "t_done_s": [np.nan, 1.06], "cold_start": [True, False]})  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        place_dispatch(invocations, np.array([0.0, 1.0]), MappingSettings(10, 0), concurrency=2)
    # cold: waited, dispatched at readiness (floor 0); warm: began 40 ms after its readiness
    assert invocations["t_dispatch_s"].tolist() == pytest.approx([0.0, 1.0])


def test_live_and_modelled_cells_count_sqs_calls_alike() -> None:
    from labkit.load.queue_run import sqs_calls

    sizes = np.array([1, 10, 12])  # 12 answers take two SendMessageBatch calls
    common = {"receives": 4, "deletes": 3, "answer_receives": 3, "answer_deletes": 3}
    live = sqs_calls(sizes, 45.0, sends=[1_000] * 22 + [70_000], **common)
    modelled = sqs_calls(sizes, 45.0, sends=23, **common)
    assert live["billed_sends"] == 24 and live["send_bytes"] == 92_000  # 70 KB bills twice
    assert modelled["billed_sends"] == 23 and "send_bytes" not in modelled
    for traffic in (live, modelled):
        assert traffic["sends"] == 23 and traffic["answer_sends"] == 1 + 1 + 2
        assert traffic["answer_receives"] == 3 + 2  # two idle 20 s polls in 45 s


# ----------------------------------------------------------------------------- live
@pytest.fixture(scope="module")
def queue_bundle(trained_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return image.build_bundle(trained_model_dir, tmp_path_factory.mktemp("bundle")).path


@pytest.mark.slow
@needs_mnist
def test_a_queue_cell_runs_and_saves_like_any_other(queue_bundle: Path, tmp_path: Path) -> None:
    config = ExperimentConfig(policy=PolicyConfig("sqs", 5, 0), bundle_dir=str(queue_bundle),
                              workload=WorkloadConfig("uniform", rate=10, duration_s=8),
                              function=FunctionSettings(concurrency=2, cpu_share=False))  # fmt: skip
    folder = run_experiment(config, tmp_path / "cell", progress=False)
    (cell,) = report.load_run(folder)
    assert cell.status["status"] == "complete" and cell.batching == "sqs-5-0s"
    requests, invocations = cell.records
    assert requests["error"].isna().all() and requests["correct"].mean() > 0.8
    assert invocations["t_start_s"].notna().all() and invocations["cold_start"].sum() >= 1
    steady = metrics.summarize(requests, invocations, view="steady")
    # cold starts end (8 s of traffic: 4-5 cold starts' time on a loaded 2-core machine)
    assert steady["n"] > 0 and steady["cold_delayed"] < len(requests)
    assert cell.environment["sqs"]["sends"] == 80
    figures = report.summary([cell]).iloc[0]
    assert figures["sqs_usd"] > 0
    assert not (folder / "requests.jsonl").exists()  # the journal gave way to Parquet


@pytest.mark.slow
@needs_mnist
def test_the_mapping_model_predicts_a_live_window_it_was_not_fitted_on(
    queue_bundle: Path, tmp_path: Path
) -> None:
    """Fit the queue's latencies on a window-0 cell, then model a window-1 cell: its
    steady-state mean and SLO attainment come out near the measured ones."""
    from labkit.experiment import run_matrix

    workload = WorkloadConfig("uniform", rate=10, duration_s=8, name="u")
    base = ExperimentConfig(bundle_dir=str(queue_bundle), workload=workload,
                            function=FunctionSettings(concurrency=2, cpu_share=False))  # fmt: skip
    run = run_matrix([dataclasses.replace(base, policy=PolicyConfig("sqs", 5, 0)),
                      dataclasses.replace(base, policy=PolicyConfig("sqs", 10, 1))],
                     tmp_path / "run", progress=False)  # fmt: skip
    window0, window1 = report.load_run(run)
    profile = fit_queue_latencies(
        [(window0.requests, window0.invocations, MappingSettings(5, 0))],
        PlatformProfile.load("local"),
    )
    live = metrics.summarize(*window1.records, view="steady")
    modelled = []
    for seed in range(3):
        result = simulate_queue(workload.arrivals(), MappingSettings(10, 1), profile,
                                SimConfig(concurrency=2, seed=seed))  # fmt: skip
        modelled.append(metrics.summarize(result.requests, result.invocations, view="steady"))
    mean = float(np.median([m["mean_ms"] for m in modelled]))
    slo = float(np.median([m["slo_attainment_pct"] for m in modelled]))
    assert abs(mean - live["mean_ms"]) / live["mean_ms"] < 0.35, (mean, live["mean_ms"])
    assert abs(slo - live["slo_attainment_pct"]) < 20, (slo, live["slo_attainment_pct"])


@pytest.mark.slow
@needs_mnist
def test_ctrl_c_in_a_queue_cell_keeps_what_was_answered(queue_bundle: Path, tmp_path: Path) -> None:
    cell = tmp_path / "cell"
    command = [sys.executable, "-m", "labkit.cli", "run", "--bundle", str(queue_bundle),
               "--policy", "sqs", "--size", "5", "--rate", "10", "--duration-s", "30",
               "--concurrency", "2", "--network", "same-region", "--out", str(cell)]  # fmt: skip
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True,
                           env={**os.environ, "LABKIT_RESULTS_DIR": str(tmp_path)})  # fmt: skip
    journal = cell / "requests.jsonl"
    wait_for(lambda: journal.is_file() and journal.read_text().count("\n") >= 20, timeout_s=120,
             what="20 answers journalled")  # fmt: skip
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == EXIT_INTERRUPTED, err
    saved = load_cell(cell)
    assert saved.status["status"] == "incomplete"
    assert saved.status["stopped_by"] == "KeyboardInterrupt"
    assert len(saved.requests) == 300  # one record per scheduled request
    assert saved.requests["error"].isna().sum() >= 20
    # never sent: NotSent; sent and not answered when Ctrl-C came: NoAnswer (whether any was
    # in flight at that instant depends on the machine's load, so only NotSent is certain)
    errors = set(saved.requests["error"].dropna())
    assert "NotSent" in errors and errors <= {"NoAnswer", "NotSent"}, errors
