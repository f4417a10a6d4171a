"""Metrics agree with numpy on known data; SLO counting; bootstrap intervals; repetitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import metrics


def records(
    latencies: list[float], errors: list[str | None] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One request per invocation, the first a cold start; nothing waited."""
    n = len(latencies)
    errors = errors or [None] * n
    t = np.arange(n) * 0.1
    requests = pd.DataFrame({
        "request_id": range(n), "t_arrive_s": t, "latency_ms": latencies,
        "error": errors, "correct": [e is None for e in errors], "batch_id": range(n),
    })  # fmt: skip
    invocations = pd.DataFrame({
        "batch_id": range(n), "batch_size": [1] * n, "throttles": [0] * n,
        "t_dispatch_s": t, "t_start_s": t, "t_done_s": t + 0.05, "round_trip_ms": [50.0] * n,
        "cold_start": [True] + [False] * (n - 1),
        "init_duration_ms": [500.0] + [None] * (n - 1), "billed_duration_ms": [600] + [100] * (n - 1),
    })  # fmt: skip
    return requests, invocations


def test_percentiles_agree_with_numpy() -> None:
    rng = np.random.default_rng(0)
    lat = rng.lognormal(4, 1, 999).tolist()
    figures = metrics.summarize(*records(lat), view="all")
    assert figures["mean_ms"] == pytest.approx(np.mean(lat))
    assert figures["p50_ms"] == pytest.approx(np.percentile(lat, 50))
    assert figures["p99_ms"] == pytest.approx(np.percentile(lat, 99))
    assert figures["max_ms"] == pytest.approx(max(lat))
    assert figures["n"] == 999


def test_slo_attainment_counts_failures_as_misses() -> None:
    lat = [100.0, 150.0, 200.0, 250.0, 50.0]
    errors = [None, None, None, None, "ValueError"]
    figures = metrics.summarize(*records(lat, errors), slo_ms=200, view="all")
    assert figures["slo_attainment_pct"] == pytest.approx(60.0)  # 3 of 5; the failure misses
    assert figures["errors"] == 1
    assert figures["mean_ms"] == pytest.approx(175.0)  # latency stats over answered requests
    assert metrics.slo_attainment_pct([10.0, float("nan")], 200) == 50.0


def test_cold_starts_and_cost() -> None:
    figures = metrics.summarize(*records([10.0] * 4))
    assert figures["cold_starts"] == 1 and figures["init_mean_ms"] == 500.0
    assert figures["init_total_ms"] == 500.0
    gb_s = (600 + 3 * 100) / 1000
    assert figures["cost_usd"] == pytest.approx(gb_s * 0.0000166667 + 4 * 0.2e-6)
    assert figures["cost_per_1m_requests_usd"] == pytest.approx(figures["cost_usd"] / 4 * 1e6)


def test_a_cold_start_whose_init_time_the_log_does_not_tell_still_counts() -> None:
    """A cold start seen from its INIT_START line alone has no init time (NaN): it counts as
    a cold start; the init figures are over the cold starts that tell theirs."""
    requests, invocations = records([10.0] * 3)
    invocations["cold_start"] = [True, True, False]
    invocations["init_duration_ms"] = [500.0, np.nan, np.nan]
    figures = metrics.summarize(requests, invocations)
    assert figures["cold_starts"] == 2 and figures["init_mean_ms"] == 500.0


