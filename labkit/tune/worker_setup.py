"""What a search's local Dask workers do as they start (a Dask preload: each worker process
imports this module and calls :func:`dask_setup`; :func:`labkit.tune.executor.run_all` names
it for a cluster whose tasks keep nothing of their own)."""

from __future__ import annotations

import signal
from typing import Any


def dask_setup(worker: Any) -> None:
    """Ignore Ctrl-C. A terminal sends it to its whole foreground process group, workers
    included: each would die printing a KeyboardInterrupt traceback of its own while the
    process that started them saves what finished and closes them in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
