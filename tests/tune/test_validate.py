"""`--validate` as an engineer with their own model meets it: a model file the kit has never
seen, bundled, probed on the local Lambda, searched, and its answer and runner-up run live
beside the simulator's figures for the same arrivals."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from labkit.aws.model_bundle import build_model_bundle
from labkit.load.workloads import WorkloadConfig
from labkit.tune import search, validate
from labkit.tune.executor import Cluster
from labkit.tune.objective import Slo
from labkit.tune.space import SearchSpace
from tests.models.test_your_model import Tiny  # the model the kit has never seen


@pytest.mark.slow
def test_your_models_answer_is_checked_live_beside_the_model(tmp_path: Path) -> None:
    path = tmp_path / "tiny.pt"
    torch.jit.save(torch.jit.script(Tiny().eval()), str(path))
    bundle = build_model_bundle(path, tmp_path / "bundle", input_spec="float32[3,32,32]")
    space = SearchSpace(policies=("none", "dynamic"), memories_mb=(1024,), sizes=(4,),
                        timeouts_s=(0.05,), concurrencies=(2,))  # fmt: skip
    config = search.TuneConfig(model=str(bundle.path), workload=WorkloadConfig("poisson", rate=20),
                               slo=Slo(300, 90), profile="probe", network=None, space=space,
                               requests=2000, replications=0, cluster=Cluster(workers=1),
                               out=str(tmp_path / "search"))  # fmt: skip
    result = search.tune(config)
    assert result.profile.source.startswith("fitted on a live probe")
    assert result.profile.memory_used_mb and result.profile.memory_used_mb > 50
    assert result.answer is not None and result.runner_up is not None
    table = validate.validate(result, duration_s=3.0)
    assert set(table["role"]) == {"answer", "runner-up"}
    measured = table.set_index(["role", "metric"])["measured"]
    assert measured[("answer", "cold_starts")] >= 1  # a fresh function: its own cold start
    assert 0 <= measured[("answer", "slo_attainment_pct")] <= 100
    assert (tmp_path / "search" / "validation.csv").is_file()
    assert (tmp_path / "search" / "validation" / "answer" / "requests.parquet").is_file()
    sentence = validate.verdict(table, 90)
    assert "Live, the answer reached" in sentence and "The model's error here" in sentence
    assert "a run this short cannot show the 90 % SLO" in sentence  # 3 s: its cold starts weigh
    assert "within that error the runner-up" in validate.within_error(result, table)
