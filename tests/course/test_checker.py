"""The course checker catches every kind of contract break, compares with the paper's rule,
and shows a crashing policy's own traceback."""

from __future__ import annotations

import pandas as pd
import pytest

from labkit.course import checker
from labkit.load.batching import (
    BatchingPolicy,
    DynamicBatching,
    NoBatching,
    Request,
    SloAwareBatching,
    StaticBatching,
)


class Dropping(StaticBatching):
    def flush(self, now: float) -> list[list[Request]]:
        self.queue = []  # forgets the rest
        return []


class Duplicating(NoBatching):
    def offer(self, request: Request, now: float) -> list[list[Request]]:
        return [[request], [request]] if request.id == 3 else [[request]]


class Reordering(StaticBatching):
    def offer(self, request: Request, now: float) -> list[list[Request]]:
        return [list(reversed(b)) for b in super().offer(request, now)]


class Early(BatchingPolicy):
    """Sends a batch at a time before its request arrived (a broken clock)."""

    def offer(self, request: Request, now: float) -> list[list[Request]]:
        self.queue.append(request)
        return []

    def next_deadline(self) -> float | None:
        return self.queue[-1].t_arrive - 1.0 if self.queue else None

    def poll(self, now: float) -> list[list[Request]]:
        return [self._take(len(self.queue))] if self.queue else []


@pytest.mark.parametrize(
    ("factory", "message"),
    [(lambda: Dropping(7), "never sent"), (Duplicating, "is in batches"),
     (lambda: Reordering(3), "reorders"), (Early, "before it arrived"),
     (lambda: StaticBatching(100), "max 64")],
)  # fmt: skip
def test_contract_violations_are_caught(factory, message: str) -> None:
    with pytest.raises(checker.ContractViolation, match=message):
        checker.check_contract(factory)


def test_the_papers_policy_keeps_the_contract_and_matches_itself() -> None:
    checker.check_contract(lambda: DynamicBatching(5, 0.3))
    checker.same_batches_as_paper(lambda: DynamicBatching(5, 0.3), checker.PAPER_RULE_CASES)


@pytest.mark.parametrize(
    ("factory", "yours"),
    [(lambda: DynamicBatching(5, 0.25), r"\[10, 11\] at 0.350 s"),
     (lambda: DynamicBatching(4, 0.3), r"\[0, 1, 2, 3\] at 0.030 s"),
     (lambda: StaticBatching(5), r"\[10, 11\] at 0.110 s")],
)  # fmt: skip
def test_a_rule_that_is_not_the_papers_is_told_where_it_differs(factory, yours: str) -> None:
    expected = (
        rf"^size .*: batch \d+ differs. The paper's rule sends requests .*; yours sends {yours}"
    )
    with pytest.raises(AssertionError, match=expected):
        checker.same_batches_as_paper(factory, checker.PAPER_RULE_CASES)


class Crashing(DynamicBatching):
    def poll(self, now: float) -> list[list[Request]]:
        batch = self.queue[:1]
        return [batch] if self.queue[5].t_arrive else []  # IndexError on a short queue


def test_a_crashing_policy_shows_its_own_traceback() -> None:
    with pytest.raises(checker.ContractViolation) as caught:
        checker.check_contract(lambda: Crashing(5, 0.3))
    message = str(caught.value)
    assert "IndexError: list index out of range" in message
    assert f'File "{__file__}"' in message and "in poll" in message
    assert "self.queue[5].t_arrive" in message  # the student's line, quoted
    assert "labkit/load/batching.py" not in message and "labkit/course/checker.py" not in message


def test_evaluation_is_deterministic_and_sensible() -> None:
    workload = checker.CHECK_WORKLOADS["poisson"]
    first = checker.evaluate(NoBatching, workload)
    assert pd.Series(first).equals(pd.Series(checker.evaluate(NoBatching, workload)))
    paper = checker.evaluate(lambda: DynamicBatching(5, 0.3), workload)
    # No batching meets the SLO everywhere but pays a request fee per image.
    assert first["slo_attainment_pct"] == 100.0
    assert first["cost_per_1m_requests_usd"] > paper["cost_per_1m_requests_usd"]


@pytest.mark.parametrize("name", sorted(checker.CHECK_WORKLOADS))
def test_the_grades_two_figures_equal_the_full_evaluation(name: str) -> None:
    workload = checker.CHECK_WORKLOADS[name]
    for factory in (NoBatching, lambda: DynamicBatching(5, 0.3), lambda: DynamicBatching(16, 0.05),
                    lambda: SloAwareBatching(16), lambda: StaticBatching(8)):  # fmt: skip
        full = checker.evaluate(factory, workload)
        slo, usd = checker.slo_and_cost(factory, workload)
        assert slo == pytest.approx(full["slo_attainment_pct"], abs=1e-9)
        assert usd == pytest.approx(full["cost_per_1m_requests_usd"], rel=1e-12)
