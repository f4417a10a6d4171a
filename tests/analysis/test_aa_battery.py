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
import math

import numpy as np
import pytest

from labkit.analysis import comparison
from labkit.analysis.cells import simulated_cell
from labkit.experiment import ExperimentConfig
from labkit.load.batching import PolicyConfig
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import PlatformProfile

PAIRS = 200
REPETITIONS = 3
GROUP = 5  # sides per draw of arrivals: 10 pairs each, 20 draws
#: The paper's two workload kinds, as the paper preset runs them (16 s cells).
WORKLOADS = {"uniform-10rps": WorkloadConfig("uniform", rate=10, duration_s=16, name="uniform-10rps"),
             "bursty": WorkloadConfig("bursty", duration_s=16)}  # fmt: skip
#: 5 % promised; 200 independent pairs put the count of a true 5 % at 10 +- 3, and shared sides
#: widen that: above 18 (9 %) it is not.
MOST_DECIDED = 18


def battery(workload: WorkloadConfig, repetitions: int) -> dict[str, int]:
    """How many of :data:`PAIRS` A/A pairs each metric decides. Sides come in groups of
    :data:`GROUP` on one draw of arrivals per repetition, and every two sides of a group
    make a pair: each side is simulated and measured once and serves ``GROUP - 1`` pairs.
    Every pair is still two independent sides; pairs that share a side are not independent
    of each other, which leaves the expected share decided as it is and widens its spread."""
    profile = PlatformProfile.load("paper-aws")
    decided = dict.fromkeys([*comparison.VIEWS, "init_duration_ms"], 0)
    pairs = 0
    for group in range(PAIRS // math.comb(GROUP, 2)):
        policy = PolicyConfig("dynamic", 5, 0.3) if group % 2 else PolicyConfig("static", 5)
        configs = [ExperimentConfig(bundle_dir="-", backend="simulated", policy=policy, repetition=r,
                                    workload=dataclasses.replace(workload, seed=1000 * group + r))
                   for r in range(repetitions)]  # fmt: skip
        sides = []
        for side in range(GROUP):
            seeds = [int(np.random.SeedSequence([group, r, side]).generate_state(1)[0])
                     for r in range(repetitions)]  # fmt: skip
            cells = [
                simulated_cell(c, profile, seed=s) for c, s in zip(configs, seeds, strict=True)
            ]
            sides.append(comparison.measure(cells, blocks=False))
        for a, b in itertools.combinations(sides, 2):
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


def test_with_one_repetition_a_policy_against_itself_is_never_decided() -> None:
    decided = battery(WORKLOADS["bursty"], repetitions=1)
    assert decided == dict.fromkeys(decided, 0)
