"""Arrival processes: when requests arrive, in seconds from the start of a run.

Each generator is a pure function of its parameters (and seed): the same call gives the same
arrivals, so runs compare and the simulator replays exactly what the live run sent.

Shapes:
- ``uniform``: one request every ``1/rate`` seconds (constant rate, no randomness).
- ``poisson``: exponential gaps with mean ``1/rate``.
- ``bursty``: on/off modulated Poisson. Every ``period_s`` seconds a burst of ``burst_s``
  seconds arrives at ``burst_rate``; between bursts requests arrive at ``base_rate``. The
  mean rate is ``(burst_rate*burst_s + base_rate*(period_s-burst_s)) / period_s``.
- ``from_csv``: replay of a CSV column of timestamps (seconds; shifted to start at 0).
- ``azure_trace``: the Azure Functions 2019 public trace (per-minute invocation counts,
  columns ``HashOwner,HashApp,HashFunction,Trigger,1..1440``), each minute's requests spread
  uniformly at random within that minute.
"""

from __future__ import annotations

import csv
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np


def _check(name: str, value: float, *, allow_zero: bool = False) -> float:
    if not np.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, not {value!r}")
    return float(value)


#: Each generator's parameters, and whether one may be 0 (the others must be > 0).
_LIMITS: dict[str, tuple[tuple[str, bool], ...]] = {
    "uniform": (("rate", False), ("duration_s", False)),
    "poisson": (("rate", False), ("duration_s", False)),
    "ramp": (("start_rate", True), ("end_rate", False), ("duration_s", False)),
    "bursty": (("base_rate", True), ("burst_rate", False), ("burst_s", False),
               ("period_s", False), ("duration_s", False)),
}  # fmt: skip


def _check_kind(kind: str, **values: float) -> None:
    """``values`` as the ``kind``'s generator takes them, checked (one place for the
    generators and :class:`WorkloadConfig`, which checks on construction)."""
    for name, allow_zero in _LIMITS[kind]:
        _check(name, values[name], allow_zero=allow_zero)
    if kind == "bursty" and values["burst_s"] > values["period_s"]:
        raise ValueError(
            f"burst_s ({values['burst_s']}) must not exceed period_s ({values['period_s']})"
        )


def uniform(rate: float, duration_s: float) -> np.ndarray:
    """Arrivals at ``0, 1/rate, 2/rate, ...`` before ``duration_s``."""
    _check_kind("uniform", rate=rate, duration_s=duration_s)
    return np.arange(0.0, duration_s, 1.0 / rate)


