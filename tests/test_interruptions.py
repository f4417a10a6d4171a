"""Nothing lost, nothing silent: real `labkit run` processes interrupted from a terminal,
terminated, killed, or left without their local Lambda; runs whose requests all fail; AWS
configuration the local backend does not need."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from labkit import records
from labkit.analysis import report
from labkit.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED
from labkit.journal import load_cell
from tests.cells import handler_bundle
from tests.conftest import needs_mnist, wait_for

pytestmark = pytest.mark.slow


def start_run(tmp_path: Path, handler: str, *extra: str, rate: float = 20,
              duration_s: float = 8, env: dict | None = None) -> subprocess.Popen:  # fmt: skip
    """`labkit run` on a test handler's bundle, in its own session (as a terminal's job)."""
    bundle = handler_bundle(tmp_path / "bundle", handler=handler)
    command = [sys.executable, "-m", "labkit.cli", "run", "--bundle", str(bundle), "--policy", "none",
               "--rate", str(rate), "--duration-s", str(duration_s), "--concurrency", "2",
               "--out", str(tmp_path / "cell"), *extra]  # fmt: skip
    return subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "LABKIT_RESULTS_DIR": str(tmp_path), **(env or {})})  # fmt: skip


def journalled(cell: Path, at_least: int) -> bool:
    path = cell / "requests.jsonl"
    return path.is_file() and path.read_text().count("\n") >= at_least


def finish(run: subprocess.Popen, timeout_s: float = 120) -> tuple[int, str]:
    _, err = run.communicate(timeout=timeout_s)
    return run.returncode, err


def instances_of(run: subprocess.Popen) -> list[psutil.Process]:
    """The function instances (runtime client processes) under a run."""
    try:
        tree = psutil.Process(run.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    clients = ("awslambdaric", "runtime_client.py")  # the official client or labkit's

    def command(process: psutil.Process) -> str:
        try:
            return " ".join(process.cmdline())
        except psutil.Error:  # ended (or a zombie) since the listing
            return ""

    return [p for p in tree if any(c in command(p) for c in clients)]


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_ctrl_c_during_cold_starts_keeps_the_cell(tmp_path: Path) -> None:
    """The terminal's SIGINT reaches the whole process group while instances still load
    (slow_init: 1 s); the local Lambda is in its own session, so the run drains, saves the
    cell marked incomplete, then stops the service."""
    run = start_run(tmp_path, "slow_init.handler")
    cell = tmp_path / "cell"
    wait_for(lambda: bool(instances_of(run)), timeout_s=60, what="the first cold start")
    time.sleep(0.3)  # inside it (its init takes 1 s)
    os.killpg(run.pid, signal.SIGINT)
    code, err = finish(run)
    assert code == EXIT_INTERRUPTED, err
    assert f"interrupted: records kept, marked incomplete, in {cell}" in err  # where to look
    saved = load_cell(cell)
    assert (
        saved.status["status"] == "incomplete" and saved.status["stopped_by"] == "KeyboardInterrupt"
    )
    assert len(saved.requests) == 160  # one record per arrival: answered, or NotSent/Abandoned
    assert set(saved.requests["error"].dropna()) <= {"NotSent", "Abandoned"}
    assert saved.requests["error"].isna().any()  # the batches in flight were drained, answered
    assert not (cell / "requests.jsonl").exists()  # compacted into Parquet


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_sigterm_saves_what_was_measured(tmp_path: Path) -> None:
    run = start_run(tmp_path, "fault_handlers.echo_batch")
    cell = tmp_path / "cell"
    wait_for(lambda: journalled(cell, 40), timeout_s=60, what="40 answered requests")
    run.send_signal(signal.SIGTERM)
    code, err = finish(run)
    assert code == EXIT_TERMINATED, err
    assert f"terminated (SIGTERM): records kept, marked incomplete, in {cell}" in err
    saved = load_cell(cell)
    assert saved.status["stopped_by"] == "SIGTERM" and saved.status["status"] == "incomplete"
    answered = saved.requests["error"].isna().sum()
    assert answered >= 40 and len(saved.requests) == 160


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_sigkill_keeps_the_journal_and_the_cell_reads_as_incomplete(tmp_path: Path) -> None:
    run = start_run(tmp_path, "fault_handlers.echo_batch")
    cell = tmp_path / "cell"
    wait_for(lambda: journalled(cell, 40), timeout_s=60, what="40 answered requests")
    run.kill()
    finish(run)
    saved = load_cell(cell)
    assert saved.status["status"] == "incomplete" and "journal" in saved.status["stopped_by"]
    assert saved.requests["error"].isna().sum() >= 40
    assert (saved.requests["request_id"].diff().dropna() > 0).all()
    cells = report.load_run(cell)
    assert len(cells) == 1 and cells[0].records[0].shape[0] >= 40  # the analysis reads it
    wait_for(lambda: not [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"]
                          and str(cell) in " ".join(p.info["cmdline"])], timeout_s=30,
             what="the killed run's local Lambda to go")  # fmt: skip


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_a_local_lambda_that_dies_mid_run_becomes_errors_not_lost_records(tmp_path: Path) -> None:
    run = start_run(tmp_path, "fault_handlers.echo_batch")
    cell = tmp_path / "cell"
    wait_for(lambda: journalled(cell, 40), timeout_s=60, what="40 answered requests")
    emulator = [
        p for p in psutil.Process(run.pid).children() if "labkit.emulator" in " ".join(p.cmdline())
    ]
    assert len(emulator) == 1
    emulator[0].kill()
    code, err = finish(run)
    assert code == EXIT_FAILED and "failed" in err, err
    saved = load_cell(cell)
    assert saved.status["status"] == "failed" and len(saved.requests) == 160
    assert saved.requests["error"].isna().sum() >= 40  # the answers before the crash are kept
    assert "local_lambda" in saved.environment  # recorded as unavailable, not a traceback


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_a_bundle_whose_model_does_not_load_fails_the_run(tmp_path: Path) -> None:
    run = start_run(tmp_path, "init_fails.handler", duration_s=2)
    code, err = finish(run)
    assert code == EXIT_FAILED, err
    assert "RuntimeError" in err and "Traceback" not in err
    saved = load_cell(tmp_path / "cell")
    assert saved.status["status"] == "failed" and "RuntimeError" in saved.status["why"]


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_the_local_backend_ignores_aws_configuration(tmp_path: Path) -> None:
    run = start_run(tmp_path, "fault_handlers.echo_batch", duration_s=1,
                    env={"AWS_PROFILE": "no-such-profile", "AWS_CONFIG_FILE": str(tmp_path / "nope"),
                         "AWS_DEFAULT_REGION": "mars-1"})  # fmt: skip
    code, err = finish(run)
    assert code == EXIT_OK, err
    assert load_cell(tmp_path / "cell").status["status"] == "complete"


def test_aws_without_credentials_stops_before_sending(tmp_path: Path) -> None:
    # no MNIST files either: the credentials are checked before the digits are loaded
    env = {"AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"), "AWS_CONFIG_FILE": str(tmp_path / "none"),
           "AWS_DEFAULT_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
           "LABKIT_MNIST_ROOT": str(tmp_path / "no-mnist")}  # fmt: skip
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")} | env
    command = [sys.executable, "-m", "labkit.cli", "run", "--backend", "aws", "--duration-s", "1",
               "--rate", "4", "--out", str(tmp_path / "cell")]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=clean, timeout=120)
    assert done.returncode == EXIT_FAILED, done.stderr
    assert "credentials" in done.stderr and "Traceback" not in done.stderr


def test_a_matrix_says_which_cells_finished(tmp_path: Path) -> None:
    from labkit import experiment
    from labkit.experiment import ExperimentConfig
    from labkit.load.workloads import WorkloadConfig

    config = ExperimentConfig(backend="simulated", workload=WorkloadConfig(duration_s=5.0))
    run = experiment.run_matrix([config], tmp_path / "m", progress=False)
    matrix = json.loads((run / records.MATRIX_FILE).read_text())
    assert matrix["status"] == "complete" and matrix["finished"] == [config.label]


@needs_mnist  # real digits: skipped, saying why, where MNIST is absent
def test_ctrl_c_during_a_lab_run_reaches_the_kernel_which_saves_its_cell(tmp_path: Path) -> None:
    """The terminal's Ctrl-C reaches `labkit lab run` (kernels have their own session); the
    runner passes it on, the notebook's experiment saves its cell, and no cell follows."""
    bundle = handler_bundle(tmp_path / "bundle", handler="fault_handlers.echo_batch")
    command = [sys.executable, "-m", "labkit.cli", "lab", "run", "--preset", "quick", "--only", "04",
               "--set", f"04_run_workloads.bundle_dir={bundle}", "--set", "04_run_workloads.duration_s=30",
               "--set", "04_run_workloads.network=null"]  # fmt: skip
    env = {**os.environ, "LABKIT_RESULTS_DIR": str(tmp_path / "results")}
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
    lab_runs = tmp_path / "results" / "lab"
    wait_for(lambda: any(lab_runs.glob("*/experiments/*/requests.jsonl")), timeout_s=180,
             what="the first cell to record")  # fmt: skip
    journal = next(lab_runs.glob("*/experiments/*/requests.jsonl"))
    wait_for(lambda: journalled(journal.parent, 20), timeout_s=60, what="20 answered requests")
    os.killpg(run.pid, signal.SIGINT)
    code, err = finish(run, timeout_s=180)
    assert code == EXIT_INTERRUPTED, err
    lab_run = journal.parents[2]
    assert json.loads((lab_run / "lab.json").read_text())["status"] == "interrupted"
    assert f"interrupted: the run so far is kept, marked interrupted, in {lab_run}" in err
    saved = load_cell(journal.parent)
    assert saved.status["stopped_by"] == "KeyboardInterrupt"  # saved by the kernel, not killed
    assert saved.requests["error"].isna().sum() >= 20
    matrix = json.loads((journal.parents[1] / records.MATRIX_FILE).read_text())
    assert matrix["status"] == "interrupted" and matrix["finished"] == []
