"""The course checker: does a student's batching policy keep the contract, and what does it do?

- **Contract** (:func:`check_contract`): on seeded workloads replayed on a virtual clock,
  every request is in exactly one batch, no batch is empty, order is kept within a batch, no
  batch leaves before its requests arrived, nothing is left after the flush, and no batch
  exceeds the function's limit (64). A policy that raises is a violation too; the message
  carries the traceback of the student's own code (labkit's frames left out).
- **The paper's rule** (:func:`same_batches_as_paper`): the same batches, at the same times,
  as the reference :class:`~labkit.load.batching.DynamicBatching` (N=5, T=0.3 s), with the first
  difference described.
- **Figures** (:func:`evaluate`): a workload through the kit's one platform model
  (:mod:`labkit.sim.simulate`) with a stated profile, :data:`CHECKER_PROFILE`: a warm invocation
  takes ``15 ms + 1 ms x batch size``, no noise, no network, no cold starts, one instance per
  concurrent batch; so a request's latency is its wait for the batch plus the service time.
  Deterministic, so every student is graded on the same ground. The model is stated, not
  measured: :class:`labkit.explore.Explorer` runs a policy live on the real function.

:mod:`labkit.course.assignment` builds the course's rubric (hidden workloads, frontier score) on these.
"""

from __future__ import annotations

import math
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

from labkit import cost, metrics
from labkit.load.batching import BatchingPolicy, DynamicBatching, Request, replay
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import Platform, PlatformProfile, SimConfig, run_platform

PolicyFactory = Callable[[], BatchingPolicy]

# Fixed, seeded workloads every student is graded on.
CHECK_WORKLOADS: dict[str, WorkloadConfig] = {
    "uniform-slow": WorkloadConfig("uniform", rate=5, duration_s=60),
    "uniform-fast": WorkloadConfig("uniform", rate=50, duration_s=60),
    "poisson": WorkloadConfig("poisson", rate=20, duration_s=60, seed=7),
    "bursty": WorkloadConfig(
        "bursty", base_rate=8, burst_rate=60, burst_s=1, period_s=5, duration_s=60, seed=11
    ),
    "edge-empty-gaps": WorkloadConfig(
        "bursty", base_rate=0, burst_rate=100, burst_s=0.2, period_s=10, duration_s=60, seed=3
    ),
}


#: The stated function the score is computed on (a model, not a measurement).
CHECKER_PROFILE = PlatformProfile(
    name="checker", source="stated: warm invocation 15 ms + 1 ms per image; no noise, no "
    "network, no cold starts; one instance per concurrent batch", base_ms=15.0, per_image_ms=1.0,
    sigma=0.0, overhead_ms=[0.0], init_ms=[0.0], memory_mb=1024, concurrency_limit=1_000_000,
)  # fmt: skip
UNLIMITED = 1_000_000  # instances in flight: the model never queues a batch


class ContractViolation(AssertionError):
    """The policy broke the batching contract; the message says how and where."""


def check_contract(factory: PolicyFactory, max_batch: int = 64,
                   workloads: dict[str, WorkloadConfig] | None = None) -> dict[str, int]:  # fmt: skip
    """Raise :class:`ContractViolation` at the first broken rule on ``workloads`` (default
    :data:`CHECK_WORKLOADS`); returns batches per workload."""
    counts = {}
    for name, workload in (workloads or CHECK_WORKLOADS).items():
        arrivals = workload.arrivals().tolist()
        batches = _replay(factory, arrivals, name)
        _check_batches(name, arrivals, batches, max_batch)
        counts[name] = len(batches)
    return counts


def _replay(factory: PolicyFactory, arrivals: list[float],
            name: str) -> list[tuple[float, list[Request]]]:  # fmt: skip
    try:
        return replay(factory(), arrivals, slo_s=DEFAULT_SLO_S)
    except Exception as exc:  # a crash is a violation too, reported with the student's frames
        raise ContractViolation(
            f"{name}: the policy raised {type(exc).__name__}: {exc}\n{student_traceback(exc)}"
        ) from exc


DEFAULT_SLO_S = 0.2  # requests carry deadlines, as in a run, for policies that use them
_LABKIT_DIR = str(Path(__file__).resolve().parent.parent)