def poisson(rate: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """A Poisson process of ``rate`` requests/s over ``duration_s`` seconds."""
    _check_kind("poisson", rate=rate, duration_s=duration_s)
    rng = np.random.default_rng(seed)
    n = rng.poisson(rate * duration_s)
    return np.sort(rng.uniform(0.0, duration_s, n))


def ramp(start_rate: float, end_rate: float, duration_s: float, seed: int = 0) -> np.ndarray:
    """A Poisson process whose rate rises (or falls) linearly from ``start_rate`` to
    ``end_rate`` over ``duration_s``: where concurrency must grow (thinning of a process at
    the larger rate)."""
    _check_kind("ramp", start_rate=start_rate, end_rate=end_rate, duration_s=duration_s)
    top = max(start_rate, end_rate)
    rng = np.random.default_rng(seed)
    times = np.sort(rng.uniform(0.0, duration_s, rng.poisson(top * duration_s)))
    rate = start_rate + (end_rate - start_rate) * times / duration_s
    return times[rng.uniform(0.0, top, len(times)) < rate]


def bursty(
    base_rate: float,
    burst_rate: float,
    burst_s: float,
    period_s: float,
    duration_s: float,
    seed: int = 0,
) -> np.ndarray:
    """On/off bursts (see the module docstring); bursts start at ``0, period_s, ...``."""
    _check_kind("bursty", base_rate=base_rate, burst_rate=burst_rate, burst_s=burst_s,
                period_s=period_s, duration_s=duration_s)  # fmt: skip
    rng = np.random.default_rng(seed)
    pieces = []
    for start in np.arange(0.0, duration_s, period_s):
        burst_end = min(start + burst_s, duration_s)
        period_end = min(start + period_s, duration_s)
        for lo, hi, rate in ((start, burst_end, burst_rate), (burst_end, period_end, base_rate)):
            if hi > lo and rate > 0:
                pieces.append(rng.uniform(lo, hi, rng.poisson(rate * (hi - lo))))
    return np.sort(np.concatenate(pieces)) if pieces else np.empty(0)


def from_csv(path: str | os.PathLike[str], column: str | int = 0) -> np.ndarray:
    """Timestamps (seconds) from one column of a CSV file, sorted and shifted to start at 0."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise ValueError(f"{path} is empty")
    header = rows[0]
    if isinstance(column, str):
        if column not in header:
            raise ValueError(f"{path} has no column {column!r} (columns: {', '.join(header)})")
        index, rows = header.index(column), rows[1:]
    else:
        index = column
        if not _is_number(rows[0][index]):
            rows = rows[1:]
    try:
        times = np.array([float(r[index]) for r in rows if r and r[index].strip()])
    except ValueError as exc:
        raise ValueError(f"{path}: column {column!r} holds a non-number ({exc})") from None
    if times.size and not np.isfinite(times).all():
        raise ValueError(f"{path}: column {column!r} holds non-finite timestamps")
    times.sort()
    return times - times[0] if times.size else times


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def azure_trace(
    path: str | os.PathLike[str],
    function: str | None = None,
    *,
    minutes: tuple[int, int] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Arrivals of one function of the Azure Functions 2019 trace (per-minute counts).

    ``function`` is its ``HashFunction`` (default: the busiest in the file); ``minutes`` a
    ``(first, last)`` 1-based inclusive range of the 1,440 minute columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [c for c in (reader.fieldnames or []) if c.isdigit()]
        if "HashFunction" not in (reader.fieldnames or []) or not columns:
            raise ValueError(f"{path} is not in the Azure Functions 2019 per-minute format")
        rows = list(reader)
    if function is None:
        row = max(rows, key=lambda r: sum(int(r[c] or 0) for c in columns))
    else:
        matches = [r for r in rows if r["HashFunction"] == function]
        if not matches:
            raise ValueError(f"function {function!r} not in {path}")
        row = matches[0]
    first, last = minutes or (1, len(columns))
    counts = np.array([int(row[str(m)] or 0) for m in range(first, last + 1)])
    return spread_per_minute(counts, seed=seed)


def spread_per_minute(counts: np.ndarray | list[int], seed: int = 0) -> np.ndarray:
    """Arrival times from per-minute counts, uniformly at random within each minute."""
    counts = np.asarray(counts, dtype=np.int64)
    if (counts < 0).any():
        raise ValueError("per-minute counts must be non-negative")
    rng = np.random.default_rng(seed)
    starts = np.repeat(np.arange(len(counts)) * 60.0, counts)
    return np.sort(starts + rng.uniform(0.0, 60.0, starts.size))


@dataclass(frozen=True)
class WorkloadConfig:
    """A workload by name and parameters, as presets and result files hold it."""

    kind: str = "uniform"  # uniform | poisson | bursty | ramp | csv | azure
    rate: float = 20.0  # uniform/poisson: requests per second; ramp: the final rate
    duration_s: float = 30.0
    seed: int = 0
    base_rate: float = 8.0  # bursty: between bursts; ramp: the starting rate
    burst_rate: float = 60.0  # bursty: during bursts
    burst_s: float = 1.0
    period_s: float = 5.0
    trace: str | None = None  # csv/azure: the file
    column: str | int = 0  # csv: the timestamp column
    function: str | None = None  # azure: HashFunction
    name: str | None = None  # how results name it (default: the kind)

    def __post_init__(self) -> None:
        """Its kind's values checked as its generator checks them: a bad one is said where
        the workload is written, not once a search's workers or a cell's payloads are under
        way. (A trace's file is read, and checked, when drawn.)"""
        kind = self.kind.lower()
        if kind in _LIMITS:
            _check_kind(kind, **self._generator_values())
        elif kind not in ("csv", "azure"):
            raise ValueError(
                f"unknown workload {self.kind!r}; known: uniform, poisson, bursty, ramp, csv, azure"
            )
        elif not self.trace:
            raise ValueError(f"workload kind {kind!r} needs trace=<file>")

    def _generator_values(self) -> dict[str, float]:
        """The arguments its kind's generator takes (all but the seed)."""
        kind = self.kind.lower()
        if kind == "ramp":
            return {"start_rate": self.base_rate, "end_rate": self.rate,
                    "duration_s": self.duration_s}  # fmt: skip
        if kind == "bursty":
            return {"base_rate": self.base_rate, "burst_rate": self.burst_rate,
                    "burst_s": self.burst_s, "period_s": self.period_s,
                    "duration_s": self.duration_s}  # fmt: skip
        return {"rate": self.rate, "duration_s": self.duration_s}  # uniform, poisson

    def arrivals(self) -> np.ndarray:
        kind, values = self.kind.lower(), self._generator_values()
        if kind == "uniform":
            return uniform(**values)
        if kind == "poisson":
            return poisson(**values, seed=self.seed)
        if kind == "bursty":
            return bursty(**values, seed=self.seed)
        if kind == "ramp":
            return ramp(**values, seed=self.seed)
        trace = str(self.trace)  # csv or azure, with a trace: checked on construction
        if kind == "csv":
            return from_csv(trace, self.column)
        return azure_trace(trace, self.function, seed=self.seed)

    @property
    def label(self) -> str:
        return self.name or self.kind

    @property
    def mean_rate(self) -> float:
        """Requests per second on average (uniform, poisson, bursty; NaN for the others)."""
        kind = self.kind.lower()
        if kind in ("uniform", "poisson"):
            return float(self.rate)
        if kind == "bursty":
            quiet = self.period_s - self.burst_s
            return (self.burst_rate * self.burst_s + self.base_rate * quiet) / self.period_s
        if kind == "ramp":
            return (self.base_rate + self.rate) / 2
        return float("nan")

    def at_rate(self, rate: float) -> WorkloadConfig:
        """The same shape at another mean rate (requests/s): uniform and Poisson take it as
        their rate; bursty scales its base and burst rates together."""
        import dataclasses

        kind = self.kind.lower()
        if kind in ("uniform", "poisson"):
            return dataclasses.replace(self, rate=rate)
        if kind == "bursty":
            scale = rate / self.mean_rate
            return dataclasses.replace(self, base_rate=self.base_rate * scale,
                                       burst_rate=self.burst_rate * scale)  # fmt: skip
        raise ValueError(f"a {kind} workload has no single rate to change")

    def describe(self) -> str:
        """A short text of the shape, for tables and labels."""
        kind = self.kind.lower()
        if kind in ("uniform", "poisson"):
            return f"{kind} {self.rate:g}/s"
        if kind == "bursty":
            return (f"bursty {self.base_rate:g}/s with {self.burst_s:g} s at {self.burst_rate:g}/s "
                    f"every {self.period_s:g} s")  # fmt: skip
        if kind == "ramp":
            return f"ramp {self.base_rate:g}/s to {self.rate:g}/s"
        return f"{kind} {self.trace}"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def paper_workloads(duration_s: float, uniform_rates: list[float] | tuple[float, ...] = (10.0, 25.0),
                    *, base_rate: float = 8.0, burst_rate: float = 60.0, burst_s: float = 1.0,
                    period_s: float = 5.0, seed: int = 0) -> list[WorkloadConfig]:  # fmt: skip
    """The paper's two shapes as the lab runs them: a uniform stream at each rate (named
    ``uniform-<rate>rps``), then the bursty one (named ``bursty``)."""
    uniform_cells = [WorkloadConfig("uniform", rate=r, duration_s=duration_s, seed=seed,
                                    name=f"uniform-{r:g}rps") for r in uniform_rates]  # fmt: skip
    bursty_cell = WorkloadConfig("bursty", duration_s=duration_s, seed=seed, base_rate=base_rate,
                                 burst_rate=burst_rate, burst_s=burst_s, period_s=period_s)  # fmt: skip
    return [*uniform_cells, bursty_cell]
