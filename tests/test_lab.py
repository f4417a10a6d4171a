from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from labkit import lab, paths
from labkit.lab import LabError, load_preset, parse_override, plan
from labkit.tune.executor import Cluster


def test_shipped_presets_are_valid_for_the_notebooks() -> None:
    presets = lab.available_presets()
    assert {"quick", "paper"} <= set(presets)
    for name in presets:
        assert plan(load_preset(name))  # raises on an unknown notebook or parameter


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(LabError, match=r"unknown preset 'nope'.*paper.*quick"):
        load_preset("nope")


def test_preset_file_with_unknown_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("notebooks: {}\nepochs: 3\n")
    with pytest.raises(LabError, match="unknown keys"):
        load_preset(path)


def test_unknown_parameter_is_rejected_before_anything_runs(tmp_path: Path) -> None:
    preset = lab.Preset("t", "", {"01_train_mnist": {"epohcs": 3}})
    with pytest.raises(
        LabError, match=r"unknown parameter\(s\) \['epohcs'\] for notebook 01_train_mnist"
    ):
        lab.run_lab(preset, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_notebook_is_rejected() -> None:
    with pytest.raises(LabError, match="does not exist"):
        plan(lab.Preset("t", "", {"99_nothing": {}}))
    with pytest.raises(LabError, match="unknown notebook"):
        plan(load_preset("quick"), only=["42"])


def test_overrides_are_parsed_as_yaml_values() -> None:
    assert parse_override("01_train_mnist.epochs=3") == ("01_train_mnist", "epochs", 3)
    assert parse_override("01.reuse=true") == ("01", "reuse", True)
    assert parse_override("01.data_root=null") == ("01", "data_root", None)
    with pytest.raises(LabError, match=r"NOTEBOOK\.KEY=VALUE"):
        parse_override("epochs=3")
    steps = plan(load_preset("quick"), [parse_override("01.epochs=5")], only=["01"])
    assert next(iter(steps.values()))["epochs"] == 5


def test_run_folders_are_never_reused(isolated_dirs: Path) -> None:
    first, second = paths.new_run_dir("lab", "x"), paths.new_run_dir("lab", "x")
    assert first != second and first.is_dir() and second.is_dir()
    assert paths.latest_run_dir("lab") in (first, second)


def write_notebook(path: Path, parameters: str, body: str) -> Path:
    """A two-cell notebook (a ``parameters`` cell, then ``body``); returns its folder."""
    import nbformat

    params = nbformat.v4.new_code_cell(parameters)
    params.metadata["tags"] = ["parameters"]
    nb = nbformat.v4.new_notebook(cells=[params, nbformat.v4.new_code_cell(body)])
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path.parent


def test_failing_notebook_marks_the_run_failed(isolated_dirs: Path, tmp_path: Path) -> None:
    nb_dir = write_notebook(tmp_path / "nbs" / "01_boom.ipynb", "x = 1",
                            "raise ValueError('boom in the lab')")  # fmt: skip
    with pytest.raises(lab.NotebookFailedError, match="boom in the lab"):
        lab.run_lab(lab.Preset("t", "", {}), notebooks_dir=nb_dir, progress=False)
    run_dir = paths.latest_run_dir("lab")
    assert run_dir is not None
    assert json.loads((run_dir / "lab.json").read_text())["status"] == "failed"


def test_sweep_grid_is_validated_before_anything_runs(isolated_dirs: Path) -> None:
    assert lab.parse_grid("04.rate=[1, 2]") == ("04", "rate", [1, 2])
    assert lab.parse_grid("04.rate=3") == ("04", "rate", [3])
    grid = [("04_run_workloads", "no_such_parameter", [1, 2])]
    with pytest.raises(lab.LabError, match="no_such_parameter"):
        lab.run_sweep("quick", grid, progress=False)
    assert paths.latest_run_dir("sweeps") is None
    with pytest.raises(lab.LabError, match="at least one"):
        lab.run_sweep("quick", [], progress=False)


@pytest.mark.slow
def test_sweep_runs_each_combination_and_collects_one_table(
    isolated_dirs: Path, tmp_path: Path
) -> None:
    project = Path(__file__).resolve().parents[1]
    nb_dir = write_notebook(
        tmp_path / "nbs" / "04_fake.ipynb",
        "wait_ms = 100.0\nrun_dir = None",
        f"import sys; sys.path.insert(0, {str(project)!r})\n"
        "from pathlib import Path\nfrom tests.cells import fake_cell\n"
        "for kind in ('static', 'dynamic'):\n"
        "    fake_cell(Path(run_dir) / 'experiments' / f'{kind}-uniform', kind, 'uniform', wait_ms)",
    )
    sweep = lab.run_sweep(lab.Preset("t", "", {}), [("04", "wait_ms", [50.0, 300.0])], only=["04"],
                          progress=False, notebooks_dir=nb_dir)  # fmt: skip
    assert [r.status for r in sweep.runs] == ["complete", "complete"]
    table = pd.read_csv(sweep.sweep_dir / "sweep.csv")
    assert len(table) == 4 and list(table["wait_ms"]) == [50.0, 50.0, 300.0, 300.0]
    assert list(table["mean_ms"]) == [55.0, 55.0, 305.0, 305.0]
    # the same sweep, a combination per worker of a Dask scheduler the test starts
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as running:
        spread = lab.run_sweep(lab.Preset("t", "", {}), [("04", "wait_ms", [50.0, 300.0])],
                               only=["04"], progress=False, notebooks_dir=nb_dir,
                               cluster=Cluster(scheduler=running.scheduler_address))  # fmt: skip
    assert [r.status for r in spread.runs] == ["complete", "complete"]
    pd.testing.assert_frame_equal(pd.read_csv(spread.sweep_dir / "sweep.csv"), table)


def test_a_placement_notebook_09_does_not_know_is_rejected_before_anything_runs(
    tmp_path: Path,
) -> None:
    preset = lab.Preset("t", "", {"09_where_to_batch": {"live": ["sqs-5-0.3s"]}})
    with pytest.raises(LabError, match=r"sqs-5-0\.3s.*must be one of all, dynamic-5-0\.3s"):
        lab.run_lab(preset, run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()
