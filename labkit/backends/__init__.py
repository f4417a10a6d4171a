"""Where the function runs, chosen in this one place: the embedded local Lambda (``local``,
the default), real AWS Lambda (``aws``), or the discrete-event model (``simulated``).

Backends are peers behind :class:`Backend` (start a fresh function for a cell, invoke it,
say what to record, stop). Experiments, the CLI, notebook 03, the explorer and the
assignment all call :func:`create`; nothing else decides which backend runs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from labkit.settings import FunctionSettings

if TYPE_CHECKING:  # deferred: pandas, which `labkit --help` need not load
    from labkit.backends.base import Backend

_CLASSES = {
    "local": "labkit.backends.local:LocalBackend",
    "aws": "labkit.backends.aws:AwsBackend",
    "simulated": "labkit.backends.simulated:SimulatedBackend",
}
KINDS = tuple(_CLASSES)

__all__ = ["KINDS", "Backend", "backend_class", "check", "create", "default_concurrency"]


def backend_class(kind: str) -> type[Backend]:
    """The class of backend ``kind``; ``ValueError`` naming the known ones otherwise."""
    if kind not in _CLASSES:
        raise ValueError(f"backend must be one of {', '.join(KINDS)}, not {kind!r}")
    module, _, name = _CLASSES[kind].partition(":")
    cls: type[Backend] = getattr(importlib.import_module(module), name)
    return cls


def default_concurrency(kind: str) -> int:
    """Invocations in flight when the function does not say (per backend: see each class)."""
    return backend_class(kind).default_concurrency


def check(kind: str, **options: Any) -> None:
    """Refuse a backend that cannot run with these options (``ValueError``), before
    anything starts: a local run without a bundle, a simulated run with a pre-warm."""
    backend_class(kind).check(**options)


def create(kind: str, function: FunctionSettings | None = None, **options: Any) -> Backend:
    """Backend ``kind`` for ``function``. ``options`` may hold any backend's options
    (``bundle_dir``, ``region``, ``profile``, ...); each backend takes its own and ignores
    the others', so a caller can pass everything it has without branching."""
    cls = backend_class(kind)
    unknown = set(options) - {o for k in KINDS for o in backend_class(k).options}
    if unknown:
        raise TypeError(f"unknown backend option(s) {sorted(unknown)}")
    accepted = {k: v for k, v in options.items() if k in cls.options}
    return cls(function or FunctionSettings(), **accepted)


def __getattr__(name: str) -> Any:
    if name == "Backend":
        # deferred: pandas, as above
        from labkit.backends.base import Backend

        return Backend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