def timeline() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Six invocations of one request each around a cold start from 0 to 3 s."""
    inv = pd.DataFrame({
        "batch_id": range(6), "batch_size": [1] * 6,
        "t_dispatch_s": [0.0, 0.5, 1.0, 4.0, 1.5, 5.0],
        "t_start_s": [0.0, 0.5, 3.0, 4.0, 1.5, 5.5],  # 2 waited for a slot; 5 waited later
        "t_done_s": [3.0, 0.6, 3.1, 4.1, 3.6, 5.6],
        "round_trip_ms": [3000.0, 100, 100, 100, 100, 100],  # 4: last attempt 3.5 s (429s)
        "throttles": [0, 0, 0, 0, 6, 0], "cold_start": [True] + [False] * 5,
        "init_duration_ms": [2500.0] + [None] * 5, "billed_duration_ms": [2600] + [100] * 5,
    })  # fmt: skip
    req = pd.DataFrame({"request_id": range(7), "batch_id": [0, 1, 2, 3, 4, 5, -1],
                        "t_arrive_s": [0, 0.5, 1.0, 4.0, 1.5, 5.0, 6.0],
                        "latency_ms": [3000, 100, 2100, 100, 2100, 600, np.nan],
                        "error": [None] * 6 + ["NotSent"], "correct": [True] * 6 + [False]})  # fmt: skip
    return req, inv


def test_the_cold_start_rule() -> None:
    """Delayed: the cold invocation's requests (0), those that waited while it was in flight,
    for a slot (2) or in 429 back-off (4). Not: one served beside it by a free instance (1),
    one after it (3), one that waited when no cold start was in flight (5), one never sent."""
    req, inv = timeline()
    assert metrics.cold_delayed(req, inv).tolist() == [True, False, True, False, True, False, False]


def test_the_steady_state_leaves_out_what_cold_starts_delayed() -> None:
    req, inv = timeline()
    steady = metrics.summarize(req, inv, view="steady", slo_ms=200)
    everything = metrics.summarize(req, inv, view="all", slo_ms=200)
    assert steady["n"] == 4 and everything["n"] == 7
    assert steady["mean_ms"] == pytest.approx((100 + 100 + 600) / 3)
    assert steady["slo_attainment_pct"] == pytest.approx(50.0)  # 1, 3 met; 5 late; NotSent
    assert steady["cold_delayed"] == everything["cold_delayed"] == 3
    assert steady["cost_usd"] == everything["cost_usd"]  # cost is the whole cell's
    with pytest.raises(ValueError, match="view"):
        metrics.summarize(req, inv, view="warm")


def test_pooled_cells_keep_their_own_clocks() -> None:
    """A cell that starts cold must not mark another cell's requests at the same seconds."""
    cold_req, cold_inv = timeline()
    warm_req, warm_inv = timeline()
    warm_inv = warm_inv.assign(cold_start=False, init_duration_ms=None)
    pooled = metrics.pooled([(cold_req, cold_inv), (warm_req, warm_inv)], view="steady")
    assert pooled["cold_delayed"] == 3 and pooled["n"] == 4 + 7


def test_bootstrap_interval_covers_the_estimate_and_narrows_with_n() -> None:
    rng = np.random.default_rng(1)
    small, large = rng.normal(100, 10, 100), rng.normal(100, 10, 10_000)
    lo, hi = metrics.bootstrap_ci(small, "mean_ms")
    assert lo < small.mean() < hi
    lo2, hi2 = metrics.bootstrap_ci(large, "mean_ms", n_boot=300)
    assert hi2 - lo2 < (hi - lo) / 3
    p_lo, p_hi = metrics.bootstrap_ci(large, "p99_ms", n_boot=200)
    assert p_lo <= np.percentile(large, 99) <= p_hi


def test_confidence_intervals_include_slo() -> None:
    req, inv = records([100.0] * 50 + [300.0] * 50)
    ci = metrics.confidence_intervals(req, inv, slo_ms=200, n_boot=300, view="all")
    assert ci["slo_attainment_pct"][0] < 50 < ci["slo_attainment_pct"][1]
    assert set(ci) == {"mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct"}


def test_aggregate_repetitions() -> None:
    runs = pd.DataFrame({"cell": ["a", "a", "a", "b"], "p99_ms": [10.0, 12.0, 20.0, 5.0]})
    out = metrics.aggregate_repetitions(runs, ["cell"]).set_index("cell")
    assert out.loc["a", "p99_ms"] == 12.0 and out.loc["a", "p99_ms_spread"] == 10.0
    assert out.loc["a", "repetitions"] == 3 and out.loc["b", "repetitions"] == 1


def test_a_change_is_in_points_for_slo_attainment_and_in_per_cent_otherwise() -> None:
    assert metrics.change("slo_attainment_pct", 90.0, 95.5) == pytest.approx(5.5)
    assert metrics.change("mean_ms", 200.0, 150.0) == pytest.approx(-25.0)
    assert np.isnan(metrics.change("mean_ms", 0.0, 10.0))
    assert np.isnan(metrics.change("p99_ms", float("nan"), 10.0))
