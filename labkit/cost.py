"""The AWS Lambda price model (DESIGN.md "Cost"), as one small, checkable formula.

cost = requests x price per request
     + sum over invocations of (billed ms / 1000) x (memory MB / 1024) x price per GB-second
     (+ provisioned concurrency, its own line, when used).

Billed ms comes from the REPORT line; for container images it already includes the Init
Duration (AWS bills the init phase), so ``init_usd`` is the share of compute spent in cold
starts, shown apart, never added twice. No free tier is applied unless asked for
(:func:`apply_free_tier`): an experiment's cost should not depend on what else ran that month.

Prices: https://aws.amazon.com/lambda/pricing/ (retrieved 2026-11-28). Lambda's price is the
same in the regions listed below; other regions (e.g. af-south-1, ap-east-1) differ: pass
your own :class:`Prices`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from labkit.settings import ARCHITECTURES

PRICES_SOURCE = "https://aws.amazon.com/lambda/pricing/ (retrieved 2026-11-28)"
FREE_TIER_REQUESTS = 1_000_000  # per month
FREE_TIER_GB_S = 400_000.0  # per month


@dataclass(frozen=True)
class Prices:
    """USD prices for one region and architecture."""

    per_request: float = 0.20 / 1_000_000
    per_gb_s: float = 0.0000166667
    provisioned_per_gb_s: float = 0.0000041667  # concurrency kept ready, per GB-second
    provisioned_duration_per_gb_s: float = 0.0000097222  # duration on provisioned instances


_X86 = Prices()
_ARM = Prices(
    per_gb_s=0.0000133334,
    provisioned_per_gb_s=0.0000033334,
    provisioned_duration_per_gb_s=0.0000077778,
)
# Regions where Lambda's price equals us-east-1's (the pricing page, same date).
SAME_PRICE_REGIONS = (
    "us-east-1", "us-east-2", "us-west-2", "eu-west-1", "eu-central-1", "ap-northeast-1",
    "ap-northeast-2", "ap-southeast-1", "ap-southeast-2",
)  # fmt: skip


def prices_for(region: str = "us-east-1", architecture: str = "x86_64") -> Prices:
    """The price table for ``region`` and ``architecture``; unknown ones raise ``ValueError``."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"architecture must be one of {ARCHITECTURES}, not {architecture!r}")
    if region not in SAME_PRICE_REGIONS:
        raise ValueError(
            f"no built-in Lambda prices for region {region!r} (known: "
            f"{', '.join(SAME_PRICE_REGIONS)}); pass Prices(...) from {PRICES_SOURCE}"
        )
    return _X86 if architecture == "x86_64" else _ARM


def provisioned_per_hour(instances: int, memory_mb: int, prices: Prices = _X86) -> float:
    """What ``instances`` of provisioned concurrency cost per hour while they exist, used or
    not (their invocations' duration is billed on top, at the provisioned duration rate)."""
    return instances * memory_mb / 1024.0 * 3600.0 * prices.provisioned_per_gb_s


def gb_seconds(billed_ms: float, memory_mb: int) -> float:
    """GB-seconds of one invocation: billed time (rounded up to 1 ms) times memory."""
    return math.ceil(billed_ms) / 1000.0 * memory_mb / 1024.0


def on_demand_usd(invocations: int, billed_ms_total: float, memory_mb: int,
                  prices: Prices = _X86) -> float:  # fmt: skip
    """Requests plus duration of ``invocations`` billed on demand for ``billed_ms_total`` (each
    already rounded up to 1 ms): :func:`invocation_cost`'s total from two sums, for the model's
    runs of a search or a grade (thousands of runs of ~10^3 invocations each, where a loop per
    invocation would cost more than the run)."""
    return (invocations * prices.per_request
            + billed_ms_total / 1000.0 * (memory_mb / 1024.0) * prices.per_gb_s)  # fmt: skip


@dataclass(frozen=True)
class Bill:
    """A cost broken down; every figure in USD except the counts."""

    requests: int
    gb_s: float
    request_usd: float
    compute_usd: float  # all billed duration, cold-start init included
    init_usd: float  # the part of compute_usd spent in init (cold starts)
    provisioned_usd: float = 0.0
    sqs_usd: float = 0.0  # a queue in front of the function (labkit.load.queue_run): its requests

    @property
    def total_usd(self) -> float:
        return self.request_usd + self.compute_usd + self.provisioned_usd + self.sqs_usd

    def per_million(self, n_items: int) -> float:
        """Total cost per 1 million ``n_items`` (requests or images), so runs compare."""
        return self.total_usd / n_items * 1_000_000 if n_items else float("nan")

    def as_dict(self) -> dict[str, float]:
        return asdict(self) | {"total_usd": self.total_usd}


