"""Part 2's objective: the cheapest policy that meets the SLO target, per workload.

It is the objective engineers use, and the one ``labkit tune`` optimises: meet an SLO target
(at least :data:`TARGET_PCT` % of requests within the SLO), and among the policies that do,
pay as little as possible. On one workload a policy is a :class:`Point` (SLO attainment,
cost per 1M requests); its score (:func:`workload_score`, 0..1) is

- **a rung for meeting the target**: :data:`MEET_SHARE` of the workload's credit;
- **a smooth scale for cost**, the rest: full at (or below) the cost of the cheapest reference
  policy that meets the target, falling linearly to nothing at :data:`COST_SCALE_PCT` % dearer;
- a policy that **misses the target** where some reference meets it scores 0 there: an SLO
  missed is not made good by a low bill;
- where **no reference meets the target**, attainment alone decides: full at the best
  reference's attainment, nothing :data:`ATTAINMENT_SCALE_PTS` points below it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TARGET_PCT = 95.0
MEET_SHARE = 0.5
COST_SCALE_PCT = 50.0
ATTAINMENT_SCALE_PTS = 25.0
_EPS = 1e-9  # the model is deterministic: this only absorbs floating-point rounding


@dataclass(frozen=True)
class Point:
    """One policy on one workload."""

    label: str
    slo_pct: float
    cost_usd: float  # per 1M requests


@dataclass(frozen=True)
class Score:
    """A policy's score on one workload, and what it was measured against."""

    value: float  # 0..1
    basis: str  # "met", "missed" or "attainment" (no reference meets the target)
    reference: Point  # the cheapest reference meeting the target (else the best attainment)
    extra_cost_pct: float  # yours against the reference (NaN where the basis is attainment)


def meets(point: Point, target_pct: float = TARGET_PCT) -> bool:
    return point.slo_pct >= target_pct - _EPS


def cost_credit(extra_cost_pct: float) -> float:
    """1 at or below the reference's cost, 0 at :data:`COST_SCALE_PCT` % dearer, linear between."""
    return min(1.0, max(0.0, 1.0 - extra_cost_pct / COST_SCALE_PCT))


def workload_score(yours: Point, references: Sequence[Point],
                   target_pct: float = TARGET_PCT) -> Score:  # fmt: skip
    """``yours`` against the reference policies on one workload (see the module docstring)."""
    if not references:
        raise ValueError("no reference policies to measure against")
    meeting = [p for p in references if meets(p, target_pct)]
    if not meeting:
        best = max(references, key=lambda p: p.slo_pct)
        gap = best.slo_pct - yours.slo_pct
        value = 1.0 if meets(yours, target_pct) else 1.0 - gap / ATTAINMENT_SCALE_PTS
        return Score(min(1.0, max(0.0, value)), "attainment", best, float("nan"))
    cheapest = min(meeting, key=lambda p: p.cost_usd)
    extra = (yours.cost_usd / cheapest.cost_usd - 1.0) * 100.0
    if not meets(yours, target_pct):
        return Score(0.0, "missed", cheapest, extra)
    return Score(MEET_SHARE + (1.0 - MEET_SHARE) * cost_credit(extra), "met", cheapest, extra)


def pareto(points: Iterable[Point]) -> list[Point]:
    """The points no other point is at least as good as in both and better in one, by SLO
    attainment descending (ties: the cheaper first): what the references can reach."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (-p.slo_pct, p.cost_usd)):
        if not front or point.cost_usd < front[-1].cost_usd:
            front.append(point)
    return front
