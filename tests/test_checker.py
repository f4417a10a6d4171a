"""The course checker catches every kind of contract break and scores deterministically."""

from __future__ import annotations

from pathlib import Path

import pytest

from labkit import checker
from labkit.batching import BatchingPolicy, DynamicBatching, NoBatching, Request, StaticBatching


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
    assert checker.grade(factory)["points"] == 0


def test_the_papers_policy_scores_full_marks_against_itself() -> None:
    result = checker.grade(lambda: DynamicBatching(5, 0.3))
    assert result["contract"] == "passed" and result["points"] == 100


def test_scoring_is_deterministic_and_sensible() -> None:
    first = checker.score(NoBatching)
    assert first.equals(checker.score(NoBatching))
    # No batching meets the SLO everywhere but pays a request fee per image.
    assert first["slo_pct"].min() == 100.0
    assert (first["cost_1m_usd"] > first["cost_1m_usd_paper"]).all()


def test_evaluate_by_hand() -> None:
    from labkit.workloads import WorkloadConfig

    figures = checker.evaluate(
        lambda: StaticBatching(2), WorkloadConfig("uniform", rate=10, duration_s=0.2)
    )
    # arrivals 0.0 and 0.1 leave together at 0.1: latencies 100+17 and 0+17 ms
    assert figures["mean_ms"] == pytest.approx((117 + 17) / 2)
    assert figures["invocations"] == 1


@pytest.mark.slow
def test_assignment_notebook_executes(tmp_path: Path) -> None:
    import papermill

    from labkit import paths
    from tests.notebook_runs import error_outputs

    out = tmp_path / "assignment.ipynb"
    papermill.execute_notebook(str(paths.notebooks_dir() / "assignment_batching_policy.ipynb"), str(out),
                               kernel_name="python3", progress_bar=False,
                               cwd=str(paths.notebooks_dir()))  # fmt: skip
    assert error_outputs(out) == []
    assert "points: 100 of 100" in out.read_text()
