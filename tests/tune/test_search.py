"""The search as an engineer runs it: the answer, the runner-up, how sure, resumed after an
interruption, the same on one process, a LocalCluster and a scheduler the test starts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest

from labkit.cli import EXIT_BAD_INPUT, EXIT_OK, main
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import PlatformProfile
from labkit.tune import search
from labkit.tune.executor import Cluster
from labkit.tune.objective import Slo
from labkit.tune.space import SMALL
from labkit.tune.store import StoreMismatch

SPACE = dataclasses.replace(SMALL, memories_mb=(256, 1024, 1769), sizes=(2, 5, 8),
                            timeouts_s=(0.05, 0.3))  # fmt: skip


def config(folder: Path, **changes) -> search.TuneConfig:
    base = search.TuneConfig(space=SPACE, requests=3000, replications=2, out=str(folder),
                             cluster=Cluster(workers=1))  # fmt: skip
    return dataclasses.replace(base, **changes)


@pytest.fixture(scope="module")
def answered(tmp_path_factory: pytest.TempPathFactory) -> search.TuneResult:
    return search.tune(config(tmp_path_factory.mktemp("tune") / "search"))


def test_the_answer_is_the_cheapest_configuration_that_meets_the_slo(answered) -> None:
    table, best = answered.table, answered.answer
    assert best is not None and best["meets"]
    meeting = table[table["slo_attainment_pct"] >= 95]
    assert best["cost_per_1m_requests_usd"] == meeting["cost_per_1m_requests_usd"].min()
    second = answered.runner_up
    assert second is not None and second["meets"]
    assert (second["label"], second["memory_mb"]) != (best["label"], best["memory_mb"])
    assert second["cost_per_1m_requests_usd"] >= best["cost_per_1m_requests_usd"]
    lines = "\n".join(answered.lines())
    assert "Answer: " in lines and "Runner-up: " in lines and "How sure: on 2 fresh draws" in lines


def test_what_cannot_run_or_cannot_meet_is_pruned_with_its_reason(answered) -> None:
    """256 MB is below the MNIST handler's measured peak (546 MB): never simulated."""
    pruned = answered.pruned
    assert (pruned.loc[pruned["memory_mb"] == 256, "reason"].str.contains("uses 546 MB")).all()
    assert 256 not in set(answered.table["memory_mb"])
    by_model = pruned[pruned["reason"].str.startswith("analytic")]
    assert len(by_model) and (by_model["model_attainment_pct"] < 95 - 5).all()
    covered = answered.table[answered.table["policy"].isin(["static", "dynamic"])]
    assert covered["analytic_pct"].notna().all()  # the closed form's figure beside each
    assert len(answered.table) + len(pruned) == SPACE.size()


def test_the_frontier_trades_cost_for_attainment(answered) -> None:
    frontier = answered.frontier()
    assert frontier["cost_per_1m_requests_usd"].is_monotonic_increasing
    assert frontier["slo_attainment_pct"].is_monotonic_increasing
    assert len(answered.agreement) > 0 and answered.agreement["error_pts"].abs().max() < 5


def test_a_rerun_resumes_and_other_inputs_are_refused(answered) -> None:
    again = search.tune(dataclasses.replace(answered.config, replications=0))
    assert again.run["simulated_now"] == 0 and again.run["resumed"] == len(answered.table)
    assert again.answer["key"] == answered.answer["key"]
    with pytest.raises(StoreMismatch, match="other inputs"):
        search.tune(dataclasses.replace(answered.config, slo=Slo(150, 95)))


def test_an_interrupted_search_keeps_finished_tasks_and_runs_only_the_rest(tmp_path: Path) -> None:
    calls = []

    def stop_after_two(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        search.tune(config(tmp_path / "s", replications=0), progress=stop_after_two)
    kept = calls[-1]
    finished = search.tune(config(tmp_path / "s", replications=0))
    assert (
        finished.run["resumed"] == kept
        and finished.run["simulated_now"] == len(finished.table) - kept
    )


def test_the_figures_do_not_depend_on_where_they_ran(tmp_path: Path, answered) -> None:
    """Configuration by configuration: this process, a LocalCluster of two, and a scheduler
    the test starts and the search connects to."""
    from distributed import LocalCluster

    reference = answered.table.drop(columns="seconds")
    local = search.tune(config(tmp_path / "two", replications=0, cluster=Cluster(workers=2)))
    assert local.run["workers"] == 2
    pd.testing.assert_frame_equal(local.table.drop(columns="seconds"), reference)
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as running:
        remote = search.tune(config(tmp_path / "remote", replications=0,
                                    cluster=Cluster(scheduler=running.scheduler_address)))  # fmt: skip
    assert remote.run["where"].startswith("the Dask scheduler at tcp://")
    pd.testing.assert_frame_equal(remote.table.drop(columns="seconds"), reference)


def test_the_command_prints_the_answer_and_refuses_bad_input(tmp_path: Path, capsys) -> None:
    args = ["tune", "--space", "small", "--memories-mb", "1024", "--requests", "2000",
            "--workers", "1", "--replications", "2", "--quiet", "--out", str(tmp_path / "cli")]  # fmt: skip
    assert main(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "Answer: " in out and "How sure" in out and str(tmp_path / "cli") in out
    assert (tmp_path / "cli" / "answer.json").is_file()
    assert list((tmp_path / "cli" / "configs").glob("policy=dynamic/*.parquet"))
    assert main([*args[:-2], "--slo", "fast"]) == EXIT_BAD_INPUT
    assert "95% within 200 ms" in capsys.readouterr().err
    assert main([*args[:-2], "--scheduler", "localhost:8786"]) == EXIT_BAD_INPUT
    assert "tcp://host:8786" in capsys.readouterr().err
    assert main([*args[:-2], "--validate", "--validate-on", "aws"]) == EXIT_BAD_INPUT
    assert "give --max-budget-usd" in capsys.readouterr().err  # before any search
    assert main([*args[:-2], "--workload", "azure"]) == EXIT_BAD_INPUT
    assert "--workload must be one of uniform, poisson, bursty, csv" in capsys.readouterr().err


def test_a_profile_without_a_memory_peak_keeps_every_memory(tmp_path: Path) -> None:
    profile = dataclasses.replace(PlatformProfile.load("paper-aws"), memory_used_mb=None)
    result = search.tune(config(tmp_path / "s", replications=0,
                                workload=WorkloadConfig("poisson", rate=20)), profile=profile)  # fmt: skip
    assert not result.pruned["reason"].str.startswith("memory: the model").any()


@pytest.mark.parametrize(("model", "said"), [
    ("model.pt", "is a model file, not a bundle: bundle it first (`labkit bundle --model"),
    ("no/such/bundle", "no bundle folder at no/such/bundle"),
    ("nosuch", "no model 'nosuch' in the registry; known: mnist-cnn"),
])  # fmt: skip
def test_a_model_that_is_not_one_is_refused_naming_the_fix(
    model: str, said: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "model.pt").write_bytes(b"a TorchScript file, as far as tune can tell")
    with pytest.raises(ValueError, match=r"bundle|registry"):
        search.TuneConfig(model=model)
    assert main(["tune", "--model", model, "--quiet"]) == EXIT_BAD_INPUT  # before any probe
    assert said in capsys.readouterr().err
