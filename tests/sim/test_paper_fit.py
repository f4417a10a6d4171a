"""The inverse fit finds a setting it was given, and says what no setting reaches."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from labkit.analysis import report
from labkit.load.workloads import WorkloadConfig
from labkit.sim import paper_fit
from labkit.sim.simulate import PlatformProfile

SMALL = {"distances_ms": (0.0, 40.0), "uniform_rates": (6.0, 12.0, 30.0), "bursty_candidates": 2,
         "duration_s": 40.0}  # fmt: skip


def test_it_recovers_a_setting_the_model_itself_produced() -> None:
    """A 'paper' made by the model at 40 ms and 12/s: the search scores it zero there."""
    base = PlatformProfile.load("paper-aws")
    model = paper_fit._profile(base, 40.0, 0)
    rng = np.random.default_rng(0)  # the first bursty shape the search will try
    burst_s, base_rate = float(rng.uniform(0.25, 3.0)), float(rng.uniform(1.0, 30.0))
    bursty = WorkloadConfig("bursty", duration_s=40.0, base_rate=base_rate,
                            burst_rate=base_rate * float(rng.uniform(1.5, 15.0)), burst_s=burst_s,
                            period_s=burst_s + float(rng.uniform(0.5, 15.0)))  # fmt: skip
    rows = []
    for kind, workload in (("uniform", WorkloadConfig("uniform", rate=12.0, duration_s=40.0)),
                           ("bursty", bursty)):  # fmt: skip
        for batching, figures in paper_fit._figures(workload, model, 0).items():
            rows.append({"batching": batching, "workload": kind, **figures})
    fit = paper_fit.inverse_fit(pd.DataFrame(rows), **SMALL)
    assert fit.settings["distance_ms"] == 40.0 and fit.settings["uniform_rate"] == 12.0
    assert fit.settings["score"] == pytest.approx(0.0, abs=1e-9)
    assert fit.evaluated == 2 * (3 + 2) and len(fit.table) == 16


def test_the_findings_about_the_papers_uniform_claim() -> None:
    fit = paper_fit.inverse_fit(report.paper_table1(), **SMALL)
    assert len(fit.uniform) == 6 and set(fit.uniform["distance_ms"]) == {0.0, 40.0}
    assert fit.findings and fit.findings[0].startswith("Uniform load")
    text = paper_fit.findings_text(fit)
    assert "Best setting of 10 simulated" in text and "network round trip" in text
