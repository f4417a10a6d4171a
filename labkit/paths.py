"""Where labkit keeps things on disk: a *workspace*, never the package's own location.

The workspace is, in order: ``LABKIT_HOME``; else the nearest folder at or above the current
one that is a labkit workspace (it holds a ``.labkit`` marker, as ``labkit init`` writes,
or the project's own ``pyproject.toml``); else the current folder. Notebooks run by the lab
start in ``<workspace>/notebooks`` and so find the same workspace.

Under it, each overridable by an environment variable:

- models: ``LABKIT_MODELS_DIR`` or ``<workspace>/models``
- bundles: ``LABKIT_BUNDLES_DIR`` or ``<workspace>/bundles``
- results (run folders): ``LABKIT_RESULTS_DIR`` or ``<workspace>/results``
- MNIST: ``LABKIT_DATA_DIR`` or ``<workspace>/data`` (see :mod:`labkit.data`)
- the lab notebooks: ``<workspace>/notebooks`` (``labkit init`` copies the shipped ones there)

An installed labkit ships the notebooks and the Dockerfiles as package data
(:func:`shipped_notebooks_dir`, :func:`docker_dir`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

from labkit import DISTRIBUTION

MARKER = ".labkit"
DEFAULT_MODEL_NAME = "mnist-cnn"
_SHIPPED = Path(__file__).resolve().parent / "_shipped"


def workspace() -> Path:
    """The workspace folder (see the module docstring); it need not exist yet."""
    explicit = os.environ.get("LABKIT_HOME")
    if explicit:
        return Path(explicit).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / MARKER).is_file() or _is_labkit_project(folder):
            return folder
    return here


def _is_labkit_project(folder: Path) -> bool:
    project = folder / "pyproject.toml"
    if not project.is_file():
        return False
    try:
        text = project.read_text(errors="replace")
    except OSError:
        return False
    return re.search(rf'(?m)^name\s*=\s*"(labkit|{DISTRIBUTION})"\s*(#.*)?$', text) is not None


def _under_workspace(variable: str, name: str) -> Path:
    return Path(os.environ.get(variable) or workspace() / name).expanduser().resolve()


def models_dir() -> Path:
    return _under_workspace("LABKIT_MODELS_DIR", "models")


def bundles_dir() -> Path:
    return _under_workspace("LABKIT_BUNDLES_DIR", "bundles")


def results_dir() -> Path:
    return _under_workspace("LABKIT_RESULTS_DIR", "results")


def data_dir() -> Path:
    return _under_workspace("LABKIT_DATA_DIR", "data")


def notebooks_dir() -> Path:
    """The workspace's lab notebooks (``<workspace>/notebooks``)."""
    return workspace() / "notebooks"


def shipped_notebooks_dir() -> Path:
    """The notebooks that came with this labkit (package data)."""
    return _SHIPPED / "notebooks"


def docker_dir() -> Path:
    """The Dockerfiles and requirements the function image is built from (package data)."""
    return _SHIPPED / "docker"


def default_model_dir() -> Path:
    """The model folder notebooks and the CLI use unless told otherwise."""
    return models_dir() / DEFAULT_MODEL_NAME


def resolve_model_dir(value: str | os.PathLike[str] | None = None) -> Path:
    """A model folder from a parameter: ``None`` is the default model, a bare name (no
    slash) is a folder under :func:`models_dir`, anything else is a path."""
    if value in (None, ""):
        return default_model_dir()
    text = os.fspath(value)  # type: ignore[arg-type]
    return (models_dir() / text) if "/" not in text and os.sep not in text else Path(text).resolve()


def default_bundle_dir(
    model_dir: Path, run_dir: str | os.PathLike[str] | None = None, variant: str = "torch"
) -> Path:
    """Where a function bundle goes: ``<run_dir>/bundle`` inside a lab run, else
    ``<bundles>/<model folder name>``; ``-<variant>`` appended for variants other than the
    PyTorch one (``bundles/mnist-cnn-onnx``)."""
    folder = Path(run_dir) / "bundle" if run_dir else bundles_dir() / model_dir.name
    return folder if variant == "torch" else folder.with_name(f"{folder.name}-{variant}")


def init_workspace(folder: str | os.PathLike[str]) -> tuple[Path, list[Path], list[Path]]:
    """Make ``folder`` a labkit workspace: the ``.labkit`` marker and the shipped notebooks
    in ``notebooks/``. A notebook already there is never overwritten (it may hold a
    student's work). Returns (workspace, notebooks copied, notebooks kept as they were)."""
    root = Path(folder).expanduser().resolve()
    if root.exists() and not root.is_dir():
        raise ValueError(f"{root} is a file: a workspace is a folder (give a new or existing one)")
    (root / "notebooks").mkdir(parents=True, exist_ok=True)
    marker = root / MARKER
    if not marker.exists():
        marker.write_text("# a labkit workspace: models, bundles and results go here\n")
    copied, kept = [], []
    for source in sorted(shipped_notebooks_dir().glob("*.ipynb")):
        target = root / "notebooks" / source.name
        if target.exists():
            kept.append(target)
        else:
            shutil.copy2(source, target)
            copied.append(target)
    return root, copied, kept


def new_run_dir(kind: str, label: str = "", parent: Path | None = None) -> Path:
    """Create and return a fresh folder ``<results>/<kind>/<UTC time>[-label]``.

    Never reuses an existing folder: a clash (two runs in the same second) gets a suffix.
    """
    parent = (parent or results_dir()) / kind
    parent.mkdir(parents=True, exist_ok=True)
    stem = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    if label:
        stem += "-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", label).strip("-")
    for attempt in range(1000):
        path = parent / (stem if attempt == 0 else f"{stem}-{attempt}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RuntimeError(f"could not create a new run folder under {parent}")


def latest_run_dir(kind: str, parent: Path | None = None) -> Path | None:
    """The most recently created run folder of ``kind``, or ``None``."""
    base = (parent or results_dir()) / kind
    runs = [p for p in base.iterdir() if p.is_dir()] if base.is_dir() else []
    return max(runs, key=lambda p: (p.stat().st_mtime, p.name)) if runs else None
