"""Every table as people read it: latencies to 0.1 ms, percentages to 0.1, costs to three
significant digits, whole numbers whole, and no NaN (a dash) in what the CLI and report print."""

from __future__ import annotations

import math

import pandas as pd

from labkit.analysis import numbers


def test_each_kind_of_column_has_its_rule() -> None:
    table = pd.DataFrame({
        "cell": ["static", "dynamic"], "n": [120, 0], "p99_ms": [155.3252, math.nan],
        "slo_attainment_pct": [38.3562, 100.0], "cost_per_1m_requests_usd": [0.178432, 0.0021],
        "cold_starts": [2.0, 12_000.0], "mean_batch_size": [4.98765, 1.0], "duration_s": [30.0, 5.0],
    })  # fmt: skip
    shown = numbers.readable(table)
    assert shown.to_dict("list") == {
        "cell": ["static", "dynamic"], "n": ["120", "0"], "p99_ms": ["155.3", "-"],
        "slo_attainment_pct": ["38.4", "100.0"], "cost_per_1m_requests_usd": ["0.178", "0.00210"],
        "cold_starts": ["2", "12,000"], "mean_batch_size": ["4.99", "1"], "duration_s": ["30.00", "5.00"],
    }  # fmt: skip
    assert "nan" not in numbers.text(table).lower()
    assert "| 155.3 " in numbers.markdown(table) and "| 100.0 " in numbers.markdown(table)


def test_significant_digits() -> None:
    assert [numbers.significant(v) for v in (269.136, 0.012345, 1234.5, 0.0)] == [
        "269", "0.0123", "1,234", "0"]  # fmt: skip