def invocation_cost(
    billed_ms: Iterable[float],
    memory_mb: int,
    *,
    init_ms: Iterable[float | None] = (),
    prices: Prices = _X86,
    provisioned_instances: int = 0,
    provisioned_seconds: float = 0.0,
    on_provisioned: Iterable[bool] | None = None,
) -> Bill:
    """The bill for invocations with these billed durations (one per invocation, i.e. per
    Lambda *request*; a batch of five images is one request).

    ``init_ms`` holds each cold start's Init Duration (``None`` or NaN for warm ones); it is
    part of ``billed_ms`` already. Provisioned concurrency bills ``provisioned_instances`` x
    memory for ``provisioned_seconds`` (AWS rounds that period up to 5 minutes; pass the
    rounded figure if you want AWS's exact line), and the invocations ``on_provisioned``
    marks (one flag per invocation) pay the provisioned duration price instead of the
    on-demand one.
    """
    if memory_mb < 128 or memory_mb > 10_240:
        raise ValueError(f"memory_mb must be 128..10240 (Lambda's range), not {memory_mb}")
    billed = [float(b) for b in billed_ms]
    if any(b < 0 or math.isnan(b) for b in billed):
        raise ValueError("billed durations must be non-negative numbers")
    gb = memory_mb / 1024.0
    each = [gb_seconds(b, memory_mb) for b in billed]
    gb_s = sum(each)
    flags = list(on_provisioned) if on_provisioned is not None else [False] * len(billed)
    if len(flags) != len(billed):
        raise ValueError("on_provisioned needs one flag per billed duration")
    compute_usd = sum(g * (prices.provisioned_duration_per_gb_s if p else prices.per_gb_s)
                      for g, p in zip(each, flags, strict=True))  # fmt: skip
    init_total_ms = sum(i for i in init_ms if i is not None and not math.isnan(i))
    provisioned_gb_s = provisioned_instances * gb * provisioned_seconds
    return Bill(
        requests=len(billed),
        gb_s=gb_s,
        request_usd=len(billed) * prices.per_request,
        compute_usd=compute_usd,
        init_usd=init_total_ms / 1000.0 * gb * prices.per_gb_s,
        provisioned_usd=provisioned_gb_s * prices.provisioned_per_gb_s,
    )


def apply_free_tier(bill: Bill, prices: Prices = _X86) -> Bill:
    """The same usage with the monthly free tier (1M requests, 400,000 GB-s) taken off,
    as the AWS pricing page's examples compute it."""
    requests = max(0, bill.requests - FREE_TIER_REQUESTS)
    gb_s = max(0.0, bill.gb_s - FREE_TIER_GB_S)
    return Bill(
        requests=bill.requests,
        gb_s=bill.gb_s,
        request_usd=requests * prices.per_request,
        compute_usd=gb_s * prices.per_gb_s,
        init_usd=min(bill.init_usd, gb_s * prices.per_gb_s),
        provisioned_usd=bill.provisioned_usd,
    )


def estimate(
    n_invocations: int,
    mean_billed_ms: float,
    memory_mb: int,
    *,
    cold_starts: int = 0,
    init_ms: float = 0.0,
    prices: Prices = _X86,
) -> Bill:
    """A forecast before a run: ``n_invocations`` of ``mean_billed_ms`` each, plus
    ``cold_starts`` inits of ``init_ms`` (billed on top, as for container images)."""
    if n_invocations < 0 or cold_starts < 0:
        raise ValueError("counts must be non-negative")
    billed = [mean_billed_ms] * n_invocations
    billed[: min(cold_starts, n_invocations)] = [mean_billed_ms + init_ms] * min(
        cold_starts, n_invocations
    )
    return invocation_cost(
        billed, memory_mb, init_ms=[init_ms] * min(cold_starts, n_invocations), prices=prices
    )


#: SQS request prices (https://aws.amazon.com/sqs/pricing/, the published list price, not
#: re-checked online for this version): standard queues, FIFO queues, per request; every
#: 64 KB chunk of a payload counts as one request; empty receives count too.
SQS_PER_REQUEST = {"standard": 0.40 / 1_000_000, "fifo": 0.50 / 1_000_000}
SQS_CHUNK_BYTES = 64 * 1024


def sqs_requests(payload_bytes: Iterable[int]) -> int:
    """Billed SQS requests for API calls with these payload sizes (one per started 64 KB)."""
    return sum(max(1, math.ceil(size / SQS_CHUNK_BYTES)) for size in payload_bytes)


#: The billed SQS requests a queue cell counts (labkit.load.queue_run.QueueCell.traffic).
SQS_REQUEST_CALLS = ("billed_sends", "receives", "deletes")
SQS_ANSWER_CALLS = ("answer_sends", "answer_receives", "answer_deletes")


def traffic_cost(traffic: dict[str, Any] | None, *, part: str = "all",
                 fifo: bool = False) -> float:  # fmt: skip
    """USD for a queue cell's SQS calls as its facts record them (``facts["sqs"]``, see
    :meth:`labkit.load.queue_run.QueueCell.traffic`); 0 for a cell with no queue. ``part``:
    ``requests`` (the request queue: sends in 64 KB chunks, the mapping's receives, empty
    long polls included, and deletes; AWS bills the mapping's calls to the queue's owner),
    ``answers`` (the response queue, which is how an SQS-triggered function returns
    anything) or ``all``."""
    if not traffic:
        return 0.0
    calls = {"all": (*SQS_REQUEST_CALLS, *SQS_ANSWER_CALLS), "requests": SQS_REQUEST_CALLS,
             "answers": SQS_ANSWER_CALLS}[part]  # fmt: skip
    price = SQS_PER_REQUEST["fifo" if fifo else "standard"]
    return float(sum(traffic.get(k, 0) for k in calls)) * price


def format_usd(value: float, digits: int = 3) -> str:
    """Dollars with at least ``digits`` significant digits (``0.0000647``, ``0.153``,
    ``18.7``); never rounded away to ``0.00``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if value == 0:
        return "0"
    decimals = max(2, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"
