"""Saved cells with known figures, for the tests of everything that reads records."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from labkit import journal, records
from labkit.experiment import ExperimentConfig
from labkit.load.batching import PolicyConfig
from labkit.load.workloads import WorkloadConfig


def fake_cell(folder: Path, kind: str, workload: str, wait_ms: float, n: int = 50, *,
              repetition: int = 0, status: str = "complete", spread_ms: float = 0.0) -> Path:  # fmt: skip
    """A saved cell of ``n`` requests whose latencies are ``wait_ms + 5`` ms (plus, with
    ``spread_ms``, a ramp from 0 to ``spread_ms`` over the requests), in batches of 5, with
    one cold start (Init Duration 2,000 ms) on the first invocation."""
    config = ExperimentConfig(bundle_dir="b", policy=PolicyConfig(kind, 5),
                              workload=WorkloadConfig(workload), name=folder.name,
                              repetition=repetition)  # fmt: skip
    folder.mkdir(parents=True)
    records.write_json(folder / records.CONFIG_FILE, config.as_dict())
    t = np.arange(n) * 0.05
    done = t + (wait_ms + 5) / 1000
    requests = records.requests_from_columns({
        "request_id": range(n), "t_arrive_s": t, "t_release_s": t, "batch_id": np.arange(n) // 5,
        "batch_size": np.full(n, 5.0), "t_dispatch_s": t, "t_done_s": done,
        "latency_ms": wait_ms + 5.0 + np.linspace(0.0, spread_ms, n), "label": np.ones(n, int), "predicted": np.ones(n),
        "correct": np.ones(n, bool), "cold_start": np.zeros(n, bool),
        "init_duration_ms": np.full(n, np.nan), "billed_duration_ms": np.full(n, 3.0),
        "error": [None] * n,
    })  # fmt: skip
    b = n // 5
    invocations = records.invocations_from_columns({
        "batch_id": range(b), "batch_size": np.full(b, 5), "t_dispatch_s": t[::5],
        "t_start_s": t[::5], "t_done_s": t[::5] + 0.005, "round_trip_ms": np.full(b, 5.0),
        "throttles": np.zeros(b, int), "cold_start": [True] + [False] * (b - 1),
        "init_duration_ms": [2000.0] + [np.nan] * (b - 1), "duration_ms": np.full(b, 2.0),
        "billed_duration_ms": [2003.0] + [3.0] * (b - 1), "memory_size_mb": np.full(b, 1024.0),
        "max_memory_used_mb": np.full(b, 200.0), "error": [None] * b, "aws_request_id": ["x"] * b,
    })  # fmt: skip
    journal.save_cell(folder, requests, invocations, {"backend": "local"},
                      {"status": status, "wall_s": float(t[-1]), "requests": n})  # fmt: skip
    return folder


def paper_run(root: Path, repetitions: int = 3) -> Path:
    """A run of the paper's 2x2 with fixed waits, ``repetitions`` times: static slower than
    dynamic on both workloads (uniform 150 vs 100 ms, bursty 300 vs 120 ms), repetition
    ``r`` of each a little slower than the one before (4 ms per repetition for static,
    3 ms for dynamic), so the repetitions' changes spread."""
    for r in range(repetitions):
        for kind, workload, wait in [("static", "uniform", 150), ("dynamic", "uniform", 100),
                                     ("static", "bursty", 300), ("dynamic", "bursty", 120)]:  # fmt: skip
            suffix = f"-r{r + 1}" if repetitions > 1 else ""
            step = 4 if kind == "static" else 3
            fake_cell(root / f"{kind}-{workload}{suffix}", kind, workload, wait + step * r,
                      repetition=r)  # fmt: skip
    return root


def handler_bundle(folder: Path, handler: str = "fault_handlers.mnist_like") -> Path:
    """A bundle folder serving one of the test handlers (``tests/handlers``) instead of the
    MNIST model: what the local backend needs, without training anything."""
    import json
    import shutil

    shutil.copytree(
        Path(__file__).parent / "handlers", folder, ignore=shutil.ignore_patterns("__pycache__")
    )
    manifest = {"handler": handler, "variant": "test", "model": {"name": "test", "version": "0"},
                "files": []}  # fmt: skip
    (folder / "bundle.json").write_text(json.dumps(manifest))
    return folder
