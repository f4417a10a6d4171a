"""Verdicts on the paper's claims: the rule, its intervals from repetitions, identical
batches, Table 1's estimand, unreplicated and thin-tailed claims, Holm, the reasons."""

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
def run(tmp_path: Path) -> Path:
    return paper_run(tmp_path)


@pytest.fixture
def verdicts(run: Path) -> dict[tuple[str, str], object]:
    table = claims.evaluate(report.load_run(run), n_boot=200)
    return {(r.workload, r.metric): r for r in table.itertuples()}


def test_a_clear_change_on_the_papers_side_is_reproduced_on_the_repetitions(
    verdicts: dict,
) -> None:
    """Bursty mean: static 305, 309, 313 ms against dynamic 125, 128, 131 ms."""
    mean = verdicts[("bursty", "mean_ms")]
    assert mean.ours_change == pytest.approx((128 - 309) / 309 * 100)
    per_rep = [(125 + 3 * r - 305 - 4 * r) / (305 + 4 * r) * 100 for r in range(3)]
    half = 4.302653 * np.std(per_rep, ddof=1) / np.sqrt(3)  # Student's t, 2 degrees of freedom
    assert (mean.ci_low, mean.ci_high) == pytest.approx(
        (mean.ours_change - half, mean.ours_change + half)
    )
    assert mean.method == "repetitions" and mean.repetitions == 3
    assert mean.verdict == "reproduced" and mean.holm_verdict == "reproduced"
    assert "timeout" in mean.reason
    slo = verdicts[("bursty", "slo_attainment_pct")]  # 0 % -> 100 % within 200 ms
    assert slo.ours_change == pytest.approx(100.0)
    assert slo.verdict == "reproduced"  # every repetition moved 100 points: zero spread


def test_identical_batches_make_a_claim_inconclusive_whatever_the_cells_show(
    verdicts: dict,
) -> None:
    """At 20 requests/s (above (N-1)/T = 13.3/s) static and dynamic send the same batches: the
    fake cells differ (155 vs 105 ms), but that cannot be an effect of batching."""
    mean = verdicts[("uniform", "mean_ms")]
    assert mean.ours_change < -30 and mean.verdict == "inconclusive"
    assert "same batches" in mean.reason and "(N-1)/T = 13.3/s" in mean.reason
    assert np.isnan(mean.holm_p)  # not in the family the interval rule judged


def test_init_is_one_claim_for_the_run(verdicts: dict) -> None:
    inits = [key for key in verdicts if key[1] == "init_duration_ms"]
    assert inits == [(claims.ALL_WORKLOADS, "init_duration_ms")]
    init = verdicts[inits[0]]
    assert init.ours_change == 0 and init.verdict == "inconclusive"
    assert (init.n_static, init.n_dynamic) == (6, 6)  # one cold start per cell, 2 workloads x 3
    assert "cannot depend on the batching policy" in init.reason
    paper = (np.mean([4369.02, 4842.20]) - np.mean([8250.38, 6416.08])) / np.mean(
        [8250.38, 6416.08]
    )
    assert init.paper_change == pytest.approx(paper * 100)


def test_the_cost_claim_judges_what_table_1_shows(run: Path, verdicts: dict) -> None:
    cells = report.load_run(run)
    table = report.table1(cells).set_index(["batching", "workload"])
    for metric in ("cost_per_1m_requests_usd", "warm_cost_per_1m_requests_usd"):
        row = verdicts[("bursty", metric)]
        assert row.ours_static == pytest.approx(table.loc[("static", "bursty"), metric])
        assert row.ours_dynamic == pytest.approx(table.loc[("dynamic", "bursty"), metric])
    total, warm = (
        verdicts[("bursty", "cost_per_1m_requests_usd")],
        verdicts[("bursty", "warm_cost_per_1m_requests_usd")],
    )
    assert warm.ours_static < total.ours_static  # the init is out of the warm bill
    assert "Init gap" in total.reason and "warm cost" in total.reason
    assert "part of the bill batching controls" in warm.reason


def test_one_repetition_decides_nothing_and_says_why(tmp_path: Path) -> None:
    table = claims.evaluate(report.load_run(paper_run(tmp_path, repetitions=1)), n_boot=200)
    judged = table[table["verdict"] != "inconclusive"]  # uniform 20/s: the same batches
    assert set(judged["verdict"]) == {"unreplicated"} and len(judged) == 7
    mean = table.set_index(["workload", "metric"]).loc[("bursty", "mean_ms")]
    assert "1 repetition(s), and a claim needs 3" in mean["reason"]
    assert "holds 6 whole 5 s periods, and blocks alike in kind need 10" in mean["reason"]
    assert "all the same" not in claims.family_sentence(table)
    assert "No claim was judged" in claims.family_sentence(table)


def test_a_p99_on_a_handful_of_requests_is_too_thin_to_judge(verdicts: dict) -> None:
    p99 = verdicts[("bursty", "p99_ms")]  # 150 requests a side, all at one latency
    assert p99.verdict == "tail too thin" and p99.above_p99_static < 10
    assert "rests on 0 and 0 requests above it" in p99.reason


