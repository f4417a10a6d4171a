"""The assignment's grading: hidden workloads per student, part 2's stated objective, the rubric.

What an instructor signs: a contract break, a crash or a policy that never sends earns 0; the
paper's rule, which misses the SLO target on most workloads, earns clearly less than every
policy that meets it; among policies that meet the target, the cheaper scores higher; and a
cheaper policy that misses the target scores below one that meets it at a modest extra cost."""

from __future__ import annotations

import functools
import json
import re

import pytest

from labkit import paths
from labkit.course import assignment, checker
from labkit.load.batching import (
    BatchingPolicy,
    DynamicBatching,
    NoBatching,
    Request,
    SloAwareBatching,
    StaticBatching,
)

SECRET = "test-secret"


class Delayed(BatchingPolicy):
    """Each request alone, 0.25 s late: every request misses a 200 ms SLO."""

    def offer(self, request: Request, now: float) -> list[list[Request]]:
        self.queue.append(request)
        return self.poll(now)

    def poll(self, now: float) -> list[list[Request]]:
        due = []
        while self.queue and now >= self.queue[0].t_arrive + 0.25:
            due.append(self._take(1))
        return due

    def next_deadline(self) -> float | None:
        return self.queue[0].t_arrive + 0.25 if self.queue else None


class Mine(BatchingPolicy):
    """A student's paper rule, written out (not labkit's class)."""

    def offer(self, request: Request, now: float) -> list[list[Request]]:
        self.queue.append(request)
        batches = self.poll(now)
        if len(self.queue) >= 5:
            batches.append(self._take(5))
        return batches

    def poll(self, now: float) -> list[list[Request]]:
        deadline = self.next_deadline()
        return [self._take(5)] if deadline is not None and now >= deadline else []

    def next_deadline(self) -> float | None:
        return self.queue[0].t_arrive + 0.3 if self.queue else None


class DeadlineAware(BatchingPolicy):
    """Send when the oldest request's deadline, less the modelled service time and a slack,
    is reached, or when ``max_size`` are queued (the master notebook's solution, with knobs)."""

    def __init__(self, max_size: int = 16, slack_s: float = 0.01) -> None:
        super().__init__()
        self.max_size, self.slack_s = max_size, slack_s

    def offer(self, request: Request, now: float) -> list[list[Request]]:
        self.queue.append(request)
        if len(self.queue) >= self.max_size:
            return [self._take(self.max_size)]
        return self.poll(now)

    def next_deadline(self) -> float | None:
        if not self.queue:
            return None
        service_s = 0.015 + 0.001 * (len(self.queue) + 1)
        oldest = self.queue[0]
        return max(oldest.deadline - service_s - self.slack_s, oldest.t_arrive)

    def poll(self, now: float) -> list[list[Request]]:
        deadline = self.next_deadline()
        return [self._take(self.max_size)] if deadline is not None and now >= deadline else []


class Crashes(Mine):
    def poll(self, now: float) -> list[list[Request]]:
        oldest = self.queue[1]  # a student's off-by-one: IndexError with one request queued
        return super().poll(now) if oldest else []


class NeverSends(BatchingPolicy):
    """Holds every request: the flush at the end sends them all, far past the 64 allowed."""

    def offer(self, request: Request, now: float) -> list[list[Request]]:
        self.queue.append(request)
        return []


#: Natural submissions (the issue's table, and what breaks), by name.
STRATEGIES = {
    "paper's rule": Mine,
    "deadline-aware, up to 16": DeadlineAware,
    "deadline-aware, larger slack, up to 8": functools.partial(DeadlineAware, 8, 0.06),
    "dynamic N=8, T=0.15 s": functools.partial(DynamicBatching, 8, 0.15),
    "dynamic N=10, T=0.3 s": functools.partial(DynamicBatching, 10, 0.3),
    "no batching": NoBatching,
    "each alone, 0.25 s late": Delayed,
    "SLO-aware 16": functools.partial(SloAwareBatching, 16),
    "contract break (batches of 100)": functools.partial(StaticBatching, 100),
    "crash": Crashes,
    "never sends": NeverSends,
}


def part2(factory, student: str) -> int:
    return sum(assignment.points(factory, student, secret=SECRET, part=2).values())


def test_hidden_workloads_are_per_student_and_per_secret() -> None:
    alice = assignment.hidden_workloads("alice", SECRET)
    assert alice == assignment.hidden_workloads(" Alice ", SECRET)  # the id as typed
    assert alice != assignment.hidden_workloads("bob", SECRET)
    assert alice != assignment.hidden_workloads("alice", "another course")
    kinds = [w.kind for w in alice.values()]
    assert kinds == ["uniform"] * 2 + ["poisson"] * 3 + ["bursty"] * 2 + ["ramp"]
    assert all(2 <= w.mean_rate <= 40 for w in alice.values() if w.kind != "bursty")
    with pytest.raises(ValueError, match="student_id"):
        assignment.hidden_workloads("  ", SECRET)