def student_traceback(exc: BaseException) -> str:
    """The traceback of ``exc`` without labkit's own frames: what the student wrote, with
    file (a notebook cell shows as ``/tmp/ipykernel_.../...py``), line number and source."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_LABKIT_DIR)]  # fmt: skip
    if not frames:
        return "(raised inside labkit, called with arguments your policy gave it)"
    lines = "".join(traceback.format_list(frames))
    return f"Traceback (your code, most recent call last):\n{lines}{type(exc).__name__}: {exc}"


#: Small workloads that each exercise one part of the paper's rule, for part 1's public tests.
PAPER_RULE_CASES: dict[str, WorkloadConfig] = {
    "size (12 requests 10 ms apart: full batches of 5)": WorkloadConfig(
        "uniform", rate=100, duration_s=0.12),
    "timeout (4 requests/s: each batch waits T = 0.3 s)": WorkloadConfig(
        "uniform", rate=4, duration_s=2),
    "both (8/s: timeouts, 40/s: full batches)": WorkloadConfig(
        "bursty", base_rate=8, burst_rate=40, burst_s=1, period_s=3, duration_s=9, seed=5),
    "quiet gaps (bursts, then nothing for 9.8 s)": WorkloadConfig(
        "bursty", base_rate=0, burst_rate=100, burst_s=0.2, period_s=10, duration_s=30, seed=3),
}  # fmt: skip


def same_batches_as_paper(factory: PolicyFactory, workloads: dict[str, WorkloadConfig]) -> None:
    """Raise ``AssertionError`` at the first workload where ``factory``'s policy sends other
    batches, or at other times, than the paper's rule (N=5, T=0.3 s)."""
    for name, workload in workloads.items():
        arrivals = workload.arrivals().tolist()
        yours = _replay(factory, arrivals, name)
        paper = replay(DynamicBatching(5, 0.3), arrivals)
        for number, ((t, batch), (t_ref, ref)) in enumerate(zip(yours, paper, strict=False)):
            ids, ref_ids = [r.id for r in batch], [r.id for r in ref]
            if ids != ref_ids or abs(t - t_ref) > 1e-9:
                raise AssertionError(
                    f"{name}: batch {number} differs. The paper's rule sends requests "
                    f"{ref_ids} at {t_ref:.3f} s (first arrived {ref[0].t_arrive:.3f} s); "
                    f"yours sends {ids} at {t:.3f} s"
                )
        if len(yours) != len(paper):
            raise AssertionError(f"{name}: yours sends {len(yours)} batches, the paper's rule "
                                 f"{len(paper)}")  # fmt: skip


def _check_batches(name: str, arrivals: list[float], batches: list[tuple[float, list[Request]]],
                   max_batch: int) -> None:  # fmt: skip
    seen: dict[int, int] = {}
    for number, (t, batch) in enumerate(batches):
        if not batch:
            raise ContractViolation(f"{name}: batch {number} is empty")
        if len(batch) > max_batch:
            raise ContractViolation(
                f"{name}: batch {number} has {len(batch)} requests (max {max_batch})"
            )
        ids = [r.id for r in batch]
        if ids != sorted(ids):
            raise ContractViolation(f"{name}: batch {number} reorders requests: {ids[:10]}")
        for r in batch:
            if r.id in seen:
                raise ContractViolation(
                    f"{name}: request {r.id} is in batches {seen[r.id]} and {number}"
                )
            seen[r.id] = number
            if r.t_arrive > t + 1e-9:
                raise ContractViolation(f"{name}: request {r.id} sent at {t:.3f}s before it arrived "
                                        f"({r.t_arrive:.3f}s)")  # fmt: skip
    missing = set(range(len(arrivals))) - set(seen)
    if missing:
        raise ContractViolation(
            f"{name}: {len(missing)} request(s) never sent, e.g. {sorted(missing)[:5]}"
        )


def evaluate(factory: PolicyFactory, workload: WorkloadConfig,
             profile: PlatformProfile = CHECKER_PROFILE, slo_ms: float = 200.0) -> dict[str, float]:  # fmt: skip
    """SLO attainment, latency and cost of a policy on one workload under ``profile``."""
    times = workload.arrivals()
    platform = _run(factory, workload, times, profile, slo_ms)
    result = platform.records(times)
    return metrics.summarize(result.requests, result.invocations, slo_ms=slo_ms,
                             memory_mb=profile.memory_mb)  # fmt: skip


def slo_and_cost(factory: PolicyFactory, workload: WorkloadConfig,
                 profile: PlatformProfile = CHECKER_PROFILE, slo_ms: float = 200.0) -> tuple[float, float]:  # fmt: skip
    """The two figures a grade needs, SLO attainment (%) and cost per 1M requests (USD), by
    :func:`evaluate`'s definitions but straight from the model's arrays: a grading runs the
    model ~650 times, and building and summarising record tables was half of each run
    (``tests/course/test_checker.py`` holds the two equal)."""
    times = workload.arrivals()
    run = _run(factory, workload, times, profile, slo_ms).arrays(times)
    if not len(times):
        return math.nan, math.nan
    usd = cost.on_demand_usd(len(run.billed_ms), float(run.billed_ms.sum()), profile.memory_mb)
    return metrics.slo_attainment_pct(run.latency_ms, slo_ms, run.failed), usd / len(times) * 1e6


def _run(factory: PolicyFactory, workload: WorkloadConfig, times: np.ndarray,
         profile: PlatformProfile, slo_ms: float) -> Platform:  # fmt: skip
    try:
        return run_platform(times, factory(), profile,
                            SimConfig(concurrency=UNLIMITED, slo_s=slo_ms / 1000.0))  # fmt: skip
    except Exception as exc:  # the student's policy, most likely: show them their frames
        raise ContractViolation(f"{workload.describe()}: the run raised {type(exc).__name__}: "
                                f"{exc}\n{student_traceback(exc)}") from exc  # fmt: skip
