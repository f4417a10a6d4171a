"""Does batching pay for your model: the probe on the local Lambda, the fit of
Duration(batch, memory), the SLO ceiling, the cost curve and the sentence."""

from __future__ import annotations

import pandas as pd
import pytest
import torch
from torch import nn

from labkit.aws.image import Bundle
from labkit.aws.model_bundle import build_model_bundle
from labkit.studies import your_model
from labkit.studies.your_model import Probe, ProbeConfig, ServiceFit


def linear_probe(base: float = 20.0, per_input: float = 10.0) -> Probe:
    """Calls exactly on the model's line at 1,024 MB and on its CPU scaling at 1,769 MB."""
    rows = []
    for memory in (1024, 1769):
        scale = your_model.vcpu(1024) / your_model.vcpu(memory)
        for batch in (1, 4, 8):
            duration = (base + per_input * batch) * scale
            rows += [{"memory_mb": memory, "batch_size": batch, "duration_ms": duration,
                      "round_trip_ms": duration + 3.0}] * 2  # fmt: skip
    return Probe("line", 200.0, None, pd.DataFrame(rows), [1500.0, 1600.0])


def test_the_fit_recovers_the_line_and_checks_itself_at_the_other_memory() -> None:
    fitted, errors = your_model.fit(linear_probe())
    assert (fitted.base_ms, fitted.per_input_ms) == pytest.approx((20.0, 10.0))
    assert fitted.overhead_ms == pytest.approx(3.0) and fitted.reference_mb == 1024
    out_of_sample = errors[~errors["in_fit"]]
    assert len(out_of_sample) == 3 and (out_of_sample["error_pct"].abs() < 1e-9).all()
    assert float(fitted.duration_ms(1, 3008)) == pytest.approx(float(fitted.duration_ms(1, 1769)))


def dearer_per_input_probe(sizes: tuple[int, ...] = (1, 4, 8)) -> Probe:
    """A model whose batches cost more per input than one input does (as a SqueezeNet's do
    on a fraction of a vCPU): medians 40, 200 and 400 ms at 1, 4 and 8 at 1,024 MB."""
    medians = {1: 40.0, 4: 200.0, 8: 400.0}
    rows = [{"memory_mb": 1024, "batch_size": b, "duration_ms": medians[b] * f,
             "round_trip_ms": medians[b] * f + 3.0}
            for b in sizes for f in (0.95, 1.0, 1.1)]  # fmt: skip
    return Probe("dearer", 300.0, None, pd.DataFrame(rows), [1500.0])


def test_probed_batch_sizes_keep_their_measured_times_where_the_line_would_not() -> None:
    fitted, errors = your_model.fit(dearer_per_input_probe())
    assert fitted.base_ms < 0  # the least-squares line: 40 ms at a batch of one is above it
    assert float(fitted.duration_ms(1, 1024)) == pytest.approx(40.0)
    assert float(fitted.duration_ms(6, 1024)) == pytest.approx(300.0)  # between 4 and 8
    assert float(fitted.duration_ms(10, 1024)) == pytest.approx(400.0 + 2 * fitted.per_input_ms)
    assert (errors["error_pct"].abs() < 1e-9).all()  # the reference memory's own medians
    slower = your_model.vcpu(1024) / your_model.vcpu(512)
    assert float(fitted.duration_ms(1, 512)) == pytest.approx(40.0 * slower)
    # the simulator's profile serves the same curve, at the reference memory and elsewhere
    for memory in (1024, 512):
        simulated = your_model.profile(fitted, dearer_per_input_probe(), memory)
        for batch in (1, 2, 6, 8, 9, 12):
            assert simulated.service_s(batch) * 1000 == pytest.approx(
                float(fitted.duration_ms(batch, memory)), rel=1e-4
            ), (memory, batch)
        assert simulated.at_memory(1024).service_s(1) * 1000 == pytest.approx(40.0, rel=1e-4)
    # below the smallest probed size, never cheaper per input than that size
    unprobed_one = your_model.fit(dearer_per_input_probe((4, 8)))[0]
    assert float(unprobed_one.duration_ms(1, 1024)) >= 200.0 / 4


