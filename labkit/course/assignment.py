"""The course assignment's grading: hidden workloads per student, the frontier score, the rubric.

Part 1 asks for the paper's dynamic rule (:func:`labkit.course.checker.same_batches_as_paper`).
Part 2 asks for a policy that beats it, and is graded on workloads the student has not seen:

- **Hidden workloads** (:func:`hidden_workloads`): eight 60 s workloads (uniform, Poisson,
  bursty, ramp; rates from 2 to 40 requests/s) drawn from a seed that mixes the student's id
  with the course's secret (:func:`read_secret`, a file only the autograder holds). Two
  students get different workloads; nobody can compute them without the secret.
- **The reference frontier** of each workload: every dynamic ``(N, T)`` of
  :data:`SWEEP_SIZES` x :data:`SWEEP_TIMEOUTS_S`, the SLO-aware policy and the paper's rule,
  run through the checker's stated model (:func:`labkit.course.checker.evaluate`), reduced to its
  Pareto front on the SLO-cost plane (:mod:`labkit.course.frontier`).
- **Frontier credit** per workload: ``1 - epsilon / CREDIT_SCALE`` (at least 0), where
  epsilon is the student's distance to the part of the frontier at least as good on the SLO
  as the paper (SLO points and per cent of the paper's cost). On the frontier: 1. Where the
  paper's rule is itself on the frontier, it gets 1 there too; elsewhere less.
- **Dominance**: on the workloads where some reference policy dominates the paper's rule
  (at least as good in both, better by a margin in one), the share where the student's does.
  The paper's rule never dominates itself, so this is what separates beating it from matching it.

:data:`RUBRIC` turns these into points as a ladder of pass/fail rungs (what autograders
score); the assignment notebook's tests call :func:`require`, and a test keeps the
notebook's points equal to the rubric's.
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

from labkit.course import checker, frontier
from labkit.load.batching import BatchingPolicy, DynamicBatching, SloAwareBatching
from labkit.load.workloads import WorkloadConfig

PolicyFactory = Callable[[], BatchingPolicy]

SECRET_FILE = "grading_secret.txt"
SECRET_ENV = "LABKIT_GRADING_SECRET"
HIDDEN_COUNT = 8
HIDDEN_DURATION_S = 60.0
SWEEP_SIZES = (1, 2, 3, 4, 5, 6, 8, 12, 16, 32)
SWEEP_TIMEOUTS_S = (0.05, 0.1, 0.14, 0.17, 0.2, 0.25, 0.3, 0.5)
CREDIT_SCALE = 25.0  # SLO points / per cent of cost from the frontier at which credit is 0

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
           slo_ms: float) -> frontier.Point:  # fmt: skip
    figures = checker.evaluate(factory, workload, slo_ms=slo_ms)
    return frontier.Point(label, figures["slo_attainment_pct"], figures["cost_per_1m_requests_usd"])


def paper_point(workload: WorkloadConfig, slo_ms: float = 200.0) -> frontier.Point:
    return _point("paper (dynamic 5, 0.3 s)", lambda: DynamicBatching(5, 0.3), workload, slo_ms)


@functools.lru_cache(maxsize=64)
def reference_frontier(workload: WorkloadConfig, slo_ms: float = 200.0) -> list[frontier.Point]:
    """The Pareto front of the reference policies on ``workload`` (cached: each grading
    computes it once per workload)."""
    points = [paper_point(workload, slo_ms)]
    for size in SWEEP_SIZES:
        for timeout in SWEEP_TIMEOUTS_S:
            points.append(_point(f"dynamic {size}, {timeout:g} s",
                                 functools.partial(DynamicBatching, size, timeout), workload, slo_ms))  # fmt: skip
    points.append(_point("slo-aware 16", lambda: SloAwareBatching(16), workload, slo_ms))
    return frontier.pareto(points)


@dataclass(frozen=True)
class Standing:
    """A policy on a set of workloads against the paper's rule and the reference frontier."""

    table: pd.DataFrame  # one row per workload
    mean_credit: float  # 0..1
    dominated_share: float  # share of the dominable workloads where yours dominates the paper
    dominable: int  # workloads where a reference policy dominates the paper's rule
    fronts: dict[str, list[frontier.Point]]  # the reference frontier of each workload


def standing(factory: PolicyFactory, workloads: dict[str, WorkloadConfig],
             slo_ms: float = 200.0) -> Standing:  # fmt: skip
    """Frontier credit and dominance of ``factory``'s policy on each workload."""
    rows, fronts = [], {}
    for name, workload in workloads.items():
        yours = _point("yours", factory, workload, slo_ms)
        paper = paper_point(workload, slo_ms)
        front = fronts[name] = reference_frontier(workload, slo_ms)
        targets = [p for p in front if p.slo_pct >= paper.slo_pct - 1e-9]
        eps = frontier.epsilon(yours, targets, paper.cost_usd)
        rows.append({
            "workload": name, "shape": workload.describe(),
            "slo_pct": yours.slo_pct, "cost_1m_usd": yours.cost_usd,
            "slo_pct_paper": paper.slo_pct, "cost_1m_usd_paper": paper.cost_usd,
            "epsilon": eps, "credit": max(0.0, 1.0 - eps / CREDIT_SCALE),
            "dominable": any(frontier.dominates(p, paper) for p in front),
            "dominates_paper": frontier.dominates(yours, paper),
        })  # fmt: skip
    table = pd.DataFrame(rows)
    dominable = table[table["dominable"]]
    share = float(dominable["dominates_paper"].mean()) if len(dominable) else 1.0
    return Standing(table.round(4), float(table["credit"].mean()), share, len(dominable), fronts)


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
    Rung("policy-contract", 2, 4, False, "your policy keeps the contract on the public workloads"),
    Rung("policy-contract-hidden", 2, 5, True, "... and on your hidden workloads"),
    *(Rung(f"credit-{t}", 2, 6, True, f"mean frontier credit >= {t / 100:g} on the hidden "
           "workloads") for t in (25, 50, 70, 85, 95)),
    *(Rung(f"dominates-{t}", 2, 7, True, f"dominates the paper's rule on >= {t} % of the hidden "
           "workloads where the reference frontier does") for t in (25, 50, 75)),
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
    threshold = int(name.rsplit("-", 1)[1]) / 100
    if name.startswith("credit-"):
        assert result.mean_credit >= threshold - 1e-9, (
            f"{item.what}: yours is {result.mean_credit:.2f}\n{_summary(result)}"
        )
    elif name.startswith("dominates-"):
        assert result.dominated_share >= threshold - 1e-9, (
            f"{item.what}: yours dominates it on {result.dominated_share:.0%} of "
            f"{result.dominable}\n{_summary(result)}"
        )
    else:  # pragma: no cover - every rubric name is handled above
        raise KeyError(name)


def _summary(result: Standing) -> str:
    columns = ["workload", "shape", "slo_pct", "slo_pct_paper", "cost_1m_usd", "cost_1m_usd_paper",
               "credit", "dominates_paper"]  # fmt: skip
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
