"""The assignment's grading: hidden workloads per student, the frontier score, the rubric.

What the issue asks of the score: the paper's own rule earns clearly less than full marks in
part 2 (below half), a dominated or contract-breaking policy less still, and a policy that is
better on the hidden workloads more."""

from __future__ import annotations

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
    """Each request alone, 0.25 s late: dearer than the paper's rule and later (dominated)."""

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
def test_matching_the_paper_is_not_beating_it(student: str) -> None:
    paper = part2(Mine, student)
    assert paper < 30  # below half of part 2's 60 points
    assert part2(Delayed, student) < paper  # dominated by the paper's rule
    assert part2(lambda: StaticBatching(100), student) == 0  # breaks the contract (max 64)
    better = part2(lambda: SloAwareBatching(16), student)
    assert better > paper + 12
    standing = assignment.hidden_standing(lambda: SloAwareBatching(16), student, secret=SECRET)
    paper_standing = assignment.hidden_standing(Mine, student, secret=SECRET)
    assert standing.mean_credit > paper_standing.mean_credit
    assert paper_standing.dominated_share == 0.0  # the paper's rule never beats itself
    assert part2(NoBatching, student) <= paper  # always on time, but dear at every rate


def test_a_failed_rung_says_what_was_measured() -> None:
    with pytest.raises(AssertionError) as caught:
        assignment.require("credit-95", Mine, "alice", secret=SECRET)
    message = str(caught.value)
    assert "mean frontier credit >= 0.95 on the hidden workloads: yours is 0." in message
    assert "hidden-1" in message and "slo_pct_paper" in message
    with pytest.raises(checker.ContractViolation):
        assignment.require("policy-contract-hidden", lambda: StaticBatching(100), "alice",
                           secret=SECRET)  # fmt: skip
