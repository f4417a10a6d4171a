"""Where a search's tasks run: this process, a Dask LocalCluster, or the user's cluster.

- ``workers=1`` and no scheduler: in this process, one task after another (no Dask at all:
  the reference the others must equal, and the fastest for a small search);
- ``workers=N``: a :class:`distributed.LocalCluster` of N single-threaded worker processes
  on this machine (the simulator is pure Python: threads would share one GIL);
- ``scheduler="tcp://host:8786"``: a Dask scheduler the user already runs (SSH, Slurm
  through dask-jobqueue, Kubernetes); its workers need labkit installed, nothing else.

Results come back as they finish (``on_result``), so progress shows and every finished task
is saved before the next; the figures do not depend on where a task ran (every candidate is
seeded by its key).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from labkit.settings import usable_cores

T = TypeVar("T")
R = TypeVar("R")

#: Dask settings for the LocalCluster a search starts. A worker's event loop shares the GIL
#: with the task it runs: by default it samples the task's stack every 10 ms (the statistical
#: profiler, for a dashboard a search does not show), checks its own health every 20 ms and
#: its memory every 100 ms, and each wake-up takes the GIL from the simulation. Quieter, a
#: configuration runs ~4 % faster on each worker (bench/tune.py; bench/README.md).
QUIET_WORKERS = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
}


@dataclass(frozen=True)
class Cluster:
    """Where to run: ``workers`` local processes (``None``: this machine's cores), or the
    running scheduler at ``scheduler``."""

    workers: int | None = None
    scheduler: str | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise ValueError(f"workers must be >= 1, not {self.workers!r}")
        if self.scheduler is not None and "://" not in self.scheduler:
            raise ValueError(
                f"a scheduler address looks like tcp://host:8786, not {self.scheduler!r}"
            )

    @property
    def local_workers(self) -> int:
        return self.workers or usable_cores()

    def describe(self) -> str:
        if self.scheduler:
            return f"the Dask scheduler at {self.scheduler}"
        if self.local_workers == 1:
            return "this process"
        return f"a Dask LocalCluster of {self.local_workers} worker processes"


def run_all(fn: Callable[[T], R], tasks: Sequence[T], cluster: Cluster,
            on_result: Callable[[T, R], None], *, interruptible: bool = True) -> dict[str, Any]:  # fmt: skip
    """Run ``fn`` on every task where ``cluster`` says; ``on_result(task, result)`` in this
    process as each finishes. Returns facts of the run (where, workers, seconds).
    ``interruptible=False``: the tasks keep nothing of their own (a search's: this process
    saves each result), so a LocalCluster's workers ignore Ctrl-C and this process, which
    gets it, closes them (a sweep's notebooks, which save their cell on Ctrl-C, need it)."""
    start = time.perf_counter()
    if not tasks:
        return {"where": cluster.describe(), "workers": 0, "seconds": 0.0}
    if cluster.scheduler is None and cluster.local_workers == 1:
        for task in tasks:
            on_result(task, fn(task))
        return {"where": cluster.describe(), "workers": 1, "seconds": time.perf_counter() - start}

    import dask  # deferred: with distributed, 0.5 s to import
    from distributed import Client, LocalCluster, as_completed

    if cluster.scheduler:  # its workers are configured by whoever runs them
        client = Client(cluster.scheduler, timeout="20s")
        local = None
    else:
        settings = dict(QUIET_WORKERS)
        if not interruptible:
            preloads = dask.config.get("distributed.worker.preload")  # the user's, kept
            settings["distributed.worker.preload"] = [*preloads, "labkit.tune.worker_setup"]
        with dask.config.set(settings):  # each worker's nanny takes the config now
            local = LocalCluster(n_workers=cluster.local_workers, threads_per_worker=1,
                                 processes=True, dashboard_address=":0")  # fmt: skip
        client = Client(local)
    try:
        workers = len(client.scheduler_info()["workers"])
        futures = client.map(fn, tasks, pure=False)
        index = {f.key: i for i, f in enumerate(futures)}
        for future in as_completed(futures):
            on_result(tasks[index[future.key]], future.result())
    finally:
        client.close()
        if local is not None:
            local.close()
    return {"where": cluster.describe(), "workers": workers, "seconds": time.perf_counter() - start}
