"""What a run measured: one record per request, one per invocation, and a cell's files.

The two record types are the schema every producer writes and every reader expects: the
live load generator, the simulator and the analysis all go through this module, so a column
is named, typed and ordered in exactly one place. Times are seconds since the run's start
(``t_*_s``); durations are milliseconds (``*_ms``).

A *cell* is one folder (DESIGN.md "Results on disk")::

    config.json          the full configuration (whatever the caller saved)
    environment.json     versions, machine and backend facts
    requests.parquet     one row per request (:class:`RequestRecord`)
    invocations.parquet  one row per invocation (:class:`InvocationRecord`)
    status.json          running | complete | incomplete | failed, why, wall time, counts

Writing and reading a cell's folder is :mod:`labkit.journal`'s, which builds on this schema.

This module imports no other labkit module: it is the bottom of the package.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from operator import attrgetter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

CONFIG_FILE = "config.json"
ENVIRONMENT_FILE = "environment.json"
REQUESTS_FILE = "requests.parquet"
INVOCATIONS_FILE = "invocations.parquet"
STATUS_FILE = "status.json"
MATRIX_FILE = "matrix.json"


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """What happened to one request (one image), from its scheduled arrival to its answer.

    ``latency_ms`` is ``t_done_s - t_arrive_s`` (DESIGN.md): waiting for the batch, the
    invocation and any cold start. A request never answered has NaN times and an ``error``
    (``NotSent``, ``Abandoned``, or its invocation's error type)."""

    request_id: int
    t_arrive_s: float  # scheduled arrival
    t_release_s: float  # when the load generator released it (NaN: never)
    batch_id: int  # -1: never in a batch
    batch_size: float  # NaN: never in a batch
    t_dispatch_s: float  # its batch left the policy
    t_done_s: float  # the client had the answer
    latency_ms: float
    label: int  # the true digit (-1 when unknown, e.g. simulated)
    predicted: float  # the function's answer (NaN: none)
    correct: bool
    cold_start: bool  # its invocation carried Init Duration
    init_duration_ms: float  # NaN unless its invocation was a cold start
    billed_duration_ms: float
    error: str | None


@dataclass(frozen=True, slots=True)
class InvocationRecord:
    """One invocation (one batch; a warm-up has ``batch_size`` 0) with its REPORT figures."""

    batch_id: int
    batch_size: int
    t_dispatch_s: float  # the policy sent the batch
    t_start_s: float  # a worker started the call (after any wait for a free slot)
    t_done_s: float  # the call returned
    round_trip_ms: float  # the last attempt's request to response, as the client saw it
    throttles: int  # 429s retried before it got through (or gave up)
    cold_start: bool
    init_duration_ms: float  # NaN on warm invocations
    duration_ms: float
    billed_duration_ms: float
    memory_size_mb: float
    max_memory_used_mb: float
    error: str | None
    aws_request_id: str | None


REQUEST_COLUMNS: list[str] = [f.name for f in fields(RequestRecord)]
INVOCATION_COLUMNS: list[str] = [f.name for f in fields(InvocationRecord)]

_REQUEST_DTYPES = {"request_id": "int64", "batch_id": "int64", "label": "int64",
                   "correct": "bool", "cold_start": "bool", "error": "object"}  # fmt: skip
_INVOCATION_DTYPES = {"batch_id": "int64", "batch_size": "int64", "throttles": "int64",
                      "cold_start": "bool", "error": "object", "aws_request_id": "object"}  # fmt: skip
# Column names of runs saved before the schema carried units (read, never written).
LEGACY_COLUMN_NAMES = {f"t_{name}": f"t_{name}_s" for name in ("arrive", "release", "dispatch", "start", "done")}  # fmt: skip


def _frame(rows: Iterable[Any], columns: list[str], dtypes: Mapping[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame(list(map(attrgetter(*columns), rows)), columns=columns)
    return _typed(frame, columns, dtypes)


def _typed(columns: Mapping[str, Any], names: list[str], dtypes: Mapping[str, str]) -> pd.DataFrame:
    return pd.DataFrame({name: _typed_column(columns[name], dtypes.get(name, "float64"))
                         for name in names}, columns=names)  # fmt: skip


def _typed_column(values: Any, kind: str) -> Any:
    """One column in the schema's type: missing objects as ``None``, missing flags as
    ``False``, anything numeric coerced. Why a numpy path: the simulator hands whole numpy
    columns of the right kind, and converting them through pandas took ~10 ms a cell, 40 %
    of a 90 s simulated cell (``bench/simulate.py``; notebook 05's inverse fit runs 640)."""
    if isinstance(values, np.ndarray) and values.dtype.kind in "biuf":
        if kind == "bool" and values.dtype.kind == "b":
            return values
        if kind == "float64" or (kind == "int64" and values.dtype.kind in "iu"):
            return values.astype(kind, copy=False)
    if kind == "object" and not isinstance(values, pd.Series):
        column = np.empty(len(values), dtype=object)
        column[:] = list(values)
        column[pd.isna(column)] = None
        return pd.Series(column, dtype=object, copy=False)  # a bare array would become str
    series = values if isinstance(values, pd.Series) else pd.Series(values)
    if kind == "object":
        return series.astype(object).where(series.notna(), None)
    if kind == "bool":
        return series.astype("boolean").fillna(False).astype(bool)
    return pd.to_numeric(series, errors="coerce").astype(kind)


def requests_frame(records: Iterable[RequestRecord]) -> pd.DataFrame:
    """A table of request records, one row each, in the schema's column order and types."""
    return _frame(records, REQUEST_COLUMNS, _REQUEST_DTYPES)


def invocations_frame(records: Iterable[InvocationRecord]) -> pd.DataFrame:
    """A table of invocation records, sorted by ``batch_id``."""
    frame = _frame(records, INVOCATION_COLUMNS, _INVOCATION_DTYPES)
    return frame.sort_values("batch_id", kind="stable").reset_index(drop=True)


def requests_from_columns(columns: Mapping[str, Any]) -> pd.DataFrame:
    """The request table from whole columns (the simulator's fast path); every field of
    :class:`RequestRecord` must be given, and nothing else."""
    return _typed(_checked(columns, REQUEST_COLUMNS), REQUEST_COLUMNS, _REQUEST_DTYPES)


def invocations_from_columns(columns: Mapping[str, Any]) -> pd.DataFrame:
    """The invocation table from whole columns, sorted by ``batch_id``."""
    frame = _typed(_checked(columns, INVOCATION_COLUMNS), INVOCATION_COLUMNS, _INVOCATION_DTYPES)
    return frame.sort_values("batch_id", kind="stable").reset_index(drop=True)


def _checked(columns: Mapping[str, Any], names: list[str]) -> Mapping[str, Any]:
    missing, extra = set(names) - set(columns), set(columns) - set(names)
    if missing or extra:
        raise ValueError(f"columns do not match the record schema: missing {sorted(missing)}, "
                         f"unknown {sorted(extra)}")  # fmt: skip
    lengths = {len(columns[name]) for name in names}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return columns


# ----------------------------------------------------------------------------- files
def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write JSON atomically (a reader never sees half a file); NaN is written as null."""
    path = Path(path)
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(_strict(data), indent=2, default=str, allow_nan=False))
    os.replace(tmp, path)


def _strict(value: Any) -> Any:
    """``value`` with non-finite floats as ``None``: JSON has no NaN or Infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_strict(v) for v in value]
    return value


def read_json(path: str | os.PathLike[str]) -> Any:
    return json.loads(Path(path).read_text())


@dataclass
class LoadResult:
    """What a run produced: one row per request, one per invocation, and how it ended."""

    requests: pd.DataFrame
    invocations: pd.DataFrame
    complete: bool
    stopped_by: str | None = None  # "KeyboardInterrupt", an exception's text, or None
    wall_s: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
