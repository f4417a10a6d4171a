"""Part 2's objective, by hand and by property: a rung for meeting the SLO target, then a
smooth scale for cost against the cheapest reference that meets it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from labkit.course.objective import Point, cost_credit, pareto, workload_score

REFERENCES = [Point("paper", 80, 0.10), Point("safe", 99, 0.20), Point("cheap-ok", 96, 0.15)]


def test_scores_by_hand() -> None:
    at_reference = workload_score(Point("y", 97, 0.15), REFERENCES)
    assert (at_reference.value, at_reference.basis) == (1.0, "met")
    assert at_reference.reference.label == "cheap-ok"  # the cheapest that meets 95 %
    dearer = workload_score(Point("y", 100, 0.18), REFERENCES)  # 20 % dearer: 60 % of the half
    assert dearer.value == pytest.approx(
        0.5 + 0.5 * 0.6
    ) and dearer.extra_cost_pct == pytest.approx(20)
    assert workload_score(Point("y", 100, 0.30), REFERENCES).value == 0.5  # met, far too dear
    assert workload_score(Point("y", 99, 0.05), REFERENCES).value == 1.0  # cheaper than any
    missed = workload_score(Point("y", 94.9, 0.05), REFERENCES)
    assert (missed.value, missed.basis) == (0.0, "missed")


def test_where_no_reference_meets_the_target_attainment_alone_counts() -> None:
    hard = [Point("a", 70, 0.1), Point("b", 80, 0.3)]
    assert workload_score(Point("y", 80, 9.9), hard).value == 1.0
    half = workload_score(Point("y", 67.5, 0.01), hard)
    assert (half.value, half.basis, half.reference.label) == (0.5, "attainment", "b")
    assert math.isnan(half.extra_cost_pct)
    assert workload_score(Point("y", 40, 0.01), hard).value == 0.0
    with pytest.raises(ValueError, match="no reference"):
        workload_score(Point("y", 40, 0.01), [])


def test_cost_credit_is_one_at_the_reference_and_zero_at_half_again() -> None:
    assert [cost_credit(x) for x in (-10, 0, 25, 50, 80)] == [1.0, 1.0, 0.5, 0.0, 0.0]


slo = st.floats(0, 100)
cost = st.floats(0.01, 1.0)
points = st.builds(Point, st.just("r"), slo, cost)


@given(st.lists(points, min_size=1, max_size=20), slo, cost, cost)
def test_cheaper_never_scores_less_and_meeting_beats_missing(refs, pct, a, b) -> None:
    cheap, dear = sorted((a, b))
    assert (
        workload_score(Point("y", pct, cheap), refs).value
        >= workload_score(Point("y", pct, dear), refs).value
    )
    if any(r.slo_pct >= 95 for r in refs):
        met = workload_score(Point("y", 95, dear), refs).value
        assert met >= 0.5 > workload_score(Point("y", 94.0, cheap), refs).value


def test_the_front_keeps_only_points_nothing_beats() -> None:
    found = pareto([Point("a", 100, 0.3), Point("b", 90, 0.2), Point("c", 90, 0.25),
                    Point("d", 50, 0.2), Point("e", 40, 0.1)])  # fmt: skip
    assert [p.label for p in found] == ["a", "b", "e"]
