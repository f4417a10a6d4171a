"""Experiments: one (workload, policy, backend) cell, or a matrix of them, run and saved.

Each cell gets its own folder (DESIGN.md "Results on disk"), never overwritten:

    <run>/<cell>/config.json       the full configuration
    <run>/<cell>/environment.json  versions, CPU, backend facts
    <run>/<cell>/requests.parquet  one row per request
    <run>/<cell>/invocations.parquet  one row per invocation
    <run>/<cell>/status.json       complete | incomplete, why, wall time

On the local backend every cell starts a fresh embedded local Lambda, so each cell pays its
own cold starts, as a newly deployed function on AWS would.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labkit import paths
from labkit.batching import PolicyConfig
from labkit.emulator.cpu_latency import check_limit, hold_cpu_latency
from labkit.loadgen import LoadConfig, LoadResult, Payloads, run_load
from labkit.prewarm import PredictivePrewarm, PrewarmConfig
from labkit.workloads import WorkloadConfig

PAPER_SLO_MS = 200.0


@dataclass(frozen=True)
class FunctionSettings:
    """The function under test (the paper's: 1,024 MB, 60 s)."""

    name: str = "mnist"
    memory_mb: int = 1024
    timeout_s: float = 60.0
    concurrency: int = 2  # local: more instances than cores only share the cores (see README)
    keep_alive_s: float = 300.0
    provisioned: int = 0
    cpu_share: bool = True  # local: Lambda's CPU share per memory size, where cgroups allow


@dataclass(frozen=True)
class ExperimentConfig:
    """One cell: what arrives, how it is batched, where it runs."""

    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    function: FunctionSettings = field(default_factory=FunctionSettings)
    backend: str = "local"  # "local" (embedded local Lambda) or "aws" (deployed function)
    bundle_dir: str | None = None  # local: the function bundle
    region: str | None = None  # aws
    slo_ms: float = PAPER_SLO_MS
    n_images: int = 1000  # distinct test images the requests cycle through
    data_root: str | None = None
    name: str | None = None  # the cell's folder name; default "<policy>-<workload>"
    prewarm: bool = False  # predictive pre-warm (labkit.prewarm) with warm-up invocations
    cpu_latency_us: int | None = None  # hold idle CPUs' wake-up latency while measuring (root)

    def __post_init__(self) -> None:
        if self.backend not in ("local", "aws"):
            raise ValueError(f"backend must be 'local' or 'aws', not {self.backend!r}")
        if self.backend == "local" and not self.bundle_dir:
            raise ValueError("the local backend needs bundle_dir (see `labkit bundle`)")
        if self.slo_ms <= 0:
            raise ValueError(f"slo_ms must be > 0, not {self.slo_ms}")
        check_limit(self.cpu_latency_us)

    @property
    def label(self) -> str:
        return self.name or f"{self.policy.kind}-{self.workload.label}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        data = dict(data)
        return cls(
            workload=WorkloadConfig(**data.pop("workload", {})),
            policy=PolicyConfig(**data.pop("policy", {})),
            function=FunctionSettings(**data.pop("function", {})),
            **data,
        )


def paper_matrix(
    base: ExperimentConfig,
    uniform: WorkloadConfig,
    bursty: WorkloadConfig,
    static_size: int = 5,
    dynamic_size: int = 5,
    timeout_s: float = 0.3,
    baseline: bool = True,
) -> list[ExperimentConfig]:
    """The paper's 2x2 (static/dynamic x uniform/bursty), plus the no-batching baseline."""
    policies = [
        PolicyConfig("static", static_size),
        PolicyConfig("dynamic", dynamic_size, timeout_s),
    ]
    if baseline:
        policies.insert(0, PolicyConfig("none", 1))
    return [
        dataclasses.replace(base, workload=w, policy=p, name=f"{p.kind}-{w.kind}")
        for w in (uniform, bursty)
        for p in policies
    ]


def environment_facts(config: ExperimentConfig) -> dict[str, Any]:
    """Versions and machine facts saved beside the records."""
    import numpy
    import pandas

    import labkit

    facts: dict[str, Any] = {
        "labkit": labkit.__version__, "python": platform.python_version(),
        "numpy": numpy.__version__, "pandas": pandas.__version__,
        "platform": platform.platform(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(), "backend": config.backend,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    try:
        import torch

        facts["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    if config.backend == "local":
        from labkit.emulator.cpu_share import cpu_fraction, detect

        support = detect()
        if config.function.cpu_share and support.available:
            facts["cpu_share"] = (f"{cpu_fraction(config.function.memory_mb):.3f} vCPU per instance "
                                  f"({support.reason})")  # fmt: skip
        else:
            why = "not asked for" if not config.function.cpu_share else support.reason
            facts["cpu_share"] = f"none ({why}): instances may use whole cores"
    return facts


def run_experiment(
    config: ExperimentConfig,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    payloads: Payloads | None = None,
    progress: bool = True,
) -> Path:
    """Run one cell and save it; returns its folder. A Ctrl-C keeps what was recorded
    (status ``incomplete``) and is raised again once the files are written."""
    folder = Path(out_dir) if out_dir else paths.new_run_dir("experiments", config.label)
    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "requests.parquet").exists():
        raise FileExistsError(f"{folder} already holds a run; results are never overwritten")
    payloads = payloads or _default_payloads(config)
    arrivals = config.workload.arrivals()
    if len(arrivals) == 0:
        raise ValueError(f"workload {config.workload} produced no requests")
    _write_json(folder / "config.json", config.as_dict())
    facts = environment_facts(config)
    load = LoadConfig(config.function.name, max_in_flight=config.function.concurrency,
                      progress=progress)  # fmt: skip
    # Held by this process, so on either backend: the load generator's own wake-ups count too.
    hold = hold_cpu_latency(config.cpu_latency_us)
    facts["cpu_latency"] = hold.status
    if hold.refused:
        warnings.warn(f"CPU wake-up latency {hold.status}: measuring without it",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
    try:
        result = _run_on_backend(config, arrivals, payloads, load, facts)
    finally:
        hold.release()
    _save(folder, result, facts)
    if result.stopped_by == "KeyboardInterrupt":
        raise KeyboardInterrupt
    if result.stopped_by:
        raise RuntimeError(f"the run stopped early ({result.stopped_by}); its records are kept, "
                           f"marked incomplete, in {folder}")  # fmt: skip
    return folder


def run_matrix(
    configs: list[ExperimentConfig],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    label: str = "matrix",
    progress: bool = True,
) -> Path:
    """Run cells one after another into ``<run>/<cell>/``; returns the run folder."""
    labels = [c.label for c in configs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"cell names must be unique: {labels}")
    run = Path(out_dir) if out_dir else paths.new_run_dir("experiments", label)
    run.mkdir(parents=True, exist_ok=True)
    payloads = _default_payloads(configs[0]) if configs else None
    _write_json(run / "matrix.json", {"cells": labels, "status": "running"})
    from tqdm.auto import tqdm

    status = "complete"
    try:
        for config in tqdm(configs, desc="cells", unit="cell", disable=not progress):
            run_experiment(config, run / config.label, payloads=payloads, progress=progress)
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        _write_json(run / "matrix.json", {"cells": labels, "status": status})
    return run


def load_cell(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """A saved cell: its config, facts, status and both record tables."""
    import pandas as pd

    folder = Path(folder)
    if not (folder / "requests.parquet").is_file():
        raise FileNotFoundError(f"{folder} holds no experiment records (requests.parquet)")
    return {
        "name": folder.name,
        "config": ExperimentConfig.from_dict(json.loads((folder / "config.json").read_text())),
        "environment": json.loads((folder / "environment.json").read_text()),
        "status": json.loads((folder / "status.json").read_text()),
        "requests": pd.read_parquet(folder / "requests.parquet"),
        "invocations": pd.read_parquet(folder / "invocations.parquet"),
    }


def cell_folders(run: str | os.PathLike[str]) -> list[Path]:
    """The cell folders of a matrix run (or the run itself if it is one cell), in order."""
    run = Path(run)
    if (run / "requests.parquet").is_file():
        return [run]
    matrix = run / "matrix.json"
    if matrix.is_file():
        names = json.loads(matrix.read_text())["cells"]
        return [run / n for n in names if (run / n / "requests.parquet").is_file()]
    return sorted(p.parent for p in run.glob("*/requests.parquet"))


def _default_payloads(config: ExperimentConfig) -> Payloads:
    from labkit.data import load_mnist

    return Payloads.from_split(load_mnist(config.data_root, train=False), config.n_images)


def _run_on_backend(config: ExperimentConfig, arrivals: Any, payloads: Payloads,
                    load: LoadConfig, facts: dict[str, Any]) -> LoadResult:  # fmt: skip
    from labkit.invoke import LambdaInvoker

    policy = config.policy.build()
    slo_s = config.slo_ms / 1000.0
    f = config.function
    prewarm = (
        PredictivePrewarm(PrewarmConfig(keep_alive_s=f.keep_alive_s, max_instances=f.concurrency))
        if config.prewarm
        else None
    )
    if config.backend == "aws":
        invoker = LambdaInvoker(region=config.region, max_connections=load.max_in_flight)
        facts["region"] = invoker.client.meta.region_name
        result = run_load(arrivals, policy, invoker.invoke, payloads, load, slo_s=slo_s,
                          prewarm=prewarm)  # fmt: skip
    else:
        result = _run_locally(config, arrivals, policy, payloads, load, facts, prewarm)
    if prewarm is not None:
        facts["prewarm"] = prewarm.describe()
    return result


def _run_locally(config: ExperimentConfig, arrivals: Any, policy: Any, payloads: Payloads,
                 load: LoadConfig, facts: dict[str, Any],
                 prewarm: PredictivePrewarm | None) -> LoadResult:  # fmt: skip
    """One cell on a fresh embedded local Lambda (cold starts included, as on a new deploy)."""
    from labkit.emulator import FunctionConfig, LocalLambda
    from labkit.image import Bundle
    from labkit.invoke import LambdaInvoker

    f, slo_s = config.function, config.slo_ms / 1000.0

    function = FunctionConfig(
        name=f.name, code_dir=Path(config.bundle_dir), memory_mb=f.memory_mb,  # type: ignore[arg-type]
        handler=Bundle.open(config.bundle_dir).handler,  # type: ignore[arg-type]
        timeout_s=f.timeout_s, concurrency=f.concurrency, keep_alive_s=f.keep_alive_s,
        provisioned=f.provisioned, cpu_share=f.cpu_share,
    )  # fmt: skip
    with LocalLambda(function) as lam:
        if f.provisioned:
            lam.wait_until_idle(f.name, timeout_s=120.0)
        invoker = LambdaInvoker(endpoint_url=lam.endpoint_url, max_connections=load.max_in_flight)
        result = run_load(arrivals, policy, invoker.invoke, payloads, load, slo_s=slo_s,
                          prewarm=prewarm)  # fmt: skip
        facts["local_lambda"] = lam.instances(f.name)
    return result


def _save(folder: Path, result: LoadResult, facts: dict[str, Any]) -> None:
    result.requests.to_parquet(folder / "requests.parquet", index=False)
    result.invocations.to_parquet(folder / "invocations.parquet", index=False)
    _write_json(folder / "environment.json", facts | result.facts)
    _write_json(folder / "status.json", {
        "status": "complete" if result.complete else "incomplete",
        "stopped_by": result.stopped_by, "wall_s": round(result.wall_s, 3),
        "requests": len(result.requests), "invocations": len(result.invocations),
    })  # fmt: skip


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    tmp.replace(path)


def memory_sweep(
    base: ExperimentConfig,
    memories_mb: list[int],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Path:
    """One workload at several memory sizes (in the spirit of AWS Lambda Power Tuning); with
    the CPU share on, more memory means more CPU, as on Lambda. Returns the run folder."""
    if not memories_mb or any(m < 128 or m > 10_240 for m in memories_mb):
        raise ValueError(f"memory sizes must be 128..10240 MB, not {memories_mb}")
    cells = [
        dataclasses.replace(
            base,
            function=dataclasses.replace(base.function, memory_mb=m),
            name=f"{base.policy.kind}-{m}mb",
        )
        for m in memories_mb
    ]
    return run_matrix(cells, out_dir, label="memory-sweep", progress=progress)
