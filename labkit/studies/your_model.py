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

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost
from labkit.aws.image import Bundle
from labkit.aws.invoke import LambdaInvoker
from labkit.emulator import FunctionConfig, LocalLambda
from labkit.load.loadgen import Payloads

#: Memory at which Lambda gives a function one full vCPU.
FULL_VCPU_MB = 1769
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


def probe(
    bundle: Bundle, config: ProbeConfig = ProbeConfig(), *, slo_ms: float | None = None
) -> Probe:
    """Measure ``bundle`` on the local Lambda as :class:`ProbeConfig` says."""
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
                                 "round_trip_ms": answer.round_trip_ms})  # fmt: skip
    return Probe(bundle.model_name, slo_ms or bundle.slo_ms or 200.0, bundle.largest_batch,
                 pd.DataFrame(rows), inits)  # fmt: skip


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


def vcpu(memory_mb: int) -> float:
    """The share of a vCPU a single-threaded handler gets at ``memory_mb`` on Lambda."""
    return min(memory_mb, FULL_VCPU_MB) / FULL_VCPU_MB


@dataclass(frozen=True)
class ServiceFit:
    """Duration(batch, memory) = (base + per input x batch) x vcpu(reference) / vcpu(memory)."""

    model: str
    base_ms: float
    per_input_ms: float
    reference_mb: int
    overhead_ms: float  # the probe's median round trip minus Duration (the local hop)

    def duration_ms(self, batch: int | np.ndarray, memory_mb: int) -> Any:
        return (
            (self.base_ms + self.per_input_ms * np.asarray(batch))
            * vcpu(self.reference_mb)
            / vcpu(memory_mb)
        )

    def saved_per_input_pct(self, batch: int, memory_mb: int) -> float:
        """Compute per input a batch of ``batch`` saves against batches of 1 (%)."""
        one = float(self.duration_ms(1, memory_mb))
        return (
            (1 - float(self.duration_ms(batch, memory_mb)) / batch / one) * 100 if one else math.nan
        )


def fit(result: Probe) -> tuple[ServiceFit, pd.DataFrame]:
    """The fit at the probe's first memory (least squares over its calls), and its error
    at every probed point (median Duration, fitted vs measured, %): out of sample at the
    other memories."""
    calls = result.calls
    reference = int(calls["memory_mb"].iloc[0])
    at = calls[calls["memory_mb"] == reference]
    per_input, base = np.polyfit(
        at["batch_size"].to_numpy(float), at["duration_ms"].to_numpy(float), 1
    )
    overhead = float((calls["round_trip_ms"] - calls["duration_ms"]).median())
    fitted = ServiceFit(
        result.model, max(float(base), 0.0), max(float(per_input), 0.0), reference, overhead
    )
    medians = calls.groupby(["memory_mb", "batch_size"], as_index=False)["duration_ms"].median()
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
    facts = (f"{fitted.model} at {memory_mb:,} MB: one input takes {one:,.0f} ms, a batch of {batch} "
             f"{many:,.0f} ms ({saved:.0f} % less compute per input; warm cost ${cost.format_usd(cost_1)} "
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
            f"{facts}; batches of up to {ceiling} fit the {slo_ms:g} ms SLO{where}, but they save "
            f"little compute: batching pays in request fees only, and costs the wait for the batch."
        )
    return (
        f"{facts}; batches of up to {ceiling} fit the {slo_ms:g} ms SLO{where}: batching pays, "
        f"if the wait for a batch stays within what is left of the SLO."
    )
