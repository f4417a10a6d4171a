"""Does batching pay for your model? A short live probe of its service time, a fit of
Duration(batch, memory), and the answer in numbers and a sentence.

The probe runs the model's bundle on the embedded local Lambda (with Lambda's CPU share where
the system allows it: memory / 1,769 of a vCPU) at a few batch sizes and memory sizes, warm
calls after one cold start each. The fit is a line per memory, Duration = base + per input
x batch, fitted at the first (reference) memory and carried to the others by the CPU it
gets, ``min(memory, 1769) / 1769`` of a vCPU (a single-threaded handler gains nothing above
one vCPU); the probe's other memories are the fit's out-of-sample check.

What it answers per model and memory: the compute per input a batch of N saves, the largest
batch whose own service fits the SLO with the network's round trip (waiting for the batch
comes on top: a necessary condition, not a sufficient one), Lambda's payload cap, and the
warm cost per 1M requests against batch size.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import backends, cost, metrics
from labkit.analysis import claims, comparison, numbers
from labkit.analysis.cells import paper_table1, simulated_cell
from labkit.aws.image import Bundle, ensure_bundle
from labkit.aws.invoke import LambdaInvoker
from labkit.aws.model_bundle import build_model_bundle
from labkit.emulator import FunctionConfig, LocalLambda
from labkit.emulator.network import network_profile
from labkit.experiment import ExperimentConfig, stream_seed
from labkit.load.batching import PolicyConfig
from labkit.load.loadgen import LoadConfig, Payloads
from labkit.load.workloads import WorkloadConfig
from labkit.models import registry
from labkit.settings import FunctionSettings
from labkit.sim.simulate import (
    PlatformProfile,
    SimConfig,
    add_network,
    simulate,
    vcpu,
)

#: Answered steady-state requests a live check needs; with fewer it compares all requests.
MIN_STEADY = 5
#: Below this share of compute saved per input, batching "saves little".
LITTLE_PCT = 10.0


@dataclass(frozen=True)
class ProbeConfig:
    """What a probe measures: batch sizes (capped by the model's payload limit), memory
    sizes (the first is the fit's reference), warm calls per point."""

    batch_sizes: tuple[int, ...] = (1, 4, 8)
    memories_mb: tuple[int, ...] = (1024, 1769)
    calls: int = 3
    cpu_share: bool = True

    def __post_init__(self) -> None:
        if not self.batch_sizes or min(self.batch_sizes) < 1 or len(set(self.batch_sizes)) < 2:
            raise ValueError(f"batch_sizes needs two or more sizes >= 1, not {self.batch_sizes}")
        if not self.memories_mb or self.calls < 1:
            raise ValueError("a probe needs at least one memory size and one call per point")


@dataclass
class Probe:
    """One model's probe: every warm call's Duration and round trip, and the cold starts'
    Init Durations."""

    model: str
    slo_ms: float
    largest_batch: int | None
    calls: pd.DataFrame  # memory_mb, batch_size, duration_ms, round_trip_ms
    init_ms: list[float] = field(default_factory=list)
    memory_used_mb: float | None = None  # the largest Max Memory Used its calls reported


def probe(bundle: Bundle, config: ProbeConfig = ProbeConfig(), *, slo_ms: float | None = None,
          model: str | None = None) -> Probe:  # fmt: skip
    """Measure ``bundle`` on the local Lambda as :class:`ProbeConfig` says (``model``: the
    name to report it under, default the bundle's)."""
    sizes = [
        b for b in config.batch_sizes if bundle.largest_batch is None or b <= bundle.largest_batch
    ]
    rows, inits = [], []
    for memory in config.memories_mb:
        function = FunctionConfig(name="probe", code_dir=bundle.path, handler=bundle.handler,
                                  memory_mb=memory, timeout_s=300, concurrency=1,
                                  cpu_share=config.cpu_share)  # fmt: skip
        with LocalLambda(function) as lam:
            invoker = LambdaInvoker(endpoint_url=lam.endpoint_url)
            first = invoker.invoke("probe", event(bundle, 1))
            init = first.report.init_duration_ms if first.report else None
            inits.append(math.nan if init is None else float(init))
            for size in sizes:
                request = event(bundle, size)
                for _ in range(config.calls):
                    answer = invoker.invoke("probe", request)
                    if answer.function_error or answer.report is None:
                        raise RuntimeError(
                            f"{bundle.model_name} failed at batch {size}: {answer.response}"
                        )
                    rows.append({"memory_mb": memory, "batch_size": size,
                                 "duration_ms": answer.report.duration_ms,
                                 "round_trip_ms": answer.round_trip_ms,
                                 "max_memory_used_mb": answer.report.max_memory_used_mb})  # fmt: skip
    calls = pd.DataFrame(rows)
    used = calls["max_memory_used_mb"].dropna() if len(calls) else pd.Series([], dtype=float)
    return Probe(model or bundle.model_name, slo_ms or bundle.slo_ms or 200.0, bundle.largest_batch,
                 calls, inits, float(used.max()) if len(used) else None)  # fmt: skip


def event(bundle: Bundle, batch: int, seed: int = 0) -> dict[str, Any]:
    """A batch of ``batch`` inputs for ``bundle``'s model (MNIST digits for the lab's CNN)."""
    if bundle.input:
        payloads = Payloads.for_input(bundle.input, bundle.codec or "tensor", batch, seed)
    else:
        from labkit.data import make_instances, synthetic_mnist  # deferred: torch

        payloads = Payloads(
            make_instances(synthetic_mnist(batch, seed=seed).images), np.zeros(batch)
        )
    return {"instances": [{**x, "id": str(i)} for i, x in enumerate(payloads.instances[:batch])]}


@dataclass(frozen=True)
class ServiceFit:
    """Duration(batch, memory) = service(batch) x vcpu(reference) / vcpu(memory), where
    service(batch) at the reference memory is the probe's median Duration at a probed batch
    size, the straight line between the two probed sizes around an unprobed one, and past the
    largest probed size its median plus ``per_input_ms`` a further input.

    Why not the least-squares line (``base_ms + per_input_ms x batch``) throughout: where a
    batch costs more per input than one input does, the line's intercept comes out negative,
    and at a batch of one it missed the probe's own median by up to 4x (a SqueezeNet at
    1,024 MB: 40-45 ms measured at a batch of one, 10 ms on one probe's line), enough to
    turn ``labkit tune``'s answer from batching to none. Without ``measured_ms`` (a stated
    fit), the line is the curve."""

    model: str
    base_ms: float
    per_input_ms: float
    reference_mb: int
    overhead_ms: float  # the probe's median round trip minus Duration (the local hop)
    #: (batch size, median Duration in ms) at the reference memory, by size
    measured_ms: tuple[tuple[int, float], ...] = ()

    def duration_ms(self, batch: int | np.ndarray, memory_mb: int) -> Any:
        return (
            self._reference_ms(np.asarray(batch, float)) * vcpu(self.reference_mb) / vcpu(memory_mb)
        )

    def _reference_ms(self, batch: np.ndarray) -> Any:
        if not self.measured_ms:
            return self.base_ms + self.per_input_ms * batch
        sizes = np.array([size for size, _ in self.measured_ms], float)
        medians = np.array([ms for _, ms in self.measured_ms])
        between = np.interp(batch, sizes, medians)
        above = medians[-1] + self.per_input_ms * (batch - sizes[-1])
        # below the smallest probed size: the line back from it, but never less than that
        # size's time per input (a smaller batch does not cost less per input)
        below = np.maximum(medians[0] - self.per_input_ms * (sizes[0] - batch),
                           medians[0] * batch / sizes[0])  # fmt: skip
        return np.where(batch > sizes[-1], above, np.where(batch < sizes[0], below, between))

    def saved_per_input_pct(self, batch: int, memory_mb: int) -> float:
        """Compute per input a batch of ``batch`` saves against batches of 1 (%)."""
        one = float(self.duration_ms(1, memory_mb))
        return (
            (1 - float(self.duration_ms(batch, memory_mb)) / batch / one) * 100 if one else math.nan
        )


def fit(result: Probe) -> tuple[ServiceFit, pd.DataFrame]:
    """The fit at the probe's first memory (its medians per batch size, and a least-squares
    line over its calls whose slope carries the curve past the largest size; the line's
    intercept may come out negative where a batch costs more per input than one input does),
    and its error at every probed point (median Duration, fitted vs measured, %): exact at
    the reference memory, out of sample at the other memories."""
    calls = result.calls
    reference = int(calls["memory_mb"].iloc[0])
    at = calls[calls["memory_mb"] == reference]
    per_input, base = np.polyfit(
        at["batch_size"].to_numpy(float), at["duration_ms"].to_numpy(float), 1
    )
    overhead = float((calls["round_trip_ms"] - calls["duration_ms"]).median())
    medians = calls.groupby(["memory_mb", "batch_size"], as_index=False)["duration_ms"].median()
    measured = medians[medians["memory_mb"] == reference]
    fitted = ServiceFit(result.model, float(base), max(float(per_input), 0.0), reference, overhead,
                        tuple(zip(measured["batch_size"].astype(int).tolist(),
                                  measured["duration_ms"].astype(float).tolist(), strict=True)))  # fmt: skip
    medians["fitted_ms"] = [
        float(fitted.duration_ms(b, m))
        for m, b in zip(medians["memory_mb"], medians["batch_size"], strict=True)
    ]
    medians["error_pct"] = (medians["fitted_ms"] / medians["duration_ms"] - 1) * 100
    medians["in_fit"] = medians["memory_mb"] == reference
    return fitted, medians


def largest_within_slo(fitted: ServiceFit, memory_mb: int, slo_ms: float, network_ms: float,
                       cap: int | None, limit: int = 64) -> int:  # fmt: skip
    """The largest batch whose own service (and one network round trip) fits ``slo_ms``,
    within the payload ``cap``; 0 when not even one input does."""
    top = min(cap or limit, limit)
    fits = [b for b in range(1, top + 1)
            if float(fitted.duration_ms(b, memory_mb)) + fitted.overhead_ms + network_ms <= slo_ms]  # fmt: skip
    return max(fits, default=0)


def warm_cost_per_1m(fitted: ServiceFit, batch: int, memory_mb: int,
                     prices: cost.Prices | None = None) -> float:  # fmt: skip
    """Request fees and warm compute per 1M requests when each invocation carries ``batch``."""
    prices = prices or cost.Prices()
    billed_s = math.ceil(float(fitted.duration_ms(batch, memory_mb))) / 1000.0
    per_invocation = prices.per_request + billed_s * memory_mb / 1024.0 * prices.per_gb_s
    return per_invocation / batch * 1e6


def cost_curve(fitted: ServiceFit, memories_mb: list[int], slo_ms: float, network_ms: float,
               cap: int | None, largest: int = 16) -> pd.DataFrame:  # fmt: skip
    """Warm cost per 1M requests against batch size at each memory, and whether a batch's own
    service still fits the SLO."""
    rows = []
    for memory in memories_mb:
        ceiling = largest_within_slo(fitted, memory, slo_ms, network_ms, cap)
        for batch in range(1, min(cap or largest, largest) + 1):
            rows.append({"model": fitted.model, "memory_mb": memory, "batch_size": batch,
                         "duration_ms": float(fitted.duration_ms(batch, memory)),
                         "warm_usd_per_1m": warm_cost_per_1m(fitted, batch, memory),
                         "fits_slo": batch <= ceiling})  # fmt: skip
    return pd.DataFrame(rows)


def verdict_sentence(fitted: ServiceFit, memory_mb: int, slo_ms: float, network_ms: float,
                     cap: int | None, batch: int = 5) -> str:  # fmt: skip
    """Whether batching pays for this model at ``memory_mb``, in one plain sentence."""
    one, many = float(fitted.duration_ms(1, memory_mb)), float(fitted.duration_ms(batch, memory_mb))
    ceiling = largest_within_slo(fitted, memory_mb, slo_ms, network_ms, cap)
    saved = fitted.saved_per_input_pct(batch, memory_mb)
    cost_1, cost_n = (
        warm_cost_per_1m(fitted, 1, memory_mb),
        warm_cost_per_1m(fitted, batch, memory_mb),
    )
    facts = (f"{fitted.model} at {memory_mb:,} MB: one input takes {numbers.milliseconds(one)} ms, "
             f"a batch of {batch} {numbers.milliseconds(many)} ms ({_saving(saved)}; warm cost "
             f"${cost.format_usd(cost_1)} "
             f"-> ${cost.format_usd(cost_n)} per 1M requests)")  # fmt: skip
    where = f"; the payload cap allows {cap}" if cap is not None and cap < 64 else ""
    if ceiling == 0:
        return f"{facts}; not even one input fits the {slo_ms:g} ms SLO{where}: more memory first."
    if ceiling < batch:
        return (
            f"{facts}; but the {slo_ms:g} ms SLO leaves room for batches of at most {ceiling} "
            f"(service and the network alone){where}: batching {batch} hurts here."
        )
    if saved < LITTLE_PCT:
        return (
            f"{facts}; batches of up to {ceiling} fit the {slo_ms:g} ms SLO{where}, but they "
            f"{'cost more' if saved < 0 else 'save little'} compute per input: batching pays in "
            f"request fees only, and costs the wait for the batch."
        )
    return (
        f"{facts}; batches of up to {ceiling} fit the {slo_ms:g} ms SLO{where}: batching pays, "
        f"if the wait for a batch stays within what is left of the SLO."
    )


def bundles(models: list[str], own: str | None = None, *, model_dir: str | None = None,
            run_dir: str | None = None) -> dict[str, Bundle]:  # fmt: skip
    """A bundle per registry model (built into the run's ``bundles`` folder, or
    ``bundles/<name>``), and ``own`` (a bundle folder: yours) beside them."""
    out: dict[str, Bundle] = {}
    for name in models:
        entry = registry.get(name)
        if entry.build is None:
            out[name] = ensure_bundle(model_dir, run_dir=run_dir)
        else:
            folder = Path(run_dir) / "bundles" / name if run_dir else None
            out[name] = build_model_bundle(name, folder)
    if own:
        bundle = Bundle.open(own)
        out[bundle.model_name] = bundle
    return out


def profile(fitted: ServiceFit, result: Probe, memory_mb: int | None = None) -> PlatformProfile:
    """A simulator profile of the model at ``memory_mb`` (default the fit's reference): the
    fit's curve carried there (a median per batch size up to the largest probed, the line
    past it), the probe's spread around its medians (lognormal), its overhead and its Init
    Durations."""
    memory = memory_mb or fitted.reference_mb
    scale = vcpu(fitted.reference_mb) / vcpu(memory)
    calls = result.calls
    medians = calls.groupby(["memory_mb", "batch_size"])["duration_ms"].transform("median")
    spread = np.log(calls["duration_ms"] / medians).std()
    inits = [x for x in result.init_ms if np.isfinite(x)] or [0.0]
    largest = max((size for size, _ in fitted.measured_ms), default=0)
    by_size = {
        str(n): round(float(fitted.duration_ms(n, memory)), 4) for n in range(1, largest + 1)
    }
    # past the largest probed size the simulator uses its line: the fit's, through that
    # size's median (ServiceFit's curve there)
    base = (
        float(fitted.duration_ms(largest, memory)) - fitted.per_input_ms * scale * largest
        if largest
        else fitted.base_ms * scale
    )
    return PlatformProfile(name=fitted.model, source=f"fitted on a live probe of {fitted.model}",
                           base_ms=base, per_image_ms=fitted.per_input_ms * scale,
                           service_ms_by_size=by_size,
                           sigma=float(max(spread, 0.02)) if np.isfinite(spread) else 0.1,
                           overhead_ms=[fitted.overhead_ms], init_ms=inits, memory_mb=memory,
                           memory_used_mb=result.memory_used_mb)  # fmt: skip


def paper_comparison(fitted: ServiceFit, result: Probe, *, network: str | None = "laptop-to-region",
                     repetitions: int = 3, duration_s: float = 60.0, concurrency: int = 10,
                     n_boot: int = 0) -> pd.DataFrame:  # fmt: skip
    """The paper's comparison for this model at its own SLO, simulated with its fitted
    profile: static against dynamic batching (N = 5, T = 0.3 s) on the paper's uniform
    (10/s) and bursty workloads, ``repetitions`` times; each metric's change with its
    interval from the repetitions, the verdict against the paper's direction, and the
    magnitude (:mod:`labkit.analysis.claims`)."""
    model_profile = profile(fitted, result)
    distance = network_profile(network)
    if distance is not None:
        model_profile = add_network(model_profile, distance)
    paper = paper_table1().set_index(["batching", "workload"])
    workloads = [WorkloadConfig("uniform", rate=10, duration_s=duration_s, name="uniform-10rps"),
                 WorkloadConfig("bursty", duration_s=duration_s)]  # fmt: skip
    rows = []
    for workload in workloads:
        sides = []
        for policy in (PolicyConfig("static", 5), PolicyConfig("dynamic", 5, 0.3)):
            cells = []
            for r in range(repetitions):
                seed = stream_seed(0, workload.label, r)
                config = ExperimentConfig(bundle_dir="-", backend="simulated", policy=policy,
                                          workload=dataclasses.replace(workload, seed=seed),
                                          repetition=r, slo_ms=result.slo_ms)  # fmt: skip
                cells.append(
                    simulated_cell(config, model_profile, seed=seed, concurrency=concurrency)
                )
            sides.append(cells)
        for metric, c in comparison.compare(*sides, n_boot=n_boot).items():
            _, _, paper_change = claims.paper_figures(paper, workload.kind, metric)
            found, judged = claims.judge(c, paper_change)
            rows.append({"model": fitted.model, "workload": workload.label, "metric": metric,
                         "static": c.a, "dynamic": c.b, "change": c.change,
                         "ci_low": c.interval.low, "ci_high": c.interval.high,
                         "paper_change": paper_change, "verdict": found,
                         "magnitude": claims.magnitude(paper_change, c.interval.low, c.interval.high)
                         if judged else "-"})  # fmt: skip
    return pd.DataFrame(rows)


def _saving(saved_pct: float) -> str:
    if saved_pct < 0:
        return f"{-saved_pct:.0f} % more compute per input"
    return f"{saved_pct:.0f} % less compute per input"


def save(folder: str | Path, *, probes: dict[str, Probe], tables: dict[str, pd.DataFrame],
         sentences: list[str], figures: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """The study's records into ``folder``: every probed call (``calls.csv``, with each
    model's Init Durations in ``inits.csv``), the tables given (``<name>.csv``), the
    sentences (``answers.md``) and the figures (PNG and SVG)."""
    from labkit.analysis import plots  # deferred: matplotlib, for the figures only

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    pd.concat([p.calls.assign(model=name) for name, p in probes.items()], ignore_index=True).to_csv(
        out / "calls.csv", index=False
    )
    pd.DataFrame(
        [{"model": name, "init_ms": x} for name, p in probes.items() for x in p.init_ms]
    ).to_csv(out / "inits.csv", index=False)
    for name, table in tables.items():
        table.to_csv(out / f"{name}.csv", index=False)
    (out / "answers.md").write_text("\n".join(f"- {s}" for s in sentences) + "\n")
    for name, fig in (figures or {}).items():
        plots.save(fig, out, name)
    return out


def check_live(bundle: Bundle, fitted: ServiceFit, result: Probe, *, duration_s: float = 6.0,
               batch: int = 2, concurrency: int = 2, cpu_share: bool = True) -> pd.DataFrame:  # fmt: skip
    """The simulator with the model's fitted profile against a live cell it was not fitted
    on: ``duration_s`` of uniform traffic through dynamic batching (``batch``, 0.3 s) on the
    local Lambda at the fit's reference memory, at half the rate ``concurrency`` instances
    serve (so the cell measures service, not an overload), and the same arrivals simulated.
    One row per figure (steady state, or all requests where cold starts delayed nearly all):
    live, modelled, the model's error in % (points for SLO attainment)."""
    memory = fitted.reference_mb
    per_second = concurrency * batch / (float(fitted.duration_ms(batch, memory)) / 1000.0 + 0.3)
    rate = max(1.0, min(20.0, per_second / 2))
    arrivals = WorkloadConfig("uniform", rate=rate, duration_s=duration_s).arrivals()
    policy = PolicyConfig("dynamic", batch, 0.3)
    function = FunctionSettings(memory_mb=memory, concurrency=concurrency, cpu_share=cpu_share)
    live_backend = backends.create("local", function, bundle_dir=str(bundle.path))
    try:
        payloads = Payloads(event(bundle, 8)["instances"], np.full(8, -1))
        live = live_backend.run_cell(arrivals, policy.build(), payloads,
                                     LoadConfig(max_in_flight=concurrency, progress=False),
                                     slo_s=result.slo_ms / 1000.0)  # fmt: skip
    finally:
        live_backend.stop()
    modelled = simulate(arrivals, policy.build(), profile(fitted, result),
                        SimConfig(concurrency=concurrency, slo_s=result.slo_ms / 1000.0))  # fmt: skip
    rows = []
    options: dict[str, Any] = {"slo_ms": result.slo_ms, "view": "steady", "memory_mb": memory}
    figures = [metrics.summarize(r.requests, r.invocations, **options) for r in (live, modelled)]
    if min(f["n"] - f["errors"] for f in figures) < MIN_STEADY:  # cold starts delayed nearly all
        options["view"] = "all"
        figures = [
            metrics.summarize(r.requests, r.invocations, **options) for r in (live, modelled)
        ]
    for name in ("mean_ms", "p50_ms", "p99_ms", "slo_attainment_pct"):
        rows.append({"model": result.model, "rate": round(rate, 2), "view": options["view"], "metric": name,
                     "live": figures[0][name], "modelled": figures[1][name],
                     "error": metrics.change(name, figures[0][name], figures[1][name])})  # fmt: skip
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- notebook 10
@dataclass
class Study:
    """Notebook 10's answer for several models: each model's probe and fit, the fit's
    errors, and what follows from them at the client's network distance."""

    probes: dict[str, Probe]
    fits: dict[str, ServiceFit]
    errors: pd.DataFrame
    network_ms: float

    def cost_curves(self, memories_mb: list[int]) -> pd.DataFrame:
        return pd.concat([cost_curve(self.fits[n], memories_mb, p.slo_ms, self.network_ms, p.largest_batch)
                          for n, p in self.probes.items()], ignore_index=True)  # fmt: skip

    def paper_comparisons(self, network: str | None, **options: Any) -> pd.DataFrame:
        return pd.concat([paper_comparison(self.fits[n], p, network=network, **options)
                          for n, p in self.probes.items()], ignore_index=True)  # fmt: skip

    def live_checks(
        self, bundles: dict[str, Bundle], duration_s: float, cpu_share: bool
    ) -> pd.DataFrame:
        if not duration_s:
            return pd.DataFrame(
                columns=["model", "rate", "view", "metric", "live", "modelled", "error"]
            )
        return pd.concat([check_live(bundles[n], self.fits[n], p, duration_s=duration_s, cpu_share=cpu_share)
                          for n, p in self.probes.items()], ignore_index=True)  # fmt: skip

    def sentences(self, memories_mb: list[int]) -> list[str]:
        return [verdict_sentence(self.fits[n], m, p.slo_ms, self.network_ms, p.largest_batch)
                for n, p in self.probes.items() for m in memories_mb]  # fmt: skip


def study(bundles: dict[str, Bundle], config: ProbeConfig, network: str | None) -> Study:
    """Probe and fit every model of ``bundles`` (keyed by the name to report)."""
    probes = {name: probe(bundle, config, model=name) for name, bundle in bundles.items()}
    fits, errors = {}, []
    for name, result in probes.items():
        fits[name], error = fit(result)
        errors.append(error.assign(model=name))
    distance = network_profile(network)
    return Study(
        probes, fits, pd.concat(errors, ignore_index=True), distance.median_ms if distance else 0.0
    )


def save_study(run_dir: str | Path, study_: Study, *, curves: pd.DataFrame, comparisons: pd.DataFrame,
               checks: pd.DataFrame, sentences: list[str]) -> Path:  # fmt: skip
    """Notebook 10's records and figures into ``<run_dir>/your-model`` (:func:`save`)."""
    from labkit.analysis import plots  # deferred: matplotlib, for the figures only

    figures = {"service_times": plots.service_times(study_.probes, study_.fits),
               "batch_cost": plots.batch_cost(curves)}  # fmt: skip
    tables = {"fit_errors": study_.errors, "cost_curve": curves,
              "paper_comparison": comparisons, "live_check": checks}  # fmt: skip
    return save(Path(run_dir) / "your-model", probes=study_.probes, tables=tables,
                sentences=sentences, figures=figures)  # fmt: skip
