"""Metrics agree with numpy on known data; SLO counting; bootstrap intervals; repetitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit import metrics


def records(
    latencies: list[float], errors: list[str | None] | None = None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    n = len(latencies)
    errors = errors or [None] * n
    requests = pd.DataFrame({
        "request_id": range(n), "t_arrive_s": np.arange(n) * 0.1, "latency_ms": latencies,
        "error": errors, "correct": [e is None for e in errors], "batch_id": range(n),
    })  # fmt: skip
    invocations = pd.DataFrame({
        "batch_id": range(n), "batch_size": [1] * n, "throttles": [0] * n,
        "init_duration_ms": [500.0] + [None] * (n - 1), "billed_duration_ms": [600] + [100] * (n - 1),
    })  # fmt: skip
    return requests, invocations


def test_percentiles_agree_with_numpy() -> None:
    rng = np.random.default_rng(0)
    lat = rng.lognormal(4, 1, 999).tolist()
    figures = metrics.summarize(*records(lat))
    assert figures["mean_ms"] == pytest.approx(np.mean(lat))
    assert figures["p50_ms"] == pytest.approx(np.percentile(lat, 50))
    assert figures["p99_ms"] == pytest.approx(np.percentile(lat, 99))
    assert figures["max_ms"] == pytest.approx(max(lat))
    assert figures["n"] == 999


def test_slo_attainment_counts_failures_as_misses() -> None:
    lat = [100.0, 150.0, 200.0, 250.0, 50.0]
    errors = [None, None, None, None, "ValueError"]
    figures = metrics.summarize(*records(lat, errors), slo_ms=200)
    assert figures["slo_attainment_pct"] == pytest.approx(60.0)  # 3 of 5; the failure misses
    assert figures["errors"] == 1
    assert figures["mean_ms"] == pytest.approx(175.0)  # latency stats over answered requests
    assert metrics.slo_attainment_pct([10.0, float("nan")], 200) == 50.0


def test_cold_starts_and_cost() -> None:
    figures = metrics.summarize(*records([10.0] * 4))
    assert figures["cold_starts"] == 1 and figures["init_duration_ms"] == 500.0
    gb_s = (600 + 3 * 100) / 1000
    assert figures["cost_usd"] == pytest.approx(gb_s * 0.0000166667 + 4 * 0.2e-6)
    assert figures["cost_per_1m_requests_usd"] == pytest.approx(figures["cost_usd"] / 4 * 1e6)


def test_warmup_cut() -> None:
    req, inv = records([1000.0, 1000.0, 10.0, 10.0])
    assert metrics.summarize(req, inv, warmup_s=0.15)["mean_ms"] == 10.0
    with pytest.raises(ValueError, match="warmup_s"):
        metrics.summarize(req, inv, warmup_s=-1)


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
    req, _ = records([100.0] * 50 + [300.0] * 50)
    ci = metrics.confidence_intervals(req, slo_ms=200, n_boot=300)
    assert ci["slo_attainment_pct"][0] < 50 < ci["slo_attainment_pct"][1]
    assert set(ci) == {"mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct"}


def test_aggregate_repetitions() -> None:
    runs = pd.DataFrame({"cell": ["a", "a", "a", "b"], "p99_ms": [10.0, 12.0, 20.0, 5.0]})
    out = metrics.aggregate_repetitions(runs, ["cell"]).set_index("cell")
    assert out.loc["a", "p99_ms"] == 12.0 and out.loc["a", "p99_ms_spread"] == 10.0
    assert out.loc["a", "repetitions"] == 3 and out.loc["b", "repetitions"] == 1
