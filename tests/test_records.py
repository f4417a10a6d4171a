"""The one record schema: typed columns in one order, files that round-trip, nothing lost."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit import journal, records
from tests.cells import fake_cell


def request(i: int, **changes: object) -> records.RequestRecord:
    base = records.RequestRecord(
        request_id=i, t_arrive_s=0.1 * i, t_release_s=0.1 * i, batch_id=i // 2, batch_size=2,
        t_dispatch_s=0.1 * i, t_done_s=0.1 * i + 0.05, latency_ms=50.0, label=7, predicted=7,
        correct=True, cold_start=False, init_duration_ms=math.nan, billed_duration_ms=3.0,
        error=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_columns_are_the_record_fields_with_units_in_their_names() -> None:
    assert records.REQUEST_COLUMNS[:2] == ["request_id", "t_arrive_s"]
    for name in records.REQUEST_COLUMNS + records.INVOCATION_COLUMNS:
        if name.startswith("t_"):
            assert name.endswith("_s"), name
    with pytest.raises(dataclasses.FrozenInstanceError):
        request(0).latency_ms = 1.0  # type: ignore[misc]


def test_frames_have_one_dtype_per_column_whatever_the_rows_hold() -> None:
    rows = [request(0), request(1, predicted=math.nan, correct=False, error="NotSent",
                                    batch_size=math.nan, t_done_s=math.nan)]  # fmt: skip
    frame = records.requests_frame(rows)
    assert list(frame.columns) == records.REQUEST_COLUMNS
    assert frame["request_id"].dtype == np.int64 and frame["correct"].dtype == bool
    assert frame["batch_size"].dtype == float and frame["error"].tolist() == [None, "NotSent"]


def test_column_builders_refuse_a_schema_mismatch() -> None:
    columns = {name: [1] for name in records.INVOCATION_COLUMNS}
    del columns["throttles"]
    with pytest.raises(ValueError, match=r"missing \['throttles'\]"):
        records.invocations_from_columns(columns)
    columns = {name: [1] for name in records.INVOCATION_COLUMNS} | {"extra": [2]}
    with pytest.raises(ValueError, match=r"unknown \['extra'\]"):
        records.invocations_from_columns(columns)


def test_numpy_columns_and_plain_lists_give_the_same_typed_table() -> None:
    """The simulator's numpy columns take a fast path; lists (a journal's) go through pandas.
    Both must give the schema's types, NaN as missing, None for a missing object."""
    rows = [request(0), request(1, predicted=math.nan, correct=False, error="NotSent",
                                    t_done_s=math.nan, label=3)]  # fmt: skip
    from_rows = records.requests_frame(rows)
    as_lists = {name: [getattr(r, name) for r in rows] for name in records.REQUEST_COLUMNS}
    as_arrays = {name: np.asarray(values) for name, values in as_lists.items()}
    as_arrays["error"] = np.array([None, "NotSent"], dtype=object)
    for columns in (as_lists, as_arrays):
        pd.testing.assert_frame_equal(records.requests_from_columns(columns), from_rows)
    flags = as_arrays | {"cold_start": np.array([np.nan, 1.0]), "error": [math.nan, "x"]}
    coerced = records.requests_from_columns(flags)
    assert coerced["cold_start"].tolist() == [False, True]
    assert coerced["error"].tolist() == [None, "x"]
    with pytest.raises(ValueError, match="different lengths"):
        records.requests_from_columns(as_arrays | {"label": np.array([1, 2, 3])})


def test_a_saved_cell_loads_back_identical(tmp_path: Path) -> None:
    folder = fake_cell(tmp_path / "cell", "dynamic", "uniform", 100)
    cell = journal.load_cell(folder)
    assert cell.name == "cell" and cell.status["status"] == "complete"
    assert cell.config["policy"]["kind"] == "dynamic"
    assert list(cell.requests.columns) == records.REQUEST_COLUMNS
    again = tmp_path / "again"
    again.mkdir()
    records.write_json(again / records.CONFIG_FILE, cell.config)
    journal.save_cell(again, cell.requests, cell.invocations, cell.environment, cell.status)
    pd.testing.assert_frame_equal(journal.load_cell(again).requests, cell.requests)


def test_save_refuses_frames_of_another_schema(tmp_path: Path) -> None:
    frame = pd.DataFrame({"latency": [1.0]})
    with pytest.raises(ValueError, match="not the schema"):
        journal.save_cell(tmp_path, frame, frame, {}, {})


def test_runs_saved_before_units_were_in_the_names_still_load(tmp_path: Path) -> None:
    folder = fake_cell(tmp_path / "old", "static", "bursty", 100)
    for name in (records.REQUESTS_FILE, records.INVOCATIONS_FILE):
        frame = pd.read_parquet(folder / name)
        frame.rename(columns=lambda c: c[:-2] if c.startswith("t_") else c).to_parquet(
            folder / name
        )
    assert "t_arrive_s" in journal.load_cell(folder).requests.columns


def test_json_is_written_atomically_and_strictly(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    records.write_json(path, {"a": math.nan, "b": [np.float64(math.inf), np.int64(3)]})
    assert json.loads(path.read_text()) == {"a": None, "b": [None, 3]}
    assert not list(tmp_path.glob("*.part"))


def test_cell_folders_follow_the_matrix_order(tmp_path: Path) -> None:
    for name in ("b", "a"):
        fake_cell(tmp_path / name, "static", "uniform", 10)
    records.write_json(tmp_path / records.MATRIX_FILE, {"cells": ["b", "a", "missing"]})
    assert [p.name for p in journal.cell_folders(tmp_path)] == ["b", "a"]
    assert journal.cell_folders(tmp_path / "a") == [tmp_path / "a"]
    with pytest.raises(FileNotFoundError, match="no experiment records"):
        journal.load_cell(tmp_path)
