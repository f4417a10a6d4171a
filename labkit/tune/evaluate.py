"""One unit of a search's work: a policy's candidates, each run on the simulator.

A :class:`Task` carries everything a worker needs (it is pickled to Dask workers): the group
of candidates, the platform profile at its reference memory, the workload sized for the
search, the SLO and the search's seed. :func:`run` forms the policy's batches once when the
policy does not learn, and serves them at each candidate's memory (the profile carried there
by Lambda's CPU share, :meth:`~labkit.sim.simulate.PlatformProfile.at_memory`) and
concurrency; a policy that learns runs coupled per candidate; an SQS mapping runs through
the queue model. Every candidate is seeded by its key (:meth:`Candidate.seed`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from labkit import cost
from labkit.load.batching import replay
from labkit.load.workloads import WorkloadConfig
from labkit.sim.paused_gc import paused_gc
from labkit.sim.simulate import PlatformProfile, SimConfig, run_platform
from labkit.sim.simulate_queue import simulate_queue
from labkit.tune import analytic, figures
from labkit.tune.objective import Slo
from labkit.tune.space import Candidate, Group


def sized(workload: WorkloadConfig, requests: int, seed: int) -> WorkloadConfig:
    """``workload``'s shape lasting long enough for about ``requests`` arrivals, drawn with
    ``seed``; a trace is replayed as it is."""
    if requests < 1:
        raise ValueError(f"a search needs at least 1 request per configuration, not {requests}")
    rate = workload.mean_rate
    if not math.isfinite(rate) or rate <= 0:
        return workload
    return dataclasses.replace(workload, duration_s=requests / rate, seed=seed)


@functools.lru_cache(maxsize=4)
def _arrivals(workload: WorkloadConfig) -> np.ndarray:
    """A worker draws each workload's arrivals once, whatever number of tasks it runs."""
    return workload.arrivals()


@dataclass(frozen=True)
class Task:
    group: Group
    profile: PlatformProfile  # at its reference memory
    workload: WorkloadConfig  # sized for the search
    slo: Slo
    seed: int
    prices: cost.Prices = dataclasses.field(default_factory=cost.Prices)
    skip: frozenset[str] = frozenset()  # keys not to run (done before, or pruned)
    #: Drop a candidate the closed form puts this many points below the SLO's percentile
    #: (None: simulate every candidate; the closed form's figure is recorded either way).
    prune_margin_pts: float | None = None

    def todo(self) -> list[Candidate]:
        return [c for c in self.group.candidates if c.key not in self.skip]


def at(profile: PlatformProfile, candidate: Candidate) -> PlatformProfile:
    """The profile for one candidate: its memory, its concurrency as the function's limit."""
    return dataclasses.replace(
        profile.at_memory(candidate.memory_mb), concurrency_limit=candidate.concurrency
    )


@dataclass
class Outcome:
    """What a task found: a row per simulated candidate, and those the closed form dropped."""

    rows: list[dict[str, Any]]
    pruned: list[dict[str, Any]]


def run(task: Task) -> Outcome:
    """Every candidate of the task not skipped: the closed form's SLO attainment where it
    applies (``analytic_pct``; the candidate is dropped when that is more than the task's
    margin below the target), else the simulator's figures, whether it meets the SLO, and
    the seconds its run took. The closed form runs here, on the worker, not before the fan-out.
    The garbage collector is paused meanwhile (:mod:`labkit.sim.paused_gc`: a quarter of the
    time)."""
    with paused_gc():
        return _run(task)


def _run(task: Task) -> Outcome:
    times = _arrivals(task.workload)
    todo = task.todo()
    if not todo:
        return Outcome([], [])
    policy = task.group.policy
    slo_s = task.slo.latency_ms / 1000.0
    covered = analytic.covers(policy, task.workload) and policy.kind != "none"
    modelled: dict[int, float] = {}
    simulate_next, pruned = [], []
    for candidate in todo:
        if covered and candidate.memory_mb not in modelled:
            modelled[candidate.memory_mb] = analytic.attainment_pct(
                policy, task.workload, task.profile.at_memory(candidate.memory_mb),
                task.slo.latency_ms,
            )  # fmt: skip
        model = modelled.get(candidate.memory_mb, math.nan)
        margin = task.prune_margin_pts
        if margin is not None and model < task.slo.percentile - margin:
            pruned.append({**candidate.describe(), "reason": "analytic model: far below the SLO",
                           "model_attainment_pct": model})  # fmt: skip
        else:
            simulate_next.append((candidate, model))
    learns = policy.kind == "sqs" or policy.build().learns
    batches, batch_of = None, None
    if simulate_next and not learns:
        batches = replay(policy.build(), times.tolist(), slo_s)
    rows = []
    for candidate, model in simulate_next:
        start = time.perf_counter()
        profile = at(task.profile, candidate)
        config = SimConfig(concurrency=candidate.concurrency, seed=candidate.seed(task.seed),
                           slo_s=slo_s)  # fmt: skip
        if policy.kind == "sqs":
            result = simulate_queue(times, policy.mapping(), profile, config)
            found = figures.from_records(
                result.requests, result.invocations, task.slo, profile.memory_mb, task.prices,
                extra_usd=cost.traffic_cost(result.facts.get("sqs")),
            )  # fmt: skip
        else:
            platform = run_platform(times, policy.build(), profile, config, batches=batches)
            if batches is not None:  # the same batches in the same order: the same ids
                if batch_of is None:
                    batch_of = platform.batch_of
                platform.batch_of = batch_of
            found = figures.from_platform(platform, times, task.slo, task.prices)
        rows.append({
            **candidate.describe(), **found, "analytic_pct": model,
            "meets": task.slo.met_by(found["slo_attainment_pct"]),
            "seconds": time.perf_counter() - start,
        })  # fmt: skip
    return Outcome(rows, pruned)