def test_the_secret_comes_from_the_environment_or_the_autograders_file(
    tmp_path, monkeypatch
) -> None:
    monkeypatch.delenv(assignment.SECRET_ENV, raising=False)
    with pytest.raises(assignment.SecretMissing, match="hidden tests run in the autograder"):
        assignment.read_secret(tmp_path)
    (tmp_path / assignment.SECRET_FILE).write_text("abc\n")
    assert assignment.read_secret(tmp_path) == "abc"
    monkeypatch.setenv(assignment.SECRET_ENV, "from-env")
    assert assignment.read_secret(tmp_path) == "from-env"


def test_the_notebooks_tests_carry_the_rubrics_points() -> None:
    notebook = json.loads((paths.notebooks_dir() / "assignment_batching_policy.ipynb").read_text())
    found = {}
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        name = re.search(r'assignment\.require\("([\w-]+)"', source)
        if name:
            points = int(re.search(r"points: (\d+)", source).group(1))
            hidden = "hidden: true" in source
            found[name.group(1)] = (points, hidden)
    assert found == {r.name: (r.points, r.hidden) for r in assignment.RUBRIC}
    assert sum(r.points for r in assignment.RUBRIC if r.part == 1) == 40
    assert sum(r.points for r in assignment.RUBRIC if r.part == 2) == 60


def test_part_1_wants_the_rule_written_out() -> None:
    assignment.require("paper-rule-hidden", Mine, "alice", secret=SECRET)
    with pytest.raises(AssertionError, match="written by you"):
        assignment.require("paper-rule-hidden", lambda: DynamicBatching(5, 0.3), "alice",
                           secret=SECRET)  # fmt: skip
    with pytest.raises(AssertionError, match="differs"):
        assignment.require("paper-rule-cases", lambda: StaticBatching(5), secret=SECRET)


@pytest.mark.slow
@pytest.mark.parametrize("student", ["alice", "bob"])
def test_the_grade_orders_strategies_as_the_stated_objective_does(student: str) -> None:
    graded = {}
    for name, factory in STRATEGIES.items():
        points = part2(factory, student)
        try:
            found = assignment.hidden_standing(factory, student, secret=SECRET)
        except checker.ContractViolation:
            found = None
        graded[name] = (points, found)
    for broken in ("contract break (batches of 100)", "crash", "never sends"):
        assert graded[broken] == (0, None), broken
    assert graded["each alone, 0.25 s late"][0] == 10  # the contract's points, nothing more
    paper_points, paper = graded["paper's rule"]
    assert paper_points < 18  # under 30 % of part 2
    meeting = {
        n: (p, s) for n, (p, s) in graded.items() if s is not None and s.table["meets_target"].all()
    }
    assert {"deadline-aware, up to 16", "dynamic N=8, T=0.15 s", "SLO-aware 16",
            "deadline-aware, larger slack, up to 8", "no batching"} <= set(meeting)  # fmt: skip
    for name, (points, found) in meeting.items():
        assert points >= paper_points + 15, name  # clearly above the paper's rule
        assert found.score > paper.score + 0.3, name
    by_cost = sorted(meeting.values(), key=lambda ps: ps[1].table["cost_1m_usd"].mean())
    scores = [found.score for _, found in by_cost]
    assert scores == sorted(scores, reverse=True)  # among those meeting it, the cheaper higher
    assert len(set(scores)) == len(scores)
    points = [p for p, _ in by_cost]
    assert points == sorted(points, reverse=True)
    cheap_miss, modest = graded["dynamic N=10, T=0.3 s"], graded["dynamic N=8, T=0.15 s"]
    assert cheap_miss[1].table["cost_1m_usd"].mean() < modest[1].table["cost_1m_usd"].mean()
    assert cheap_miss[1].score < modest[1].score and cheap_miss[0] < modest[0]
    assert graded["deadline-aware, up to 16"][0] >= 36  # at least 60 % of part 2


def test_a_failed_rung_says_what_was_measured() -> None:
    with pytest.raises(AssertionError) as caught:
        assignment.require("score-50", Mine, "alice", secret=SECRET)
    message = str(caught.value)
    assert "part 2's score >= 0.5 on the hidden workloads: yours is 0." in message
    assert "Meets the target (95 % within 200 ms) on" in message
    assert "hidden-1" in message and "cost_1m_usd_reference" in message
    with pytest.raises(checker.ContractViolation):
        assignment.require("policy-contract-hidden", lambda: StaticBatching(100), "alice",
                           secret=SECRET)  # fmt: skip
