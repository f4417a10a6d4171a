"""Where labkit keeps things on disk, each overridable by an environment variable.

- models: ``LABKIT_MODELS_DIR`` or ``<project>/models``
- results (run folders): ``LABKIT_RESULTS_DIR`` or ``<project>/results``
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = PROJECT_DIR / "notebooks"
DEFAULT_MODEL_NAME = "mnist-cnn"


def models_dir() -> Path:
    return Path(os.environ.get("LABKIT_MODELS_DIR") or PROJECT_DIR / "models").resolve()


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


def default_bundle_dir(model_dir: Path, run_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where a function bundle goes: ``<run_dir>/bundle`` inside a lab run, else
    ``bundles/<model folder name>`` (``LABKIT_BUNDLES_DIR`` moves ``bundles/``)."""
    if run_dir:
        return Path(run_dir) / "bundle"
    return Path(os.environ.get("LABKIT_BUNDLES_DIR") or PROJECT_DIR / "bundles") / model_dir.name


def results_dir() -> Path:
    return Path(os.environ.get("LABKIT_RESULTS_DIR") or PROJECT_DIR / "results").resolve()


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
