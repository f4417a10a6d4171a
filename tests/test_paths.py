"""The workspace: results, models and bundles go where the user works, never into the
installed package; an installed labkit ships its notebooks and Dockerfiles."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from labkit import paths

PROJECT = Path(__file__).resolve().parents[1]


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("LABKIT_HOME", "LABKIT_MODELS_DIR", "LABKIT_RESULTS_DIR", "LABKIT_BUNDLES_DIR",
                 "LABKIT_DATA_DIR"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_workspace_is_the_current_folder_by_default(elsewhere: Path) -> None:
    assert paths.workspace() == elsewhere.resolve()
    assert paths.results_dir() == elsewhere.resolve() / "results"
    assert paths.default_model_dir() == elsewhere.resolve() / "models" / "mnist-cnn"
    assert not paths.results_dir().is_relative_to(Path(paths.__file__).parents[1] / "labkit")


def test_a_marker_above_makes_the_workspace(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (elsewhere / ".labkit").write_text("")
    (elsewhere / "notebooks").mkdir()
    monkeypatch.chdir(elsewhere / "notebooks")  # where the lab's kernels start
    assert paths.workspace() == elsewhere.resolve()
    assert paths.bundles_dir() == elsewhere.resolve() / "bundles"


def test_labkit_home_and_the_variables_win(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LABKIT_HOME", str(elsewhere / "home"))
    assert paths.models_dir() == (elsewhere / "home" / "models").resolve()
    monkeypatch.setenv("LABKIT_MODELS_DIR", str(elsewhere / "m"))
    assert paths.models_dir() == (elsewhere / "m").resolve()


def test_the_project_checkout_is_its_own_workspace(
    elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(PROJECT / "notebooks")
    assert paths.workspace() == PROJECT


def test_bundle_folders_per_variant() -> None:
    model = Path("/m/mnist-cnn")
    assert paths.default_bundle_dir(model, variant="onnx").name == "mnist-cnn-onnx"
    assert paths.default_bundle_dir(model, "/run") == Path("/run/bundle")
    assert paths.default_bundle_dir(model, "/run", "onnx") == Path("/run/bundle-onnx")


def test_shipped_files_are_in_the_package() -> None:
    assert (paths.shipped_notebooks_dir() / "04_run_workloads.ipynb").is_file()
    assert (paths.docker_dir() / "Dockerfile").is_file()


@pytest.mark.slow
def test_the_wheel_carries_the_notebooks_and_dockerfiles(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(PROJECT)], check=True, capture_output=True)  # fmt: skip
    (wheel,) = tmp_path.glob("labkit_serverless-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "labkit/_shipped/notebooks/04_run_workloads.ipynb" in names
    assert "labkit/_shipped/docker/Dockerfile" in names
    assert "labkit/presets/paper.yaml" in names
