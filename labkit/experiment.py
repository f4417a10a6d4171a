"""Experiments: one (workload, policy, backend) cell, or a matrix of them, run and saved.

Each cell gets its own folder of records (:mod:`labkit.records`), never overwritten. The
backend (:mod:`labkit.backends`) starts a fresh function for every cell, so each cell pays
its own cold starts, as a newly deployed function would.

Nothing measured is lost: records go to the cell's journal as they complete; Ctrl-C or
SIGTERM (:mod:`labkit.signals`) stops sending, drains, saves the cell marked incomplete,
and only then stops the function and raises again; a backend that dies mid-run becomes
per-request errors; a cell whose requests mostly failed is saved, marked failed, and raises
:class:`CellFailedError` naming the cause.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import labkit
from labkit import backends, paths, records, signals
from labkit.aws.image import MANIFEST, Bundle
from labkit.emulator.cpu_latency import check_limit, hold_cpu_latency
from labkit.journal import Journal, is_cell, save_cell
from labkit.load.batching import PolicyConfig
from labkit.load.loadgen import LoadConfig, Payloads
from labkit.load.prewarm import PredictivePrewarm, PrewarmConfig
from labkit.load.workloads import WorkloadConfig
from labkit.settings import FunctionSettings

PAPER_SLO_MS = 200.0
#: A cell whose requests failed more than this share, for reasons other than throttling,
#: measured a failure, not the function: it is marked failed and the run exits non-zero.
FAILED_SHARE = 0.5
THROTTLED = "TooManyRequestsException"
_ADVICE = {
    "ResourceNotFoundException": "the function does not exist where the run looked: deploy it "
    "(`labkit deploy up`) or pass its --function-name and --region",
    "ExpiredTokenException": "the AWS credentials expired: `aws sso login` or new keys",
    "ExpiredToken": "the AWS credentials expired: `aws sso login` or new keys",
    "UnrecognizedClientException": "AWS does not recognise the credentials: check them",
    "InvalidClientTokenId": "AWS does not recognise the credentials: check them",
    "NoCredentialsError": "no AWS credentials: `aws configure` or `aws sso login` (docs/aws.md)",
    "AccessDeniedException": "the credentials may not invoke the function (lambda:InvokeFunction)",
    "EndpointConnectionError": "AWS could not be reached: check the network and the region",
    "ModelLoadError": "the function's model does not load: rebuild the bundle (notebook 02, "
    "`labkit bundle`) from a trained model (notebook 01, `labkit train`)",
    "Runtime.ExitError": "the function's process died: see its log (notebook 03)",
}


class CellFailedError(RuntimeError):
    """A cell whose requests (mostly) failed; its records are kept, marked failed, and the
    message names the cause and what to do."""


def failure(requests: Any, stopped_by: str | None) -> str | None:
    """Why a cell counts as failed (the first invocations all failed, or most requests did,
    for a reason other than throttling), or None."""
    errors = requests["error"].dropna()
    errors = errors[~errors.isin([THROTTLED, "NotSent", "Abandoned"])]
    if stopped_by and stopped_by.startswith("the first"):
        cause = stopped_by
    elif len(requests) and len(errors) > FAILED_SHARE * len(requests):
        cause = f"{len(errors)} of {len(requests)} requests failed"
    else:
        return None
    common = errors.value_counts().index[0] if len(errors) else ""
    advice = _ADVICE.get(str(common), "see the cell's records (requests.parquet, column error)")
    return f"{cause}; most often {common}: {advice}"


@dataclass(frozen=True)
class ExperimentConfig:
    """One cell: what arrives, how it is batched, what runs it and where.

    ``backend`` is ``local`` (the embedded local Lambda, serving ``bundle_dir``), ``aws``
    (the deployed function, in ``region`` or the AWS region chain's) or ``simulated`` (the
    discrete-event model with ``profile``, a shipped name or a file, and ``sim_seed``).
    ``network`` adds a round trip per invocation on the local and simulated backends (a
    profile of :mod:`labkit.emulator.network`, e.g. ``laptop-to-region``); AWS has its own.
    A function concurrency left at ``None`` becomes the backend's default here, so the saved
    configuration holds the number that ran.
    """

    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    function: FunctionSettings = field(default_factory=FunctionSettings)
    backend: str = "local"
    bundle_dir: str | None = None  # local: the function bundle
    region: str | None = None  # aws
    profile: str | None = None  # simulated: the platform profile (default "local")
    network: str | None = None  # local, simulated: a network distance profile (none)
    sim_seed: int = 0  # simulated: the model's random seed
    repetition: int = 0  # which repetition of its (workload, policy) this cell is, from 0
    slo_ms: float = PAPER_SLO_MS
    n_images: int = 1000  # distinct test images the requests cycle through
    data_root: str | None = None
    name: str | None = None  # the cell's folder name; default "<policy>-<workload>"
    prewarm: bool = False  # predictive pre-warm (labkit.load.prewarm) with warm-up invocations
    cpu_latency_us: int | None = None  # hold idle CPUs' wake-up latency while measuring (root)

    def __post_init__(self) -> None:
        backends.check(self.backend, bundle_dir=self.bundle_dir, prewarm=self.prewarm)
        if self.policy.kind == "sqs":
            self.policy.mapping()  # AWS's checks of the mapping, before anything starts
            if self.prewarm:
                raise ValueError("the predictive pre-warm drives the client's batcher; with "
                                 "policy sqs the platform batches (no pre-warm)")  # fmt: skip
        if self.function.concurrency is None:
            concurrency = backends.default_concurrency(self.backend)
            object.__setattr__(
                self, "function", dataclasses.replace(self.function, concurrency=concurrency)
            )
        if self.slo_ms <= 0:
            raise ValueError(f"slo_ms must be > 0, not {self.slo_ms}")
        check_limit(self.cpu_latency_us)

    @property
    def added_network(self) -> str | None:
        """The network round trip the kit adds to this cell (local and simulated backends);
        ``None`` on AWS, whose network is real."""
        return self.network if "network" in backends.backend_class(self.backend).options else None

    @property
    def label(self) -> str:
        return self.name or f"{self.policy.family}-{self.workload.label}"

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExperimentConfig:
        data = dict(data)
        function = dict(data.pop("function", {}))
        known = {f.name for f in dataclasses.fields(FunctionSettings)}
        return cls(
            workload=WorkloadConfig(**data.pop("workload", {})),
            policy=PolicyConfig(**data.pop("policy", {})),
            function=FunctionSettings(**{k: v for k, v in function.items() if k in known}),
            **data,
        )

    def backend_instance(self) -> backends.Backend:
        """The backend this cell runs on."""
        return backends.create(self.backend, self.function, bundle_dir=self.bundle_dir,
                               region=self.region, profile=self.profile, network=self.network,
                               seed=self.sim_seed)  # fmt: skip


def paper_matrix(
    base: ExperimentConfig,
    workloads: Sequence[WorkloadConfig],
    *,
    static_size: int = 5,
    dynamic_size: int = 5,
    timeout_s: float = 0.3,
    baseline: bool = True,
    repetitions: int = 1,
) -> list[ExperimentConfig]:
    """The paper's comparison: static vs dynamic batching on each workload, ``repetitions``
    times, plus the no-batching baseline (once per workload).

    Repetitions are interleaved, so slow drift of the machine falls on both policies alike,
    and the two policies take turns going first; repetition ``r`` of a workload draws its
    arrivals (and its network and model randomness) from its own stream
    (:func:`stream_seed`), the same for both policies."""
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, not {repetitions}")
    labels = [w.label for w in workloads]
    if len(set(labels)) != len(labels):
        raise ValueError(f"workloads need distinct names (WorkloadConfig(name=...)): {labels}")
    static, dynamic = (
        PolicyConfig("static", static_size),
        PolicyConfig("dynamic", dynamic_size, timeout_s),
    )
    cells = []
    for rep in range(repetitions):
        for workload in workloads:
            pair = [static, dynamic] if rep % 2 == 0 else [dynamic, static]
            policies = ([PolicyConfig("none", 1)] if baseline and rep == 0 else []) + pair
            suffix = f"-r{rep + 1}" if repetitions > 1 else ""
            seeded = dataclasses.replace(
                workload, seed=stream_seed(workload.seed, workload.label, rep)
            )
            cells += [dataclasses.replace(base, workload=seeded, policy=p, repetition=rep,
                                          sim_seed=stream_seed(base.sim_seed, workload.label, rep),
                                          name=f"{p.kind}-{workload.label}{suffix}")
                      for p in policies]  # fmt: skip
    return cells


def stream_seed(seed: int, workload: str, repetition: int) -> int:
    """The seed of one workload's repetition: an independent random stream per
    (``seed``, workload name, repetition), so the workloads of a run do not replay one
    stream (seed + r for every workload made the uniform and bursty cells of a repetition
    share their network draws) and repetitions are not neighbouring seeds of one generator."""
    words = [seed, zlib.crc32(workload.encode()), repetition]
    return int(np.random.SeedSequence(words).generate_state(1)[0])


def variant(base: ExperimentConfig, name: str, *, policy: PolicyConfig | None = None,
            provisioned: int | None = None, **changes: Any) -> ExperimentConfig:  # fmt: skip
    """``base`` renamed ``name`` with another policy, provisioned instances or any other
    field changed (``prewarm=True``, ``bundle_dir=...``): one line per compared cell."""
    function = base.function
    if provisioned is not None:
        function = dataclasses.replace(function, provisioned=provisioned)
    return dataclasses.replace(base, name=name, policy=policy or base.policy, function=function,
                               **changes)  # fmt: skip


def environment_facts() -> dict[str, Any]:
    """Versions and machine facts saved beside the records (the backend adds its own)."""
    import numpy
    import pandas

    facts: dict[str, Any] = {
        "labkit": labkit.__version__, "python": platform.python_version(),
        "numpy": numpy.__version__, "pandas": pandas.__version__,
        "platform": platform.platform(), "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }  # fmt: skip
    try:
        import torch

        facts["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
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
    if is_cell(folder):
        raise FileExistsError(f"{folder} already holds a run; results are never overwritten")
    check_payload(config)
    backend = config.backend_instance()
    arrivals = config.workload.arrivals()
    if len(arrivals) == 0:
        raise ValueError(f"workload {config.workload} produced no requests")
    if backend.live:
        backend.precheck()  # e.g. AWS credentials: said before the payloads load
        payloads = payloads or _default_payloads(config)
    facts = environment_facts()
    records.write_json(folder / records.CONFIG_FILE, config.as_dict())
    records.write_json(folder / records.ENVIRONMENT_FILE, facts)
    records.write_json(folder / records.STATUS_FILE, {"status": "running", "pid": os.getpid(),
                                                      "started_utc": facts["started_utc"]})  # fmt: skip
    load = LoadConfig(max_in_flight=backend.concurrency, progress=progress)
    prewarm = (
        PredictivePrewarm(PrewarmConfig(keep_alive_s=config.function.keep_alive_s,
                                        max_instances=backend.concurrency))
        if config.prewarm
        else None
    )  # fmt: skip
    # Held by this process, so on either live backend: the load generator's wake-ups count too.
    hold = hold_cpu_latency(config.cpu_latency_us)
    facts["cpu_latency"] = hold.status
    if hold.refused:
        warnings.warn(f"CPU wake-up latency {hold.status}: measuring without it",
                      RuntimeWarning, stacklevel=2)  # fmt: skip
    journal = Journal(folder) if backend.live else None
    try:
        result = backend.run_cell(arrivals, config.policy.build(), payloads or Payloads.empty(),
                                  load, slo_s=config.slo_ms / 1000.0, prewarm=prewarm,
                                  journal=journal)  # fmt: skip
        if prewarm is not None:
            facts["prewarm"] = prewarm.describe()
        failed = failure(result.requests, result.stopped_by)
        status = "failed" if failed else "complete" if result.complete else "incomplete"
        with signals.deferred():  # a second Ctrl-C waits until the cell is on disk
            save_cell(folder, result.requests, result.invocations, facts | result.facts, {
                "status": status, "stopped_by": result.stopped_by, "why": failed,
                "wall_s": round(result.wall_s, 3), "requests": len(result.requests),
                "invocations": len(result.invocations),
            })  # fmt: skip
            if journal is not None:
                journal.discard()
    finally:
        hold.release()
        if journal is not None:
            journal.close()
        backend.stop()
    signals.raise_stop(result.stopped_by, kept_in=folder)
    if failed:
        raise CellFailedError(
            f"cell {config.label} failed: {failed}. Its records are kept in {folder}"
        )
    if result.stopped_by:
        raise RuntimeError(f"the run stopped early ({result.stopped_by}); its records are kept, "
                           f"marked incomplete, in {folder}")  # fmt: skip
    return folder


def _traffic_s(config: ExperimentConfig) -> float:
    """The seconds of traffic a cell sends (a trace: its span), for the matrix's progress."""
    workload = config.workload
    if workload.kind in ("csv", "azure"):
        times = workload.arrivals()
        return float(times[-1] - times[0]) if len(times) else 0.0
    return float(workload.duration_s)


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
    live = [c for c in configs if backends.backend_class(c.backend).live]
    payloads = _default_payloads(live[0]) if live else None
    records.write_json(run / records.MATRIX_FILE, {"cells": labels, "status": "running"})
    from tqdm.auto import tqdm

    status, done = "complete", []
    traffic = [_traffic_s(c) for c in configs]
    # One bar in seconds of traffic, so its remaining time is right from the first cell
    # (cells differ in length; the start-up of each is carried in proportion)
    bar = tqdm(total=round(sum(traffic), 1), desc=f"{len(configs)} cells", unit="s of traffic",
               disable=not progress, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s of traffic "
               "[{elapsed}<{remaining}{postfix}]")  # fmt: skip
    try:
        for config, seconds in zip(configs, traffic, strict=True):
            bar.set_postfix_str(config.label)
            run_experiment(config, run / config.label, payloads=payloads, progress=False)
            done.append(config.label)
            bar.update(round(seconds, 1))
    except KeyboardInterrupt as stop:
        status = "interrupted" if not isinstance(stop, signals.Terminated) else "terminated"
        raise
    except BaseException:
        status = "failed"
        raise
    finally:
        bar.close()
        records.write_json(run / records.MATRIX_FILE,
                           {"cells": labels, "status": status, "finished": done})  # fmt: skip
    return run


