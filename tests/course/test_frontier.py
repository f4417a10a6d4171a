"""The SLO-cost plane: Pareto fronts, dominance with margins, the additive epsilon indicator."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.course.frontier import Point, dominates, epsilon, pareto


def test_dominance_needs_no_worse_in_both_and_better_by_a_margin_in_one() -> None:
    paper = Point("paper", 80.0, 0.10)
    assert dominates(Point("a", 90.0, 0.10), paper)
    assert dominates(Point("b", 80.0, 0.09), paper)
    assert not dominates(Point("c", 80.2, 0.1), paper)  # within the half-point margin
    assert not dominates(Point("d", 100.0, 0.11), paper)  # better SLO, dearer
    assert not dominates(paper, paper)


def test_the_front_keeps_only_points_nothing_beats() -> None:
    points = [Point("a", 100, 0.3), Point("b", 90, 0.2), Point("c", 90, 0.25), Point("d", 50, 0.2),
              Point("e", 60, 0.1)]  # fmt: skip
    assert [p.label for p in pareto(points)] == ["a", "b", "e"]


def test_epsilon_by_hand() -> None:
    targets = [Point("t1", 100, 0.12), Point("t2", 90, 0.10)]
    # 80 % at 0.10 (paper cost 0.10): 10 points short of t2, or 20 points and 20 % of t1.
    assert epsilon(Point("x", 80, 0.10), targets, 0.10) == pytest.approx(10)
    assert epsilon(Point("y", 95, 0.105), targets, 0.10) == pytest.approx(5)  # t1 by 5 points
    assert epsilon(Point("z", 100, 0.09), targets, 0.10) == 0.0  # beyond the targets
    with pytest.raises(ValueError, match="positive"):
        epsilon(Point("x", 1, 1), targets, 0.0)


points = st.builds(Point, st.just("p"), st.floats(0, 100), st.floats(0.01, 1.0))


@given(st.lists(points, min_size=1, max_size=30))
def test_front_points_have_epsilon_zero_and_are_not_dominated(sample: list[Point]) -> None:
    front = pareto(sample)
    for point in front:
        assert epsilon(point, front, 0.1) == 0.0
        assert not any(other.slo_pct >= point.slo_pct and other.cost_usd < point.cost_usd
                       for other in sample)  # fmt: skip
    for point in sample:
        assert epsilon(point, front, 0.1) >= 0.0
