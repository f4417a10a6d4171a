"""The course assignment's grading: hidden workloads per student, one stated objective, the rubric.

Part 1 asks for the paper's dynamic rule (:func:`labkit.course.checker.same_batches_as_paper`).
Part 2 asks for **the cheapest policy that meets the SLO target** (at least 95 % of requests
within 200 ms) on workloads the student has not seen: the objective engineers use, and the
one ``labkit tune`` optimises (:mod:`labkit.course.objective` states the scale).

- **Hidden workloads** (:func:`hidden_workloads`): eight 60 s workloads (uniform, Poisson,
  bursty, ramp; rates from 2 to 40 requests/s) drawn from a seed that mixes the student's id
  with the course's secret (:func:`read_secret`, a file only the autograder holds). Two
  students get different workloads; nobody can compute them without the secret.
- **Reference policies** on each workload: every dynamic ``(N, T)`` of :data:`SWEEP_SIZES` x
  :data:`SWEEP_TIMEOUTS_S`, the SLO-aware policy and the paper's rule, run through the
  checker's stated model (:func:`labkit.course.checker.slo_and_cost`).
- **A score per workload** (:func:`labkit.course.objective.workload_score`): half for meeting
  the target, the rest by cost against the cheapest reference that meets it (full at its
  cost, nothing at 50 % dearer); nothing where the target is missed. The part's **score** is
  the mean over the workloads.

:data:`RUBRIC` turns the score into points as pass/fail rungs (what autograders score: 5
points per tenth of the score, after 10 for keeping the contract); the assignment notebook's
tests call :func:`require`, its preview shows the same figures on the public workloads
(:attr:`Standing.points`), and a test keeps the notebook's points equal to the rubric's.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from labkit.course import checker
from labkit.course.objective import TARGET_PCT, Point, meets, pareto, workload_score
from labkit.load.batching import BatchingPolicy, DynamicBatching, SloAwareBatching
from labkit.load.workloads import WorkloadConfig

PolicyFactory = Callable[[], BatchingPolicy]

SECRET_FILE = "grading_secret.txt"
SECRET_ENV = "LABKIT_GRADING_SECRET"
HIDDEN_COUNT = 8
HIDDEN_DURATION_S = 60.0
SWEEP_SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 16, 32)
SWEEP_TIMEOUTS_S = (0.05, 0.1, 0.14, 0.17, 0.2, 0.25, 0.3, 0.5)

#: The workloads students see their standing on (the checker's, without the edge case).
PUBLIC_WORKLOADS = {k: w for k, w in checker.CHECK_WORKLOADS.items() if not k.startswith("edge")}


class SecretMissing(RuntimeError):
    """The hidden tests run only where the course's secret is (the autograder)."""


def read_secret(folder: str | os.PathLike[str] = ".") -> str:
    """The course's grading secret: ``$LABKIT_GRADING_SECRET``, else ``grading_secret.txt``
    in ``folder`` (where the autograder unpacks its files)."""
    if os.environ.get(SECRET_ENV):
        return os.environ[SECRET_ENV]
    path = Path(folder) / SECRET_FILE
    if not path.is_file():
        raise SecretMissing(f"no {SECRET_FILE} in {Path(folder).resolve()} and no ${SECRET_ENV}: "
                            "hidden tests run in the autograder, which holds the course's "
                            "secret (labkit assignment build writes it)")  # fmt: skip
    secret = path.read_text().strip()
    if not secret:
        raise SecretMissing(f"{path} is empty")
    return secret