def _default_payloads(config: ExperimentConfig) -> Payloads:
    """What the cell's requests carry: random inputs of the bundle's spec for any model
    (:mod:`labkit.aws.model_bundle`), MNIST's test digits for the lab's CNN."""
    bundle = _bundle(config)
    if bundle is not None and bundle.input:
        return Payloads.for_input(bundle.input, bundle.codec or "tensor", min(config.n_images, 32))
    from labkit.data import load_mnist  # deferred: torch, needed only for the MNIST digits

    return Payloads.from_split(load_mnist(config.data_root, train=False), config.n_images)


def _bundle(config: ExperimentConfig) -> Bundle | None:
    path = Path(config.bundle_dir) if config.bundle_dir else None
    return Bundle.open(path) if path is not None and (path / MANIFEST).is_file() else None


def check_payload(config: ExperimentConfig) -> None:
    """Refuse a policy whose batches would not fit one synchronous Lambda payload (6 MB, which
    the local Lambda enforces as AWS does): ``ValueError`` with the model's largest batch."""
    bundle = _bundle(config)
    largest = bundle.largest_batch if bundle is not None else None
    if largest is not None and config.policy.size > largest:
        raise ValueError(
            f"a batch of {config.policy.size} {bundle.input} inputs ({bundle.codec}) does not fit "  # type: ignore[union-attr]
            f"Lambda's 6 MB synchronous payload: at most {largest} per batch for this model"
            + (" (send JPEGs: --codec jpeg when bundling)" if bundle.codec == "tensor" else "")  # type: ignore[union-attr]
        )


def memory_sweep(
    base: ExperimentConfig,
    memories_mb: list[int],
    out_dir: str | os.PathLike[str] | None = None,
    *,
    progress: bool = True,
) -> Path:
    """One workload at several memory sizes (in the spirit of AWS Lambda Power Tuning); with
    the CPU share on, more memory means more CPU, as on Lambda. Returns the run folder."""
    if not memories_mb:
        raise ValueError("a memory sweep needs at least one memory size")
    cells = [
        dataclasses.replace(
            base,
            function=dataclasses.replace(base.function, memory_mb=m),
            name=f"{base.policy.kind}-{m}mb",
        )
        for m in memories_mb
    ]
    return run_matrix(cells, out_dir, label="memory-sweep", progress=progress)
