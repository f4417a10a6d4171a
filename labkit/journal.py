"""A cell's records written to disk as they complete, so a killed run keeps them.

While a cell runs, each finished invocation appends its request records and its invocation
record, one JSON array per line, to ``requests.jsonl`` and ``invocations.jsonl`` in the
cell's folder: one ``write`` per file per invocation, on a descriptor opened for appending,
so what was written is in the operating system's hands even if the process is killed the
next moment (SIGKILL loses only invocations still in flight). When the cell ends normally,
:func:`labkit.records.save_cell` writes the Parquet files and :meth:`Journal.discard`
removes the journal; :func:`read` turns a journal left behind into frames.

Why not append to Parquet: a Parquet file is readable only once its footer is written.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from operator import attrgetter
from pathlib import Path

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