def _seed(student_id: str, secret: str) -> int:
    if not isinstance(student_id, str) or not student_id.strip():
        raise ValueError("student_id must be your non-empty student id (a string)")
    digest = hashlib.sha256(f"{secret}\0{student_id.strip().lower()}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def hidden_workloads(student_id: str, secret: str) -> dict[str, WorkloadConfig]:
    """The student's eight hidden workloads: two uniform, three Poisson, two bursty, one
    ramp; mean rates log-uniform over 2-40 requests/s, bursts 30-90/s."""
    rng = np.random.default_rng(_seed(student_id, secret))

    def rate() -> float:
        return round(float(math.exp(rng.uniform(math.log(2), math.log(40)))), 1)

    def seed() -> int:
        return int(rng.integers(1 << 31))

    d = HIDDEN_DURATION_S
    workloads = [WorkloadConfig("uniform", rate=rate(), duration_s=d) for _ in range(2)]
    workloads += [WorkloadConfig("poisson", rate=rate(), duration_s=d, seed=seed())
                  for _ in range(3)]  # fmt: skip
    for _ in range(2):
        burst_s = round(float(rng.uniform(0.5, 2.0)), 1)
        workloads.append(WorkloadConfig(
            "bursty", base_rate=round(float(rng.uniform(1, 8)), 1),
            burst_rate=round(float(rng.uniform(30, 90)), 1), burst_s=burst_s,
            period_s=round(burst_s + float(rng.uniform(3, 8)), 1), duration_s=d, seed=seed()))  # fmt: skip
    start, end = sorted((rate(), rate()))
    workloads.append(WorkloadConfig("ramp", base_rate=start, rate=end, duration_s=d, seed=seed()))
    assert len(workloads) == HIDDEN_COUNT
    return {f"hidden-{i + 1}": w for i, w in enumerate(workloads)}


def _point(label: str, factory: PolicyFactory, workload: WorkloadConfig,
           slo_ms: float) -> Point:  # fmt: skip
    return Point(label, *checker.slo_and_cost(factory, workload, slo_ms=slo_ms))


PAPER_LABEL = "paper (dynamic 5, 0.3 s)"


@functools.lru_cache(maxsize=64)
def reference_points(workload: WorkloadConfig, slo_ms: float = 200.0) -> tuple[Point, ...]:
    """Every reference policy on ``workload``, the paper's rule first (cached: a grading
    computes them once per workload)."""
    points = [_point(PAPER_LABEL, lambda: DynamicBatching(5, 0.3), workload, slo_ms)]
    for size in SWEEP_SIZES:
        for timeout in SWEEP_TIMEOUTS_S:
            points.append(_point(f"dynamic {size}, {timeout:g} s",
                                 functools.partial(DynamicBatching, size, timeout), workload, slo_ms))  # fmt: skip
    points.append(_point("slo-aware 16", lambda: SloAwareBatching(16), workload, slo_ms))
    return tuple(points)


#: Part 2's points: the contract (public and hidden), then a rung per tenth of the score.
CONTRACT_POINTS = {"policy-contract": 4, "policy-contract-hidden": 6}
SCORE_RUNGS = tuple(range(10, 101, 10))  # per cent of the score
SCORE_RUNG_POINTS = 5


def part2_points(score: float, *, contract_kept: bool = True) -> int:
    """Part 2's points for a mean score in 0..1: 10 for the contract, 5 per tenth reached."""
    if not contract_kept:
        return 0
    reached = sum(score >= t / 100 - 1e-9 for t in SCORE_RUNGS)
    return sum(CONTRACT_POINTS.values()) + SCORE_RUNG_POINTS * reached


@dataclass(frozen=True)
class Standing:
    """A policy on a set of workloads, scored by part 2's objective."""

    table: pd.DataFrame  # one row per workload
    score: float  # 0..1: the mean of the workloads' scores
    references: dict[str, tuple[Point, ...]]  # every reference policy's point, per workload
    target_pct: float
    slo_ms: float

    @property
    def fronts(self) -> dict[str, list[Point]]:
        """The best the references reach on each workload (their Pareto front)."""
        return {name: pareto(points) for name, points in self.references.items()}

    @property
    def points(self) -> int:
        """Part 2's points if these were the hidden workloads (the contract kept)."""
        return part2_points(self.score)

    def sentence(self) -> str:
        met = int(self.table["meets_target"].sum())
        return (f"Meets the target ({self.target_pct:g} % within {self.slo_ms:g} ms) on {met} of "
                f"{len(self.table)} workloads; score {self.score:.2f}, which is "
                f"{self.points} of part 2's 60 points.")  # fmt: skip


def standing(factory: PolicyFactory, workloads: dict[str, WorkloadConfig],
             slo_ms: float = 200.0, target_pct: float = TARGET_PCT) -> Standing:  # fmt: skip
    """``factory``'s policy on each workload against the reference policies."""
    rows, references = [], {}
    for name, workload in workloads.items():
        yours = _point("yours", factory, workload, slo_ms)
        found = references[name] = reference_points(workload, slo_ms)
        paper, result = found[0], workload_score(yours, found, target_pct)
        rows.append({
            "workload": name, "shape": workload.describe(),
            "slo_pct": yours.slo_pct, "cost_1m_usd": yours.cost_usd,
            "meets_target": meets(yours, target_pct), "reference": result.reference.label,
            "slo_pct_reference": result.reference.slo_pct,
            "cost_1m_usd_reference": result.reference.cost_usd,
            "extra_cost_pct": result.extra_cost_pct, "basis": result.basis,
            "score": result.value,
            "slo_pct_paper": paper.slo_pct, "cost_1m_usd_paper": paper.cost_usd,
        })  # fmt: skip
    table = pd.DataFrame(rows)
    return Standing(table.round(4), float(table["score"].mean()), references, target_pct, slo_ms)


@dataclass(frozen=True)
class Rung:
    """One pass/fail item of the rubric."""

    name: str
    part: int
    points: int
    hidden: bool
    what: str


RUBRIC: tuple[Rung, ...] = (
    Rung("paper-rule-contract", 1, 10, False, "the paper's rule keeps the batching contract"),
    Rung("paper-rule-cases", 1, 10, False, "the paper's rule: size, timeout and quiet-gap cases"),
    Rung("paper-rule-hidden", 1, 20, True, "the paper's rule: same batches as the reference "
         "on the hidden workloads, written by you (not labkit's DynamicBatching)"),
    Rung("policy-contract", 2, CONTRACT_POINTS["policy-contract"], False,
         "your policy keeps the contract on the public workloads"),
    Rung("policy-contract-hidden", 2, CONTRACT_POINTS["policy-contract-hidden"], True,
         "... and on your hidden workloads"),
    *(Rung(f"score-{t}", 2, SCORE_RUNG_POINTS, True, f"part 2's score >= {t / 100:g} on the "
           "hidden workloads") for t in SCORE_RUNGS),
)  # fmt: skip


def rung(name: str) -> Rung:
    for item in RUBRIC:
        if item.name == name:
            return item
    raise KeyError(f"no rubric item {name!r}; known: {', '.join(r.name for r in RUBRIC)}")


@functools.lru_cache(maxsize=16)
def _standing_cached(factory: PolicyFactory, student_id: str, secret: str,
                     slo_ms: float) -> Standing:  # fmt: skip
    """The contract first (a violation raises, and is not cached), then :func:`standing`;
    computed once for all the rubric's rungs."""
    hidden = hidden_workloads(student_id, secret)
    checker.check_contract(factory, workloads=hidden)
    return standing(factory, hidden, slo_ms)


def hidden_standing(factory: PolicyFactory, student_id: str, *, secret: str | None = None,
                    slo_ms: float = 200.0) -> Standing:  # fmt: skip
    """:func:`standing` on the student's hidden workloads (the contract first)."""
    secret = read_secret() if secret is None else secret
    return _standing_cached(factory, student_id, secret, slo_ms)


def require(name: str, factory: PolicyFactory, student_id: str = "", *,
            secret: str | None = None, slo_ms: float = 200.0) -> None:  # fmt: skip
    """Raise ``AssertionError`` (or :class:`labkit.course.checker.ContractViolation`) unless the
    rubric item ``name`` holds for ``factory``'s policy; the message says what was measured."""
    item = rung(name)
    if name == "paper-rule-contract" or name == "policy-contract":
        checker.check_contract(factory)
        return
    if name == "paper-rule-cases":
        checker.same_batches_as_paper(factory, checker.PAPER_RULE_CASES)
        return
    secret = read_secret() if secret is None else secret
    hidden = hidden_workloads(student_id, secret)
    if name == "paper-rule-hidden":
        policy = factory()
        if isinstance(policy, DynamicBatching):
            raise AssertionError("part 1 asks for the rule written by you; this policy is "
                                 "labkit's DynamicBatching (or a subclass of it)")  # fmt: skip
        checker.same_batches_as_paper(factory, hidden)
        return
    result = hidden_standing(factory, student_id, secret=secret, slo_ms=slo_ms)
    if name == "policy-contract-hidden":
        return
    if not name.startswith("score-"):  # pragma: no cover - every rubric name is handled above
        raise KeyError(name)
    threshold = int(name.rsplit("-", 1)[1]) / 100
    assert result.score >= threshold - 1e-9, (
        f"{item.what}: yours is {result.score:.2f}. {result.sentence()}\n{_summary(result)}"
    )


def _summary(result: Standing) -> str:
    columns = ["workload", "shape", "slo_pct", "cost_1m_usd", "basis", "reference",
               "cost_1m_usd_reference", "extra_cost_pct", "score"]  # fmt: skip
    return result.table[columns].to_string(index=False)


def points(factory: PolicyFactory, student_id: str, *, secret: str, part: int | None = None,
           slo_ms: float = 200.0) -> dict[str, int]:  # fmt: skip
    """Points per rubric item of ``part`` (default: both) for ``factory``'s policy, as the
    autograder gives them."""
    out = {}
    for item in RUBRIC:
        if part is not None and item.part != part:
            continue
        try:
            require(item.name, factory, student_id, secret=secret, slo_ms=slo_ms)
            out[item.name] = item.points
        except (AssertionError, checker.ContractViolation):
            out[item.name] = 0
    return out
