"""A probed model's timing is measured once per bundle and kept: the same search command
gives the same answer, and an interrupted one resumes in its folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from labkit.load.workloads import WorkloadConfig
from labkit.studies import your_model
from labkit.tune import probes, search
from labkit.tune.executor import Cluster
from labkit.tune.space import SMALL
from tests.cells import handler_bundle

SPACE = dataclasses.replace(SMALL, policies=("none", "dynamic"), memories_mb=(1024, 1769),
                            sizes=(4, 8), timeouts_s=(0.1,))  # fmt: skip


@pytest.fixture
def probed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Every probe of the search, counted; each measures other times (as live probes do)."""
    monkeypatch.setenv("LABKIT_RESULTS_DIR", str(tmp_path / "results"))
    taken: list[int] = []

    def probe(bundle, config, **_) -> your_model.Probe:
        noise = np.random.default_rng(len(taken) + 1).uniform(0.8, 1.25)
        rows = [{"memory_mb": memory, "batch_size": b, "duration_ms": (5.0 + 4.0 * b) * noise,
                 "round_trip_ms": (5.0 + 4.0 * b) * noise + 2.0, "max_memory_used_mb": 300.0}
                for memory in config.memories_mb for b in config.batch_sizes for _ in range(3)]  # fmt: skip
        taken.append(1)
        return your_model.Probe(bundle.model_name, 200.0, None, pd.DataFrame(rows), [900.0])

    monkeypatch.setattr(your_model, "probe", probe)
    return taken


def test_the_same_search_reuses_its_probe_answers_the_same_and_resumes(
    tmp_path: Path, probed: list[int]
) -> None:
    bundle = handler_bundle(tmp_path / "bundle")
    config = search.TuneConfig(model=str(bundle), workload=WorkloadConfig("poisson", rate=20),
                               space=SPACE, requests=2000, replications=0,
                               cluster=Cluster(workers=1), out=str(tmp_path / "search"))  # fmt: skip
    heard: list[str] = []
    first = search.tune(config, say=heard.append)
    assert len(probed) == 1 and heard[0].startswith("timing: probing test on the local Lambda")
    kept = probes.probe_file(your_model.Bundle.open(bundle))
    assert kept.is_file() and str(kept) in heard[-1]

    again = search.tune(config, say=heard.append)  # before: "holds a search of other inputs"
    assert len(probed) == 1  # not measured again
    assert again.profile == first.profile
    assert again.run["resumed"] == len(first.table) and again.run["simulated_now"] == 0
    assert again.answer is not None and again.answer["key"] == first.answer["key"]
    assert any(line.startswith("Timing: the probe of test measured") for line in again.lines())

    fresh = search.tune(dataclasses.replace(config, reprobe=True, out=str(tmp_path / "other")))
    assert len(probed) == 2 and fresh.profile != first.profile


def test_a_kept_probe_of_other_settings_is_not_reused(
    tmp_path: Path, probed: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = your_model.Bundle.open(handler_bundle(tmp_path / "bundle"))
    probes.probed_profile(bundle)
    probes.probed_profile(bundle)
    assert len(probed) == 1
    other = dataclasses.replace(bundle, handler="fault_handlers.echo_batch")
    probes.probed_profile(other)  # the same model's name and version, another handler
    assert len(probed) == 2
    monkeypatch.setattr(probes, "FIT_VERSION", probes.FIT_VERSION + 1)  # a later labkit's fit
    probes.probed_profile(other)
    assert len(probed) == 3
    probes.probe_file(other).write_text('{"probe": "edited by hand",')
    probes.probed_profile(other)  # measured again, not a traceback
    assert len(probed) == 4 and probes.probed_profile(other) is not None and len(probed) == 4
