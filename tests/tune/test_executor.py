"""Where a search runs: the LocalCluster it starts leaves the simulation the GIL, and Ctrl-C
to the process that started it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil

from labkit.cli import EXIT_INTERRUPTED
from labkit.tune.executor import Cluster, run_all
from tests.conftest import wait_for


def worker_settings(_: int) -> tuple[bool, str]:
    import dask

    return (dask.config.get("distributed.worker.profile.enabled"),
            dask.config.get("distributed.admin.tick.interval"))  # fmt: skip


def test_the_local_clusters_workers_do_not_profile_their_tasks() -> None:
    """The statistical profiler samples a task's stack 100 times a second, for a dashboard
    a search never shows; the search's workers run without it, and the caller's own Dask
    settings are left as they were."""
    import dask

    found: list[tuple[bool, str]] = []
    facts = run_all(worker_settings, [0, 1], Cluster(workers=2), lambda _, r: found.append(r))
    assert facts["workers"] == 2
    assert found == [(False, "1s"), (False, "1s")]
    assert dask.config.get("distributed.worker.profile.enabled") is True


def test_ctrl_c_stops_a_search_on_two_workers_without_their_tracebacks(tmp_path: Path) -> None:
    """As from a terminal: SIGINT to the command's whole process group. The command says
    what it kept and how to resume, and exits 130; its workers, which the terminal reached
    too, leave the stopping to it and log nothing of their end (before, each printed a
    KeyboardInterrupt traceback, and under load one more of a scheduler gone); none is left."""
    out = tmp_path / "search"
    command = [sys.executable, "-m", "labkit.cli", "tune", "--space", "small", "--requests",
               "50000", "--workers", "2", "--replications", "0", "--quiet", "--out", str(out)]  # fmt: skip
    run = subprocess.Popen(command, start_new_session=True, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    wait_for(lambda: any(out.glob("configs/*/*.parquet")), timeout_s=120,
             what="the first finished task")  # fmt: skip
    workers = psutil.Process(run.pid).children(recursive=True)
    os.killpg(run.pid, signal.SIGINT)
    _, err = run.communicate(timeout=120)
    assert run.returncode == EXIT_INTERRUPTED, err
    assert "Traceback" not in err and "distributed.worker" not in err, err  # nothing of theirs
    assert f"configurations kept in {out}; the same command resumes the search" in err
    psutil.wait_procs(workers, timeout=30)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE]
