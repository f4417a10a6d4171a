"""What a search's local Dask workers do as they start (a Dask preload: each worker process
imports this module and calls :func:`dask_setup`; :func:`labkit.tune.executor.run_all` names
it for a cluster whose tasks keep nothing of their own)."""

from __future__ import annotations

import logging
import signal
from typing import Any

#: What such a worker would log of its own end. Its scheduler lives in the command's process
#: and every task's error comes back to the command, which says it; a worker still
#: simulating when the command stops logs its cancelled task (a warning) and the scheduler
#: it can no longer reach (an error with a traceback). Its memory warnings have their own
#: logger (``distributed.worker.memory``) and stay.
OWN_END_LOGGERS = ("distributed.worker", "distributed.worker.state_machine")


def dask_setup(worker: Any) -> None:
    """Ignore Ctrl-C, and say nothing of the worker's own end. A terminal sends Ctrl-C to its
    whole foreground process group, workers included: each would die printing a
    KeyboardInterrupt traceback of its own while the process that started them saves what
    finished and closes them in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    memory = logging.getLogger("distributed.worker.memory")
    memory.setLevel(memory.getEffectiveLevel())  # kept as it is before its parent's change
    for name in OWN_END_LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
