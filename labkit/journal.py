"""A cell on disk: its records journalled as they complete, saved at its end, read back.

While a cell runs, each finished invocation appends its request records and its invocation
record, one JSON array per line, to ``requests.jsonl`` and ``invocations.jsonl`` in the
cell's folder: one ``write`` per file per invocation, on a descriptor opened for appending,
so what was written is in the operating system's hands even if the process is killed the
next moment (SIGKILL loses only invocations still in flight). When the cell ends normally,
:func:`save_cell` writes the Parquet files and :meth:`Journal.discard`
removes the journal; :func:`load_cell` reads a cell back, and a journal left behind by a
killed run as an incomplete cell.

Why not append to Parquet: a Parquet file is readable only once its footer is written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path
from typing import Any

import pandas as pd

from labkit import records

REQUESTS = "requests.jsonl"
INVOCATIONS = "invocations.jsonl"
_REQUEST_VALUES = attrgetter(*records.REQUEST_COLUMNS)
_INVOCATION_VALUES = attrgetter(*records.INVOCATION_COLUMNS)


class Journal:
    """The append-only record files of one running cell (thread-safe)."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._fds = {
            name: os.open(self.folder / name, flags, 0o644) for name in (REQUESTS, INVOCATIONS)
        }
        self._lock = threading.Lock()

    def append(self, requests: Iterable[records.RequestRecord],
               invocation: records.InvocationRecord) -> None:  # fmt: skip
        """Record one finished invocation and its requests."""
        request_lines = "".join(json.dumps(_REQUEST_VALUES(r)) + "\n" for r in requests)
        invocation_line = json.dumps(_INVOCATION_VALUES(invocation)) + "\n"
        with self._lock:
            if self._fds:
                _write_all(self._fds[REQUESTS], request_lines.encode())
                _write_all(self._fds[INVOCATIONS], invocation_line.encode())

    def close(self) -> None:
        with self._lock:
            for fd in self._fds.values():
                os.close(fd)
            self._fds = {}

    def discard(self) -> None:
        """Close and remove the journal (the cell's Parquet files hold everything now)."""
        self.close()
        for name in (REQUESTS, INVOCATIONS):
            (self.folder / name).unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def exists(folder: str | os.PathLike[str]) -> bool:
    return (Path(folder) / REQUESTS).is_file()


def read(folder: str | os.PathLike[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The (requests, invocations) frames a journal holds; a last line cut short by a kill
    is skipped."""
    folder = Path(folder)
    frames = []
    for name, columns, make in ((REQUESTS, records.REQUEST_COLUMNS, records.requests_from_columns),
                                (INVOCATIONS, records.INVOCATION_COLUMNS,
                                 records.invocations_from_columns)):  # fmt: skip
        rows = []
        path = folder / name
        for line in path.read_text().splitlines() if path.is_file() else ():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # the line being written when the process died
        table = pd.DataFrame(rows, columns=columns)
        frames.append(make({c: table[c].to_numpy() for c in columns}))
    requests = frames[0].sort_values("request_id", kind="stable").reset_index(drop=True)
    return requests, frames[1]


@dataclass(frozen=True)
class SavedCell:
    """One cell as it lies on disk; ``config`` is the raw mapping the runner saved."""

    folder: Path
    config: dict[str, Any]
    environment: dict[str, Any]
    status: dict[str, Any]
    requests: pd.DataFrame
    invocations: pd.DataFrame

    @property
    def name(self) -> str:
        return self.folder.name


def save_cell(
    folder: str | os.PathLike[str],
    requests: pd.DataFrame,
    invocations: pd.DataFrame,
    environment: Mapping[str, Any],
    status: Mapping[str, Any],
) -> None:
    """Write a cell's records, facts and status into ``folder`` (which must exist)."""
    folder = Path(folder)
    for frame, name, columns in ((requests, records.REQUESTS_FILE, records.REQUEST_COLUMNS),
                                 (invocations, records.INVOCATIONS_FILE, records.INVOCATION_COLUMNS)):  # fmt: skip
        if list(frame.columns) != columns:
            raise ValueError(f"{name}: columns {list(frame.columns)} are not the schema's")
        tmp = folder / (name + ".part")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, folder / name)
    records.write_json(folder / records.ENVIRONMENT_FILE, dict(environment))
    records.write_json(folder / records.STATUS_FILE, dict(status))


def is_cell(folder: str | os.PathLike[str]) -> bool:
    """Whether ``folder`` holds a cell's records (saved, or journalled by a run that died)."""
    return (Path(folder) / records.REQUESTS_FILE).is_file() or exists(folder)


#: What a cell's status says when its process died before saving it.
KILLED = "killed before its records were saved: read from its journal (requests never answered are missing)"


def load_cell(folder: str | os.PathLike[str]) -> SavedCell:
    """A saved cell; ``FileNotFoundError`` when ``folder`` holds no records. A cell whose run
    was killed (its journal, no Parquet files) loads with status ``incomplete``."""
    folder = Path(folder)
    if not is_cell(folder):
        raise FileNotFoundError(f"{folder} holds no experiment records ({records.REQUESTS_FILE})")
    status = (
        records.read_json(folder / records.STATUS_FILE)
        if (folder / records.STATUS_FILE).is_file()
        else {}
    )
    environment = folder / records.ENVIRONMENT_FILE
    if (folder / records.REQUESTS_FILE).is_file():
        requests = pd.read_parquet(folder / records.REQUESTS_FILE).rename(
            columns=records.LEGACY_COLUMN_NAMES
        )
        invocations = pd.read_parquet(folder / records.INVOCATIONS_FILE).rename(
            columns=records.LEGACY_COLUMN_NAMES
        )
    else:
        requests, invocations = read(folder)
        status = {**status, "requests": len(requests), "invocations": len(invocations)}
    if status.get("status", "running") == "running":  # its process died before the end
        status = {**status, "status": "incomplete", "stopped_by": KILLED}
    return SavedCell(
        folder=folder,
        config=records.read_json(folder / records.CONFIG_FILE),
        environment=records.read_json(environment) if environment.is_file() else {},
        status=status,
        requests=requests,
        invocations=invocations,
    )


def cell_folders(run: str | os.PathLike[str]) -> list[Path]:
    """The cell folders of a run (or the run itself if it is one cell), in the order run."""
    run = Path(run)
    if is_cell(run):
        return [run]
    matrix = run / records.MATRIX_FILE
    if matrix.is_file():
        return [run / name for name in records.read_json(matrix)["cells"] if is_cell(run / name)]
    return sorted(p for p in run.iterdir() if p.is_dir() and is_cell(p)) if run.is_dir() else []
