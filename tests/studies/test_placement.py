"""Where should batching happen (labkit.studies.placement): which cells are run or reused, measured
figures before modelled ones, the answer's rule and its confidence, on the model's cells."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from labkit.analysis import report
from labkit.emulator.network import network_profile
from labkit.experiment import ExperimentConfig
from labkit.load.batching import PolicyConfig
from labkit.load.workloads import WorkloadConfig, paper_workloads
from labkit.settings import FunctionSettings
from labkit.sim import simulate
from labkit.sim.simulate import PlatformProfile
from labkit.studies import placement

WORKLOADS = paper_workloads(20.0, [10.0])
BASE = ExperimentConfig(backend="local", bundle_dir="bundle", network="laptop-to-region",
                        function=FunctionSettings(concurrency=2))  # fmt: skip


def test_the_placements_are_the_issues_six_and_names_are_checked() -> None:
    assert list(placement.PLACEMENTS) == ["dynamic-5-0.3s", "sqs-5-0s", "sqs-10-0s", "sqs-5-1s",
                                          "sqs-10-1s", "none"]  # fmt: skip
    assert placement.check_names(["all"]) == list(placement.PLACEMENTS)
    with pytest.raises(ValueError, match="unknown placements"):
        placement.check_names(["sqs-5-0.3s"])


def test_cells_already_measured_with_the_same_settings_are_reused_not_rerun() -> None:
    lab4 = dataclasses.replace(BASE, workload=dataclasses.replace(WORKLOADS[0], duration_s=16.0,
                                                                  seed=2),
                               policy=PolicyConfig("dynamic", 5, 0.3), repetition=2)  # fmt: skip
    earlier = report.Cell("dynamic-uniform-10rps", lab4, {"status": "complete"}, None, None, {})  # type: ignore[arg-type]
    names = ["dynamic-5-0.3s", "sqs-5-0s"]
    reused = placement.reusable([earlier], BASE, WORKLOADS, names)
    assert reused == [earlier]  # a different length and seed measure the same thing
    todo = placement.live_configs(BASE, WORKLOADS, names, reused)
    assert [c.label for c in todo] == ["sqs-5-0s-uniform-10rps", "dynamic-5-0.3s-bursty",
                                       "sqs-5-0s-bursty"]  # fmt: skip
    other_network = dataclasses.replace(lab4, network="same-region")
    assert not placement.matching(other_network, dataclasses.replace(BASE, workload=WORKLOADS[0],
                                                                     policy=lab4.policy))  # fmt: skip


def _modelled(names: list[str], seeds: int = 2) -> list[report.Cell]:
    base = dataclasses.replace(BASE, backend="simulated", bundle_dir=None)
    return placement.model(PlatformProfile.load("local"), base, WORKLOADS, names, seeds=seeds)


def test_measured_figures_come_before_modelled_ones() -> None:
    modelled = _modelled(["all"], seeds=1)
    live = [dataclasses.replace(c, config=dataclasses.replace(c.config, backend="local",
                                                              bundle_dir="bundle"))
            for c in modelled if c.config.policy.label == "sqs-5-0s"][:1]  # fmt: skip
    groups = placement.choose(live, modelled)
    table = placement.compare(groups, live)
    assert len(table) == 12 and list(table["placement"][:6]) == list(placement.NAMES.values())
    sources = dict(zip(zip(table["workload"], table["placement"], strict=True), table["source"],
                       strict=True))  # fmt: skip
    assert sources[("uniform-10rps", "SQS: BatchSize 5, window 0")] == "measured"
    assert groups[("uniform-10rps", "SQS: BatchSize 5, window 0")] == live
    assert sources[("bursty", "SQS: BatchSize 5, window 0")] == "modelled"
    queue = table[table["placement"].str.startswith("SQS")]
    assert (queue["SQS request queue $/1M"] > 0).all() and (queue["SQS answers $/1M"] > 0).all()
    assert (table.loc[~table.index.isin(queue.index), "SQS request queue $/1M"] == 0).all()


def test_the_rule_takes_the_cheapest_placement_that_meets_the_target_else_the_best() -> None:
    slo = np.array([90.0, 99.0, 97.0, np.nan])
    cost = np.array([1.0, 3.0, 2.0, 0.1])
    assert placement._rule(slo, cost, 95.0) == 2  # 97 % at 2 beats 99 % at 3
    assert placement._rule(slo, cost, 99.5) == 1  # nobody meets it: the highest attainment


def test_the_answer_names_a_placement_per_workload_with_its_confidence() -> None:
    modelled = _modelled(["all"])
    groups = placement.choose([], modelled)
    answers = placement.answer(groups, [], target_pct=95.0, n_boot=200)
    assert list(answers["workload"]) == ["uniform-10rps", "bursty"]
    table = placement.compare(groups, [])
    given = placement.answer(groups, [], target_pct=95.0, n_boot=200, table=table)
    assert given.equals(answers)  # the notebook's table, handed over, is the same comparison
    for _, row in answers.iterrows():
        part = table[table["workload"] == row["workload"]]
        meeting = part[part["SLO % (steady)"] >= 95.0]
        expected = (meeting.loc[meeting["warm total $/1M"].idxmin(), "placement"] if len(meeting)
                    else part.loc[part["SLO % (steady)"].idxmax(), "placement"])  # fmt: skip
        assert row["choose"] == expected and 0 < row["confidence %"] <= 100
        assert row["figures"] == "modelled"
        kind = placement.PLACEMENTS[_label(row["choose"])].kind
        assert row["where"] == {"dynamic": "client", "sqs": "SQS", "none": "nowhere"}[kind]
        text = placement.sentence(row, 200.0)
        assert row["workload"] in text and "bootstrap" in text and "model" in text
    # a window of 1 s cannot serve a 200 ms SLO at 10 requests/s
    uniform = table[table["workload"] == "uniform-10rps"].set_index("placement")
    assert uniform.loc["SQS: BatchSize 10, window 1 s", "SLO % (steady)"] < 50


def _label(name: str) -> str:
    return next(label for label, shown in placement.NAMES.items() if shown == name)


def test_where_a_placement_batches_comes_from_its_policy() -> None:
    wheres = [placement.where(p) for p in placement.PLACEMENTS.values()]
    assert wheres == ["client", "SQS", "SQS", "SQS", "SQS", "nowhere"]
    assert placement.where(PolicyConfig("slo-aware", 5, 0.1)) == "client"


def _as_live(cells: list[report.Cell]) -> list[report.Cell]:
    """Modelled cells standing in for live ones (as if the local backend had run them)."""
    return [dataclasses.replace(c, config=dataclasses.replace(c.config, backend="local",
                                                              bundle_dir="bundle"))
            for c in cells]  # fmt: skip


def test_the_model_is_checked_against_each_live_cell_and_its_error_widens_the_answer() -> None:
    base = dataclasses.replace(BASE, backend="simulated", bundle_dir=None)
    live = _as_live(placement.model(PlatformProfile.load("local"), base, WORKLOADS[:1],
                                    ["sqs-5-0s", "sqs-10-1s", "dynamic-5-0.3s"], seeds=1))  # fmt: skip
    checked = placement.validate(live, seeds=1)
    assert list(checked["cell"]) == [c.name for c in live]
    assert set(checked["fitted"]) == {"without this cell", "with this cell"}
    assert checked["mean error %"].notna().all()
    assert placement.validate(
        placement.model(PlatformProfile.load("local"), base, WORKLOADS[:1], ["none"], seeds=1)
    ).empty  # the model vs itself
    assert placement.model_error(checked) == checked.loc[
        checked["fitted"] == "without this cell", "SLO error (points)"].abs().max()  # fmt: skip
    groups = placement.choose([], _modelled(["all"]))
    sure = placement.answer(groups, [], n_boot=100)
    unsure = placement.answer(groups, [], n_boot=100, model_error_points=60.0)
    assert list(sure["choose"]) == list(unsure["choose"])  # the point answer is the same
    assert (unsure["confidence %"] < sure["confidence %"]).any()


def test_what_no_live_cell_measured_is_modelled_across_the_live_cells_network() -> None:
    """Only queue cells live: the direct placements come from the stated profile, which has
    no network; the live cells had ``laptop-to-region`` (60 ms median), so must the model."""
    base = dataclasses.replace(BASE, backend="simulated", bundle_dir=None)
    far = simulate.add_network(PlatformProfile.load("local"), network_profile(BASE.network))
    live = _as_live(placement.model(far, base, WORKLOADS[:1], ["sqs-5-0s"], seeds=1))

    def none_median_ms(profile: PlatformProfile) -> float:
        cells = placement.model(profile, base, WORKLOADS[:1], ["none"], seeds=1)
        return float(cells[0].requests["latency_ms"].median())

    assert none_median_ms(placement.fit(live)) < 30.0  # the stated profile alone: no trip
    fitted = placement.fit(live, network=BASE.network)
    assert none_median_ms(fitted) == pytest.approx(none_median_ms(far), rel=0.1)
    assert fitted.queue_pickup_ms != far.queue_pickup_ms  # the queue's own, fitted
    # the other way round: direct cells live, the queue's stated figures get the trip
    direct = _as_live(placement.model(far, base, WORKLOADS[:1], ["dynamic-5-0.3s"], seeds=1))
    queue = placement.fit(direct, network=BASE.network)
    assert queue.source.startswith("fitted")
    stated = PlatformProfile.load("local").queue_answer_ms
    assert np.median(queue.queue_answer_ms) > np.median(stated) + 20.0  # half of a 60 ms trip
    assert placement.validate(live + direct, seeds=1)["mean error %"].abs().max() < 25.0


def test_workloads_shape_is_what_matching_compares() -> None:
    a = WorkloadConfig("uniform", rate=10, duration_s=5, name="u")
    b = dataclasses.replace(a, rate=20)
    config_a = dataclasses.replace(BASE, workload=a)
    assert placement.matching(
        config_a, dataclasses.replace(config_a, workload=dataclasses.replace(a, seed=9))
    )
    assert not placement.matching(config_a, dataclasses.replace(config_a, workload=b))


def test_save_writes_the_tables_and_one_sentence_per_workload(tmp_path) -> None:
    groups = placement.choose([], _modelled(["all"], seeds=1))
    table = placement.compare(groups, [])
    answers = placement.answer(groups, [], n_boot=50)
    out = placement.save(tmp_path / "w", table, answers, placement.validate([]), 200.0)
    assert out is not None and sorted(p.name for p in out.iterdir()) == [
        "answers.csv", "answers.txt", "comparison.csv", "model_check.csv"]  # fmt: skip
    lines = (out / placement.ANSWERS_FILE).read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["uniform-10rps", "bursty"]
    assert placement.save(None, table, answers, placement.validate([]), 200.0) is None


def test_an_answer_resting_on_an_unchecked_model_says_so() -> None:
    modelled = _modelled(["all"], seeds=1)
    live = _as_live([c for c in modelled if c.workload == "uniform-10rps"
                     and c.config.policy.kind == "sqs"][:1])  # fmt: skip
    answers = placement.answer(placement.choose(live, modelled), live, n_boot=50)
    for _, row in answers.iterrows():
        text = placement.sentence(row, 200.0)
        queue = row["choose"].startswith("SQS")
        checked = row["figures"] == "measured" or (row["workload"] == "uniform-10rps" and queue)
        assert row["model checked here"] == checked
        assert ("not checked" in text) == (not checked)


def test_the_network_added_to_the_model_is_the_one_the_kit_adds_not_awss() -> None:
    assert BASE.added_network == "laptop-to-region"
    assert (
        dataclasses.replace(BASE, backend="simulated", bundle_dir=None).added_network
        == "laptop-to-region"
    )
    assert dataclasses.replace(BASE, backend="aws", bundle_dir=None).added_network is None
