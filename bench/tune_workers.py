"""Where a search's time goes on one process, two plain processes and two Dask workers.

The same tasks of the throughput search (one of each policy kind at each of 512, 1,024 and
1,769 MB, bursty, ``--requests`` each) run four ways: in this process with Python's garbage
collector on and paused (``labkit.tune.evaluate.run`` pauses it), then twice over on two
plain processes (``ProcessPoolExecutor``, no Dask) and on a Dask ``LocalCluster`` of 2. The
ratio of the last two to the first is what two workers can give on this machine, and how
much of it Dask costs.

Run: ``python bench/tune_workers.py [--requests 100000]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _table import print_figures, print_table

from labkit.tune import evaluate, search, space
from labkit.tune.executor import Cluster


def tasks(requests: int) -> list[evaluate.Task]:
    space_ = dataclasses.replace(space.SearchSpace(), memories_mb=(512, 1024, 1769))
    config = search.TuneConfig(space=space_, requests=requests, prune=False, replications=0,
                               cluster=Cluster(workers=1))  # fmt: skip
    profile = search.model_profile(config)
    workload = evaluate.sized(config.workload, requests, config.seed)
    kinds: dict[str, list[evaluate.Task]] = {}
    for group in search._work_units(space_):
        kinds.setdefault(group.policy.kind, []).append(
            evaluate.Task(group, profile, workload, config.slo, config.seed)
        )
    return [found for each in kinds.values() for found in each[:2]]


def in_process(work: list[evaluate.Task], *, collector: bool) -> float:
    evaluate._run(work[0])  # imports and the arrivals, as a warm worker has them
    start = time.perf_counter()
    for task in work:
        if collector:
            evaluate._run(task)  # the collector as Python leaves it
        else:
            evaluate.run(task)
    return time.perf_counter() - start


def pool(work: list[evaluate.Task]) -> float:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context) as executor:
        list(executor.map(abs, range(2)))
        start = time.perf_counter()
        list(executor.map(evaluate.run, work))
        return time.perf_counter() - start


def dask(work: list[evaluate.Task]) -> float:
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=":0") as cluster, \
            Client(cluster) as client:  # fmt: skip
        client.gather(client.map(abs, range(4)))
        start = time.perf_counter()
        client.gather(client.map(evaluate.run, work, pure=False))
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args()
    work = tasks(args.requests)
    assert gc.isenabled()
    with_gc = in_process(work, collector=True)
    paused = in_process(work, collector=False)
    plain, workers = pool(work * 2), dask(work * 2)
    rows = [["1 process, collector on", len(work), with_gc, 1.0],
            ["1 process, collector paused", len(work), paused, with_gc / paused],
            ["2 plain processes, paused", 2 * len(work), plain, 2 * paused / plain],
            ["Dask LocalCluster of 2, paused", 2 * len(work), workers, 2 * paused / workers]]  # fmt: skip
    print_table(["where", "tasks", "wall s", "x (vs. the row's reference)"], rows,
                f"The same tasks ({args.requests:,} requests per configuration)")  # fmt: skip
    print_figures({"one_process_gc_on_s": with_gc, "one_process_gc_paused_s": paused,
                   "gc_pause_speedup_x": with_gc / paused, "two_plain_processes_x": 2 * paused / plain,
                   "two_dask_workers_x": 2 * paused / workers})  # fmt: skip


if __name__ == "__main__":
    main()
