"""Where a search runs: the LocalCluster it starts leaves the simulation the GIL."""

from __future__ import annotations

from labkit.tune.executor import Cluster, run_all


def worker_settings(_: int) -> tuple[bool, str]:
    import dask

    return (dask.config.get("distributed.worker.profile.enabled"),
            dask.config.get("distributed.admin.tick.interval"))  # fmt: skip


def test_the_local_clusters_workers_do_not_profile_their_tasks() -> None:
    """The statistical profiler samples a task's stack 100 times a second, for a dashboard
    a search never shows; the search's workers run without it, and the caller's own Dask
    settings are left as they were."""
    import dask

    found: list[tuple[bool, str]] = []
    facts = run_all(worker_settings, [0, 1], Cluster(workers=2), lambda _, r: found.append(r))
    assert facts["workers"] == 2
    assert found == [(False, "1s"), (False, "1s")]
    assert dask.config.get("distributed.worker.profile.enabled") is True
