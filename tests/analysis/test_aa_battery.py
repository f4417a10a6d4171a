"""An A/A battery: a policy against itself, on the simulated backend (seconds, not minutes).

Each pair is what Lab 4 runs for static against dynamic, with one policy on both sides:
three repetitions, repetition ``r`` of both sides on the same arrivals, each side with its
own service noise and its own cold starts. Nothing differs but chance, so a verdict rule
that promises 95 % may decide (tell apart from zero) about 5 % of such pairs per metric,
and with one repetition it must decide none.
"""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest

from labkit.analysis import comparison
from labkit.analysis.cells import Cell
from labkit.experiment import ExperimentConfig
from labkit.load.batching import PolicyConfig
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import PlatformProfile, SimConfig, simulate

PAIRS = 200
REPETITIONS = 3
CHAIN = 11  # sides per draw of arrivals: 20 chains of 10 pairs
#: The paper's two workload kinds, as the paper preset runs them (16 s cells).
WORKLOADS = {"uniform-10rps": WorkloadConfig("uniform", rate=10, duration_s=16, name="uniform-10rps"),
             "bursty": WorkloadConfig("bursty", duration_s=16)}  # fmt: skip
#: 5 % promised; 200 pairs put the count of a true 5 % at 10 +- 3: above 18 (9 %) it is not.
MOST_DECIDED = 18


def cell(workload: WorkloadConfig, policy: PolicyConfig, repetition: int, seed: int,
         profile: PlatformProfile) -> Cell:  # fmt: skip
    config = ExperimentConfig(bundle_dir="-", backend="simulated", workload=workload,
                              policy=policy, repetition=repetition)  # fmt: skip
    result = simulate(workload.arrivals(), policy.build(), profile,
                      SimConfig(concurrency=2, seed=seed, slo_s=config.slo_ms / 1000))  # fmt: skip
    status = {"status": "complete", "wall_s": float(workload.duration_s)}
    return Cell(f"{policy.kind}-r{repetition}", config, status, result.requests,
                result.invocations, {})  # fmt: skip


def battery(workload: WorkloadConfig, repetitions: int) -> dict[str, int]:
    """How many of :data:`PAIRS` A/A pairs each metric decides. Sides come in chains of
    :data:`CHAIN` on one draw of arrivals per repetition, and side i meets side i + 1: each
    side is simulated and measured once and serves two pairs (every pair is still two
    independent sides; neighbouring pairs share one, which leaves the expected share decided
    as it is and widens its spread a little)."""
    profile = PlatformProfile.load("paper-aws")
    decided = dict.fromkeys([*comparison.VIEWS, "init_duration_ms"], 0)
    pairs = 0
    for chain in range(PAIRS // (CHAIN - 1)):
        policy = PolicyConfig("dynamic", 5, 0.3) if chain % 2 else PolicyConfig("static", 5)
        arrivals = [
            dataclasses.replace(workload, seed=1000 * chain + r) for r in range(repetitions)
        ]
        sides = []
        for side in range(CHAIN):
            seeds = [int(np.random.SeedSequence([chain, r, side]).generate_state(1)[0])
                     for r in range(repetitions)]  # fmt: skip
            cells = [
                cell(w, policy, r, s, profile)
                for r, (w, s) in enumerate(zip(arrivals, seeds, strict=True))
            ]
            sides.append(comparison.measure(cells))
        for a, b in itertools.pairwise(sides):
            found = comparison.compare_sides(a, b, n_boot=0)
            found["init_duration_ms"] = comparison.compare_init(a.cells, b.cells, n_boot=0)
            for metric, c in found.items():
                decided[metric] += c.decided
            pairs += 1
    assert pairs == PAIRS
    return decided


@pytest.mark.parametrize("name", list(WORKLOADS))
def test_a_policy_against_itself_is_decided_about_five_per_cent_of_the_time(name: str) -> None:
    decided = battery(WORKLOADS[name], REPETITIONS)
    print(name, {m: f"{n / PAIRS:.1%}" for m, n in decided.items()})
    assert max(decided.values()) <= MOST_DECIDED, decided
