"""A run's cells as the analysis reads them: loaded from disk, typed, grouped.

A *run* is a matrix folder (``<run>/<cell>/requests.parquet ...``, see :mod:`labkit.journal`)
or one cell folder; :func:`load_run` gives its cells in the order they ran. The claims, the
report and the studies all read cells through this module, so a cell means the same to each.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import pandas as pd

from labkit import cost, journal
from labkit.experiment import ExperimentConfig
from labkit.sim.simulate import PlatformProfile, SimConfig, simulate


@dataclass
class Cell:
    """One loaded cell: its name, configuration, facts, status and records."""

    name: str
    config: ExperimentConfig
    status: dict[str, Any]
    requests: pd.DataFrame
    invocations: pd.DataFrame
    environment: dict[str, Any]

    @property
    def batching(self) -> str:
        """The policy's :attr:`~labkit.load.batching.PolicyConfig.family`."""
        return self.config.policy.family

    @property
    def workload(self) -> str:
        """The workload's name in this run (``uniform-10rps``, ``bursty``, ...)."""
        return self.config.workload.label

    @property
    def paper_workload(self) -> str:
        """The paper's row this workload compares with (its kind: uniform or bursty)."""
        return self.config.workload.kind

    @property
    def records(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        return self.requests, self.invocations


def load_run(run: str | os.PathLike[str]) -> list[Cell]:
    """Every cell of a run folder, in the order it ran."""
    folders = journal.cell_folders(run)
    if not folders:
        raise FileNotFoundError(f"no experiment cells under {run}")
    return [load_cell(folder) for folder in folders]


def one_per_setting(cells: Sequence[Cell]) -> list[Cell]:
    """The first cell (in run order) of each setting: cells that differ only in their
    repetition and seeds are one setting. For the figures with a panel or a row per cell:
    Lab 4's three repetitions of six settings drew 18 panels (a 47-inch figure, ~8 s to save
    on two cores) where six show what each setting does; the tables pool every repetition."""
    first: dict[str, Cell] = {}
    for cell in cells:
        config = cell.config
        setting = dataclasses.replace(config, repetition=0, sim_seed=0, name=None,
                                      workload=dataclasses.replace(config.workload, seed=0))  # fmt: skip
        first.setdefault(json.dumps(setting.as_dict(), sort_keys=True, default=str), cell)
    return list(first.values())


def simulated_cell(config: ExperimentConfig, profile: PlatformProfile, *, seed: int,
                   concurrency: int = 2) -> Cell:  # fmt: skip
    """``config``'s cell run by the simulator with ``profile`` and service noise from
    ``seed``, in memory (nothing saved): for studies that compare many simulated cells."""
    workload = config.workload
    result = simulate(workload.arrivals(), config.policy.build(), profile,
                      SimConfig(concurrency=concurrency, seed=seed, slo_s=config.slo_ms / 1000))  # fmt: skip
    status = {"status": "complete", "wall_s": float(workload.duration_s)}
    return Cell(config.label, config, status, result.requests, result.invocations, {})


def load_cell(folder: str | os.PathLike[str]) -> Cell:
    """One saved cell, its configuration typed."""
    saved = journal.load_cell(folder)
    return Cell(saved.name, ExperimentConfig.from_dict(saved.config), saved.status,
                saved.requests, saved.invocations, saved.environment)  # fmt: skip


def paper_table1() -> pd.DataFrame:
    """The published Table 1 (see ``labkit/reference/README.md``)."""
    with resources.files("labkit.reference").joinpath("paper_table1.csv").open() as handle:
        return pd.read_csv(handle)


def summarize_options(cells: list[Cell], slo_ms: float | None) -> dict[str, Any]:
    """The keyword arguments :func:`labkit.analysis.metrics.summarize` / :func:`~labkit.analysis.metrics.pooled`
    take for ``cells`` (one configuration): the SLO (``slo_ms``, else the cells' own), memory,
    provisioned instance-seconds and the SQS bill of their recorded traffic."""
    function = cells[0].config.function
    wall_s = sum(float(c.status.get("wall_s", 0.0)) for c in cells)
    return {"slo_ms": slo_ms or cells[0].config.slo_ms, "memory_mb": function.memory_mb,
            "provisioned_instances": function.provisioned, "provisioned_seconds": wall_s,
            "sqs_usd": sum(cost.traffic_cost(c.environment.get("sqs")) for c in cells)}  # fmt: skip


def groups(cells: list[Cell]) -> dict[tuple[str, str], list[Cell]]:
    """Cells by (batching, workload), repetitions together, in the order they first ran."""
    found: dict[tuple[str, str], list[Cell]] = {}
    for cell in cells:
        found.setdefault((cell.batching, cell.workload), []).append(cell)
    return found
