"""Notebook parameters: types from defaults, ranges from the comment, checked before a lab
run starts a kernel."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from labkit import lab, parameters
from labkit.cli import EXIT_BAD_INPUT, main


@pytest.mark.parametrize(
    ("default", "comment", "good", "bad"),
    [
        ("30.0", "seconds of traffic [> 0]", [0.5, 60], [0, -1, "abc", True, math.inf, None]),
        ("3", "repetitions [≥ 1]", [1, 7], [0, 2.5, "3", None]),
        ("95.0", "target [0 to 100]", [0, 100, 99.5], [-0.1, 100.5]),
        ('"local"', "where [local | aws | simulated]", ["aws"], ["gcp", 1, None]),
        ('"laptop-to-region"', "[same-region | laptop-to-region | None]", [None, "same-region"], ["moon"]),
        ("None", "instances [int ≥ 1 or None]", [None, 4], [0, 1.5, "4"]),
        ("[10.0, 25.0]", "rates [> 0]", [[5], [1.5, 2], []], [[-5], 5, ["a"]]),
        ("None", "names [list of str or None]", [None, ["a", "b"]], [[1], "a"]),
        ("True", "", [False], [1, "yes"]),
        ("None", "a folder", [None, "x", 3], []),
    ],
)  # fmt: skip
def test_values_are_checked_against_type_and_range(default: str, comment: str, good: list,
                                                   bad: list) -> None:  # fmt: skip
    parameter = parameters.parse("p", default, comment)
    assert all(parameter.problem(v) is None for v in good), [parameter.problem(v) for v in good]
    assert all(parameter.problem(v) is not None for v in bad), [
        v for v in bad if parameter.problem(v) is None
    ]


def test_every_constraint_in_the_notebooks_is_understood() -> None:
    """A bracket at the end of a parameter's comment is a constraint, and every one parses
    (papermill drops a comment it cannot read, e.g. one holding '=', so none may)."""
    for notebook in sorted(Path(lab.paths.notebooks_dir()).glob("*.ipynb")):
        for name, p in parameters.declared(notebook).items():
            if "[" in p.help:
                assert p.bounds or p.choices or p.item_kind or p.allows_none, (notebook.stem, name)
    duration = parameters.declared(lab.lab_notebooks()["04_run_workloads"])["duration_s"]
    assert duration.kind == "float" and duration.bounds == ((">", 0.0),)


@pytest.mark.parametrize("value", ["abc", "-5", "[1, 2]"])
def test_a_bad_value_stops_the_lab_before_any_notebook_runs(isolated_dirs: Path, capsys,
                                                            value: str) -> None:  # fmt: skip
    code = main(["lab", "run", "--preset", "quick", "--set", f"04_run_workloads.duration_s={value}",
                 "--set", "04_run_workloads.uniform_rates=[-5]"])  # fmt: skip
    assert code == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "04_run_workloads.duration_s" in err and "04_run_workloads.uniform_rates" in err
    assert not (isolated_dirs / "results" / "lab").exists()  # not even a run folder
