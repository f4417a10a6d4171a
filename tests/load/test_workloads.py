"""Arrival generators: deterministic for a seed, the documented shapes, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labkit.load import workloads
from labkit.load.workloads import WorkloadConfig


def test_uniform_is_evenly_spaced() -> None:
    times = workloads.uniform(20, 3)
    assert len(times) == 60 and np.allclose(np.diff(times), 0.05)


def test_poisson_rate_and_determinism() -> None:
    a, b = workloads.poisson(50, 200, seed=3), workloads.poisson(50, 200, seed=3)
    assert np.array_equal(a, b)
    assert len(a) / 200 == pytest.approx(50, rel=0.05)
    assert not np.array_equal(a, workloads.poisson(50, 200, seed=4))


def test_bursty_shape() -> None:
    times = workloads.bursty(
        base_rate=5, burst_rate=100, burst_s=1, period_s=5, duration_s=500, seed=1
    )
    in_burst = (times % 5) < 1
    assert in_burst.sum() / 100 == pytest.approx(100, rel=0.1)  # 100 bursts of 1 s at 100/s
    assert (~in_burst).sum() / 400 == pytest.approx(5, rel=0.1)  # 400 quiet s at 5/s
    assert np.all(np.diff(times) >= 0)


def test_bursty_without_base_traffic_is_silent_between_bursts() -> None:
    times = workloads.bursty(0, 50, 0.5, 2, 20, seed=0)
    assert ((times % 2) < 0.5).all()


def test_csv_replay(tmp_path: Path) -> None:
    path = tmp_path / "trace.csv"
    path.write_text("timestamp,other\n10.5,x\n10.0,y\n12.0,z\n")
    assert list(workloads.from_csv(path, "timestamp")) == [0.0, 0.5, 2.0]
    headerless = tmp_path / "plain.csv"
    headerless.write_text("3\n1\n2\n")
    assert list(workloads.from_csv(headerless)) == [0.0, 1.0, 2.0]
    with pytest.raises(ValueError, match="no column 'missing'"):
        workloads.from_csv(path, "missing")
    with pytest.raises(FileNotFoundError):
        workloads.from_csv(tmp_path / "absent.csv")


def test_azure_trace_spreads_each_minute(tmp_path: Path) -> None:
    path = tmp_path / "invocations_per_function_md.anon.d01.csv"
    header = "HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(m) for m in range(1, 4))
    path.write_text(f"{header}\no,a,quiet,http,1,0,2\no,a,busy,http,30,0,60\n")
    times = workloads.azure_trace(path, seed=0)  # the busiest function by default
    assert len(times) == 90
    assert ((times >= 0) & (times < 60)).sum() == 30 and (
        (times >= 120) & (times < 180)
    ).sum() == 60
    assert len(workloads.azure_trace(path, "quiet")) == 3
    assert len(workloads.azure_trace(path, "busy", minutes=(3, 3))) == 60
    with pytest.raises(ValueError, match="not in"):
        workloads.azure_trace(path, "nope")


@pytest.mark.parametrize(
    "call",
    [lambda: workloads.uniform(0, 10), lambda: workloads.poisson(-1, 10),
     lambda: workloads.bursty(1, 10, 6, 5, 10), lambda: workloads.uniform(1, float("nan")),
     lambda: WorkloadConfig("zipf").arrivals(), lambda: WorkloadConfig("csv").arrivals()],
)  # fmt: skip
def test_bad_parameters_are_refused(call) -> None:
    with pytest.raises(ValueError):
        call()


@pytest.mark.parametrize(("given", "said"), [
    ({"kind": "poisson", "rate": -1}, "rate must be > 0, not -1"),
    ({"kind": "uniform", "duration_s": 0}, "duration_s must be > 0"),
    ({"kind": "bursty", "burst_s": 6, "period_s": 5}, "burst_s .6. must not exceed period_s"),
    ({"kind": "ramp", "base_rate": -2}, "start_rate must be >= 0"),
    ({"kind": "zipf"}, "unknown workload 'zipf'"),
    ({"kind": "csv"}, "needs trace=<file>"),
])  # fmt: skip
def test_a_bad_workload_is_refused_where_it_is_written(given: dict, said: str) -> None:
    """On construction, not when drawn: before a search's workers or a cell's payloads."""
    with pytest.raises(ValueError, match=said):
        WorkloadConfig(**given)


def test_config_round_trips() -> None:
    config = WorkloadConfig("bursty", duration_s=10, seed=2)
    assert np.array_equal(config.arrivals(), WorkloadConfig(**config.as_dict()).arrivals())


def test_ramp_rises_linearly_and_is_seeded() -> None:
    ramp = workloads.ramp
    arrivals = ramp(10, 90, 100.0, seed=1)
    first, last = (arrivals < 10).sum(), (arrivals >= 90).sum()
    # expected 10 s x 14/s = 140 and 10 s x 86/s = 860 (Poisson: within ~4 sigma)
    assert abs(first - 140) < 50 and abs(last - 860) < 120
    assert abs(len(arrivals) - 5000) < 300 and np.all(np.diff(arrivals) >= 0)
    config = WorkloadConfig("ramp", base_rate=10, rate=90, duration_s=100.0, seed=1)
    assert np.array_equal(config.arrivals(), arrivals)
    assert not np.array_equal(ramp(10, 90, 100.0, seed=2), arrivals)
