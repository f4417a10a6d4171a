"""Import paths that moved, kept working for one release.

The flat modules of labkit 0.1 moved into wings (``labkit.queue_run`` is now
``labkit.load.queue_run``). Code that imports an old path (a student's notebook, a script
written against 0.1) still runs: the old name is the new module, and importing it warns with a
``DeprecationWarning`` that names the new path. The old paths go in the release after next.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from types import ModuleType

#: Old import path -> where the module lives now.
MOVED: dict[str, str] = {
    f"labkit.{old}": f"labkit.{new}"
    for old, new in {
        "aws_account": "aws.account",
        "deploy": "aws.deploy",
        "image": "aws.image",
        "queue_deploy": "aws.queue_source",
        "workloads": "load.workloads",
        "batching": "load.batching",
        "loadgen": "load.loadgen",
        "prewarm": "load.prewarm",
        "queue_run": "load.queue_run",
        "simulate": "sim.simulate",
        "simulate_queue": "sim.simulate_queue",
        "calibrate": "studies.calibrate",
        "paper_fit": "sim.paper_fit",
        "claims": "analysis.claims",
        "report": "analysis.report",
        "plots": "analysis.plots",
        "placement": "studies.placement",
        "invoke": "aws.invoke",
        "assignment": "course.assignment",
        "autograder": "course.autograder",
        "checker": "course.checker",
        "model": "models.mnist",
        "onnx_export": "models.onnx_export",
        "sqs_server": "emulator.sqs_server",
        "queues": "emulator.queues",
    }.items()
}


def warn_moved(old: str) -> None:
    """Warn that ``old`` moved, naming where to import it from now."""
    warnings.warn(
        f"{old} moved to {MOVED[old]}; import it from there ({old} will be removed in the "
        "release after next)",
        DeprecationWarning,
        stacklevel=3,  # past this helper and the import machinery: the line that imported it
    )


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves an old path as the module's new home, with a warning (see :data:`MOVED`)."""

    def __init__(self) -> None:
        self._own_specs: dict[str, importlib.machinery.ModuleSpec | None] = {}

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:  # fmt: skip
        if fullname not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warn_moved(spec.name)
        module = importlib.import_module(MOVED[spec.name])
        self._own_specs[module.__name__] = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the new module ran under its own name. The import machinery has
        stamped the old path's spec on it; its own is put back, so that ``reload`` and
        ``__spec__.name`` keep naming the new path."""
        own = self._own_specs.pop(module.__name__, None)
        if own is not None:
            module.__spec__ = own
            module.__loader__ = own.loader


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (idempotent: a reload does not add another)."""
    if not any(isinstance(finder, MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