def test_the_slo_ceiling_the_cost_curve_and_the_sentence() -> None:
    fitted = ServiceFit("line", base_ms=20.0, per_input_ms=10.0, reference_mb=1024, overhead_ms=3.0)
    # at 1,024 MB: 20 + 10 b ms; with 3 ms overhead and a 60 ms network, 200 ms fits b <= 11
    assert your_model.largest_within_slo(fitted, 1024, 200.0, 60.0, None) == 11
    assert your_model.largest_within_slo(fitted, 1024, 200.0, 60.0, 7) == 7  # the payload cap
    assert your_model.largest_within_slo(fitted, 1024, 50.0, 60.0, None) == 0
    assert fitted.saved_per_input_pct(5, 1024) == pytest.approx((1 - 70 / 5 / 30) * 100)
    curve = your_model.cost_curve(fitted, [1024, 1769], 200.0, 60.0, None)
    at_1024 = curve[curve["memory_mb"] == 1024].set_index("batch_size")
    assert at_1024["warm_usd_per_1m"].is_monotonic_decreasing  # fees and fixed costs shared
    assert at_1024.loc[11, "fits_slo"] and not at_1024.loc[12, "fits_slo"]
    pays = your_model.verdict_sentence(fitted, 1024, 200.0, 60.0, None)
    assert "53 % less compute per input" in pays and "batching pays" in pays
    assert "one input takes 30.0 ms, a batch of 5 70.0 ms" in pays  # to 0.1 ms, as the tables
    tiny = ServiceFit("tiny", base_ms=0.3, per_input_ms=0.1, reference_mb=1024, overhead_ms=3.0)
    assert "one input takes 0.2 ms" in your_model.verdict_sentence(tiny, 3008, 200.0, 60.0, None)
    hurts = your_model.verdict_sentence(fitted, 1024, 120.0, 60.0, None)
    assert "at most 3" in hurts and "batching 5 hurts" in hurts
    flat = ServiceFit("flat", base_ms=0.0, per_input_ms=30.0, reference_mb=1024, overhead_ms=3.0)
    assert "save little compute" in your_model.verdict_sentence(flat, 1024, 400.0, 60.0, None)
    worse = ServiceFit("worse", base_ms=-5.0, per_input_ms=30.0, reference_mb=1024, overhead_ms=3.0)
    sentence = your_model.verdict_sentence(worse, 1024, 400.0, 60.0, None)
    assert "more compute per input" in sentence and "cost more compute per input" in sentence
    assert "more memory first" in your_model.verdict_sentence(flat, 1024, 60.0, 60.0, None)


class Pool(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def probed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bundle, Probe]:
    """A model the kit has never seen, bundled and probed once on the local Lambda."""
    folder = tmp_path_factory.mktemp("pool")
    torch.jit.save(torch.jit.script(Pool()), str(folder / "pool.pt"))
    bundle = build_model_bundle(
        folder / "pool.pt", folder / "bundle", input_spec="float32[3,64,64]", slo_ms=150
    )
    config = ProbeConfig(batch_sizes=(1, 4), memories_mb=(1024,), calls=2, cpu_share=False)
    return bundle, your_model.probe(bundle, config)


def test_a_probe_of_a_new_model_on_the_local_lambda(probed: tuple[Bundle, Probe]) -> None:
    _, result = probed
    assert result.slo_ms == 150 and len(result.calls) == 4 and result.init_ms[0] > 0
    assert set(result.calls["batch_size"]) == {1, 4}
    fitted, errors = your_model.fit(result)
    assert fitted.per_input_ms >= 0 and errors["in_fit"].all()


def test_a_probe_needs_two_batch_sizes() -> None:
    with pytest.raises(ValueError, match="two or more sizes"):
        ProbeConfig(batch_sizes=(4,))


def test_the_fitted_model_is_checked_against_a_live_cell(probed: tuple[Bundle, Probe]) -> None:
    bundle, result = probed
    fitted, _ = your_model.fit(result)
    checks = your_model.check_live(bundle, fitted, result, duration_s=3.0, cpu_share=False)
    assert list(checks["metric"]) == ["mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct"]
    assert (checks["live"].iloc[:3] > 0).all() and (checks["modelled"].iloc[:3] > 0).all()
    serve = 2 * 2 / (float(fitted.duration_ms(2, 1024)) / 1000 + 0.3)  # 2 instances, batches of 2
    assert checks["rate"].iloc[0] == pytest.approx(serve / 2, abs=0.01)  # half of it


def test_the_figures_draw_a_panel_per_model() -> None:
    from labkit.analysis import plots

    probe = linear_probe()
    fitted, _ = your_model.fit(probe)
    times = plots.service_times({"a": probe, "b": probe}, {"a": fitted, "b": fitted})
    curves = your_model.cost_curve(fitted, [1024, 1769], 200.0, 60.0, None)
    cost = plots.batch_cost(pd.concat([curves, curves.assign(model="other")]))
    assert [ax.get_title() for ax in times.axes] == ["a", "b"]
    assert [ax.get_title() for ax in cost.axes] == ["line", "other"]
    assert cost.axes[0].get_ylabel() == "warm USD per 1M requests"