def test_a_wide_tail_is_judged(tmp_path: Path) -> None:
    """3 x 400 requests a side with a spread of latencies: 4 above the p99 per cell, 12 pooled."""
    for r in range(3):
        fake_cell(tmp_path / f"static-bursty-r{r}", "static", "bursty", 300 + 4 * r, n=400,
                  repetition=r, spread_ms=100)  # fmt: skip
        fake_cell(tmp_path / f"dynamic-bursty-r{r}", "dynamic", "bursty", 120 + 3 * r, n=400,
                  repetition=r, spread_ms=100)  # fmt: skip
    table = claims.evaluate(report.load_run(tmp_path), n_boot=0).set_index("metric")
    assert table.loc["p99_ms", "above_p99_static"] >= 10
    assert table.loc["p99_ms", "verdict"] == "reproduced"
    assert "above p99" in claims.table(table.reset_index()).loc[2, "rests on"]


def test_a_change_against_the_paper_is_contradicted(tmp_path: Path) -> None:
    for r in range(3):
        fake_cell(tmp_path / f"static-bursty-r{r}", "static", "bursty", 100 + r, repetition=r)
        fake_cell(tmp_path / f"dynamic-bursty-r{r}", "dynamic", "bursty", 200 + 3 * r, repetition=r)
    table = claims.evaluate(report.load_run(tmp_path), n_boot=100).set_index("metric")
    assert table.loc["mean_ms", "verdict"] == "contradicted"
    assert "other way" in table.loc["mean_ms", "reason"]


def test_repetitions_pair_by_number_and_incomplete_cells_are_left_out(tmp_path: Path) -> None:
    """Dynamic's repetitions saved in the opposite order, and static's third stopped early:
    repetition r pairs with repetition r, and the stopped cell's partner is left out too."""
    for r in (2, 1, 0):
        fake_cell(
            tmp_path / f"a{2 - r}-dynamic-r{r}", "dynamic", "bursty", 120 + 30 * r, repetition=r
        )
    for r in range(3):
        fake_cell(tmp_path / f"b-static-r{r}", "static", "bursty", 300 + 30 * r, repetition=r,
                  status="stopped" if r == 2 else "complete")  # fmt: skip
    table = claims.evaluate(report.load_run(tmp_path), n_boot=0).set_index("metric")
    mean = table.loc["mean_ms"]
    assert mean["repetitions"] == 2 and mean["verdict"] == "unreplicated"
    assert mean["ours_static"] == pytest.approx(320.0) and mean["ours_dynamic"] == pytest.approx(
        140.0
    )
    left_out = mean["reason"].split("Left out (incomplete, or no complete partner): ")[1]
    assert sorted(left_out.rstrip(".").split(", ")) == ["a0-dynamic-r2", "b-static-r2"]


def test_holm_keeps_only_what_survives_the_family(tmp_path: Path) -> None:
    """A change whose own p-value is just under 5 % is decided alone, not among others."""
    from labkit.analysis import inference

    adjusted = inference.holm([0.01, 0.04, 0.03, np.nan, 0.005])  # the textbook example, and a gap
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, np.nan, 0.02], nan_ok=True)
    table = claims.evaluate(report.load_run(paper_run(tmp_path)), n_boot=0)
    judged = table[table["holm_p"].notna()]
    assert (judged["holm_p"] >= judged["p_value"]).all()
    weak = judged["p_value"].between(0.0, 0.05, inclusive="neither") & (judged["holm_p"] >= 0.05)
    assert (table.loc[weak[weak].index, "holm_verdict"] == "inconclusive").all()
    sentence = claims.family_sentence(table)
    assert f"{len(judged)} claims were judged" in sentence and "Holm" in sentence


@pytest.mark.parametrize(
    ("paper", "low", "high", "expected"),
    [(-47, -10.3, 7.5, "differs"), (-20, -30, -10, "consistent"), (-20, -19, -10, "differs"),
     (-20, np.nan, np.nan, "-")],
)  # fmt: skip
def test_magnitude_says_whether_the_papers_change_lies_in_our_interval(
    paper: float, low: float, high: float, expected: str
) -> None:
    assert claims.magnitude(paper, low, high) == expected


def test_the_table_carries_magnitude_beside_direction(verdicts: dict) -> None:
    mean = verdicts[("bursty", "mean_ms")]  # ours about -59 % +- 2, the paper's -15.5 %
    assert mean.verdict == "reproduced" and mean.magnitude == "differs"
    assert verdicts[("bursty", "p99_ms")].magnitude == "-"  # not judged: no magnitude either


def test_same_batches_is_checked_by_replaying_both_policies(tmp_path: Path) -> None:
    import dataclasses

    from labkit.load.batching import PolicyConfig
    from labkit.load.workloads import WorkloadConfig

    cells = report.load_run(paper_run(tmp_path, repetitions=1))
    static = [c for c in cells if c.name == "static-uniform"]
    dynamic = [c for c in cells if c.name == "dynamic-uniform"]
    assert claims.same_batches(static, dynamic)  # 20/s: batches fill before 0.3 s
    slow = WorkloadConfig("uniform", rate=10)
    for cell in (*static, *dynamic):
        cell.config = dataclasses.replace(cell.config, workload=slow)
    assert not claims.same_batches(static, dynamic)  # 10/s: the timeout fires
    assert PolicyConfig("dynamic").timeout_s == 0.3
