"""A search's results on disk: a Parquet dataset that a rerun resumes.

``<folder>/search.json`` holds what the figures depend on (the profile, the workload, the
SLO, the requests and the seed: their fingerprint); ``<folder>/configs/policy=<kind>/``
holds one Parquet file per finished task (a policy's candidates), written whole and
atomically as it arrives. A rerun with the same inputs reads the keys already there and runs
only the rest; a rerun with other inputs into the same folder is refused, since its figures
could not be mixed with these.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd


class StoreMismatch(ValueError):
    """The folder holds a search of other inputs."""


def fingerprint(inputs: dict[str, Any]) -> str:
    """A short stable hash of the inputs' JSON."""
    text = json.dumps(inputs, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class ResultStore:
    """One search's folder (made if missing)."""

    def __init__(self, folder: str | os.PathLike[str], inputs: dict[str, Any]) -> None:
        self.folder = Path(folder)
        self.parts = self.folder / "configs"
        self.inputs = inputs
        marker = self.folder / "search.json"
        mine = {"fingerprint": fingerprint(inputs), "inputs": inputs}
        if marker.is_file():
            found = json.loads(marker.read_text())
            if found.get("fingerprint") != mine["fingerprint"]:
                raise StoreMismatch(
                    f"{self.folder} holds a search of other inputs (fingerprint "
                    f"{found.get('fingerprint')}, these are {mine['fingerprint']}); choose "
                    f"another folder (--out) or remove that one"
                )
        else:
            self.parts.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps(mine, indent=2, default=str))

    def done_keys(self) -> set[str]:
        """Keys of every candidate already stored."""
        return set(self.load(columns=["key"])["key"]) if self._files() else set()

    def write(self, kind: str, group_key: str, rows: list[dict[str, Any]]) -> Path | None:
        """One task's rows, as one file of its policy's partition (atomic: a file is there
        whole or not at all, so Ctrl-C or a killed worker loses at most the tasks running)."""
        if not rows:
            return None
        folder = self.parts / f"policy={kind}"
        folder.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", group_key)
        existing = len(list(folder.glob(f"{name}*.parquet")))
        path = folder / f"{name}-{existing}.parquet"
        tmp = path.with_suffix(".tmp")
        pd.DataFrame(rows).to_parquet(tmp, index=False)
        os.replace(tmp, path)
        return path

    def _files(self) -> list[Path]:
        return sorted(self.parts.glob("policy=*/*.parquet"))

    def load(self, columns: list[str] | None = None) -> pd.DataFrame:
        """Every stored row, in key order."""
        files = self._files()
        if not files:
            return pd.DataFrame(columns=columns or [])
        table = pd.concat([pd.read_parquet(f, columns=columns) for f in files], ignore_index=True)
        return table.sort_values("key", kind="stable").reset_index(drop=True)
