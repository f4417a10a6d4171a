"""Verdicts on the paper's claims: the rule, its intervals, identical batches, the reasons."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.analysis import claims, report
from tests.cells import fake_cell, paper_run


@pytest.mark.parametrize(
    ("paper", "low", "high", "expected"),
    [(-20, -30, -10, "reproduced"), (-20, 5, 12, "contradicted"), (-20, -5, 3, "inconclusive"),
     (4, 1, 6, "reproduced"), (4, -6, -1, "contradicted"), (4, -0.5, 0.5, "inconclusive"),
     (4, 0.0, 0.0, "inconclusive"), (0, -3, -1, "inconclusive"), (-5, np.nan, np.nan, "inconclusive")],
)  # fmt: skip
def test_the_verdict_rule(paper: float, low: float, high: float, expected: str) -> None:
    assert claims.verdict(paper, low, high) == expected


@pytest.fixture
def verdicts(tmp_path: Path) -> dict[tuple[str, str], object]:
    table = claims.evaluate(report.load_run(paper_run(tmp_path)), n_boot=200)
    return {(r.workload, r.metric): r for r in table.itertuples()}


def test_a_clear_change_on_the_papers_side_is_reproduced(verdicts: dict) -> None:
    mean = verdicts[("bursty", "mean_ms")]  # 305 -> 125 ms
    assert mean.ours_change == pytest.approx((125 - 305) / 305 * 100)
    assert mean.ci_low <= mean.ours_change <= mean.ci_high < 0
    assert mean.verdict == "reproduced" and "timeout" in mean.reason
    slo = verdicts[("bursty", "slo_attainment_pct")]  # 0 % -> 100 % within 200 ms
    assert slo.ours_change == pytest.approx(100.0) and slo.verdict == "reproduced"


def test_identical_batches_make_a_claim_inconclusive_whatever_the_cells_show(
    verdicts: dict,
) -> None:
    """At 20 requests/s (above (N-1)/T = 13.3/s) static and dynamic send the same batches: the
    fake cells differ (155 vs 105 ms), but that cannot be an effect of batching."""
    mean = verdicts[("uniform", "mean_ms")]
    assert mean.ours_change < -30 and mean.verdict == "inconclusive"
    assert "same batches" in mean.reason and "(N-1)/T = 13.3/s" in mean.reason


def test_no_change_is_inconclusive_and_init_is_explained(verdicts: dict) -> None:
    init = verdicts[("bursty", "init_duration_ms")]  # both 2,000 ms
    assert init.ours_change == 0 and init.verdict == "inconclusive"
    assert "cannot depend on the batching policy" in init.reason
    cost = verdicts[("bursty", "cost_per_1m_requests_usd")]
    assert "Init gap" in cost.reason and "%" in cost.reason


def test_a_change_against_the_paper_is_contradicted(tmp_path: Path) -> None:
    from labkit.load.workloads import WorkloadConfig

    fake_cell(tmp_path / "static-bursty", "static", "bursty", 100)
    fake_cell(tmp_path / "dynamic-bursty", "dynamic", "bursty", 200)
    table = claims.evaluate(report.load_run(tmp_path), n_boot=100).set_index("metric")
    assert table.loc["mean_ms", "verdict"] == "contradicted"
    assert "other way" in table.loc["mean_ms", "reason"]
    assert WorkloadConfig("bursty").kind == "bursty"


def test_same_batches_is_checked_by_replaying_both_policies(tmp_path: Path) -> None:
    import dataclasses

    from labkit.load.batching import PolicyConfig
    from labkit.load.workloads import WorkloadConfig

    cells = report.load_run(paper_run(tmp_path))
    static = [c for c in cells if c.name == "static-uniform"]
    dynamic = [c for c in cells if c.name == "dynamic-uniform"]
    assert claims.same_batches(static, dynamic)  # 20/s: batches fill before 0.3 s
    slow = WorkloadConfig("uniform", rate=10)
    for cell in (*static, *dynamic):
        cell.config = dataclasses.replace(cell.config, workload=slow)
    assert not claims.same_batches(static, dynamic)  # 10/s: the timeout fires
    assert PolicyConfig("dynamic").timeout_s == 0.3
