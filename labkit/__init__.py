"""labkit: what batching does to ML inference on serverless platforms, measured and explained.

The public surface is what this module names (``__all__``): what the notebooks and users
import. Everything else is internal and free to change. Names load on first use, so
``import labkit`` stays fast and does not pull in PyTorch.

Modules for the analysis (``from labkit import report, plots, metrics, cost, simulate``)
are public as modules, under their short names, wherever they live in the package
(``labkit.report`` is :mod:`labkit.analysis.report`). The package's layout, a wing per stage
of the lab, is drawn in ``docs/architecture.md``.
"""

from __future__ import annotations

import importlib
from typing import Any

from labkit import _moved

__version__ = "0.2.0"
#: The name to ``pip install`` (the import name is ``labkit``; ``labkit`` on PyPI is another
#: project's).
DISTRIBUTION = "labkit-serverless"

#: Public name -> the module that defines it.
_PUBLIC = {
    # configuration
    "ExperimentConfig": "labkit.experiment",
    "FunctionSettings": "labkit.settings",
    "PolicyConfig": "labkit.load.batching",
    "MappingSettings": "labkit.settings",
    "WorkloadConfig": "labkit.load.workloads",
    # running experiments
    "run_experiment": "labkit.experiment",
    "run_matrix": "labkit.experiment",
    "paper_matrix": "labkit.experiment",
    "variant": "labkit.experiment",
    "memory_sweep": "labkit.experiment",
    "create_backend": "labkit.backends",
    "Explorer": "labkit.explore",
    "LocalLambda": "labkit.emulator",
    # the function
    "load_mnist": "labkit.data",
    "train_and_export": "labkit.models.mnist",
    "ensure_bundle": "labkit.aws.image",
    # results
    "load_run": "labkit.analysis.report",
    "run_lab": "labkit.lab",
}
_RENAMED = {"create_backend": "create"}
#: Public modules by their short names (``from labkit import report``), wherever they live:
#: the short names of 0.1 stay, quietly; old dotted paths (``labkit.report.table1`` imported
#: as ``from labkit.report import ...``) warn (:mod:`labkit._moved`).
_MODULES = {
    **{old.removeprefix("labkit."): new for old, new in _moved.MOVED.items()},
    **{name: f"labkit.{name}"
       for name in ("backends", "data", "emulator", "experiment", "lab", "paths", "records",
                    "settings")},
}  # fmt: skip

__all__ = ["__version__", *_PUBLIC, *_MODULES]

_moved.install()


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), _RENAMED.get(name, name))
        globals()[name] = value
        return value
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
