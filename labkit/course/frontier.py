"""The SLO-cost plane: Pareto frontiers, dominance and distance to a frontier.

A policy run on a workload is a :class:`Point`: SLO attainment (percent, higher is better)
and cost per 1M requests (USD, lower is better). Comparing points across workloads needs a
common unit, so cost is taken *relative to a reference cost* (the paper's policy on the same
workload = 100): one SLO point and one per cent of cost weigh the same.

:func:`epsilon` is the additive epsilon indicator of one point against a set of targets: the
smallest improvement, in SLO points and per cent of cost at once, after which the point
would be at least as good as some target in both. It is 0 on or beyond the targets and
grows with the distance; it is the standard quality measure for approximations of a Pareto
front (Zitzler et al., "Performance assessment of multiobjective optimizers", IEEE TEC 2003).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

#: Margins below which two figures count as equal: half an SLO point, half a per cent of cost
#: (the model is deterministic; these only absorb rounding, not noise).
SLO_MARGIN_PCT = 0.5
COST_MARGIN_PCT = 0.5


@dataclass(frozen=True)
class Point:
    """One policy on one workload."""

    label: str
    slo_pct: float
    cost_usd: float  # per 1M requests


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` in both and better by a margin in one."""
    no_worse = a.slo_pct >= b.slo_pct - 1e-9 and a.cost_usd <= b.cost_usd * (1 + 1e-9)
    better = (a.slo_pct >= b.slo_pct + SLO_MARGIN_PCT
              or a.cost_usd <= b.cost_usd * (1 - COST_MARGIN_PCT / 100))  # fmt: skip
    return no_worse and better


def pareto(points: Iterable[Point]) -> list[Point]:
    """The points no other point is at least as good as in both and better in one, by SLO
    attainment descending (ties: the cheaper first)."""
    front: list[Point] = []
    for point in sorted(points, key=lambda p: (-p.slo_pct, p.cost_usd)):
        if not front or point.cost_usd < front[-1].cost_usd:
            front.append(point)
    return front


def epsilon(point: Point, targets: Iterable[Point], reference_cost_usd: float) -> float:
    """How far ``point`` is from being at least as good as one of ``targets``: the smallest
    ``e >= 0`` such that ``slo + e >= target.slo`` and ``cost% - e <= target.cost%`` for some
    target, with cost in per cent of ``reference_cost_usd``."""
    if reference_cost_usd <= 0:
        raise ValueError(f"reference cost must be positive, not {reference_cost_usd!r}")
    scale = 100.0 / reference_cost_usd
    gaps = [max(t.slo_pct - point.slo_pct, (point.cost_usd - t.cost_usd) * scale, 0.0)
            for t in targets]  # fmt: skip
    if not gaps:
        raise ValueError("no targets to measure against")
    return min(gaps)
