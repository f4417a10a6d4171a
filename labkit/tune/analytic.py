"""A closed-form model of batching under Poisson arrivals, beside the simulator.

For a Poisson stream of rate ``λ`` and dynamic batching (``N``, ``T``), batches form a
renewal process: a batch opens with a request and closes after ``N - 1`` more arrivals or
``T``, whichever is first. So its size ``K`` is ``1 + min(Poisson(λT), N - 1)``, and a
request's wait for its batch is known in distribution:

- a batch that timed out (``K = k < N``) holds its first request for ``T`` and the other
  ``k - 1`` for independent ``Uniform(0, T)`` waits (arrivals of a Poisson process in an
  interval are uniform given their count);
- a full batch closes at ``S``, the ``(N - 1)``-th gap sum (``Gamma(N - 1, λ)`` given it is
  below ``T``): its first request waits ``S``, the last none, the others ``Uniform(0, S)``.

Static batching is the case ``T = ∞``; no batching is ``N = 1``. A request's latency is its
wait plus the client's own time, the round trip beyond Duration (the profile's samples) and
the service of its batch, lognormal around the profile's median for size ``k`` (mean-one
noise), as the simulator draws them. Percentiles and SLO attainment follow from the mixture
over sizes, weighted by the requests each size carries; the warm cost from the mean billed
duration per size (rounded up to the millisecond: + 0.5 ms on average).

A bursty workload of the kit's kind (Poisson at ``burst_rate`` for ``burst_s``, then at
``base_rate``) is taken as its phases, each stationary, weighted by the requests it brings
(a quasi-static mixture: exact as phases grow long against ``T``; BATCH, Ali et al., SC'20,
models such traffic as a Markov-modulated Poisson process and solves for the batch-size
distribution the same way).

What it leaves out, and the simulator keeps: cold starts, a concurrency limit (the model
takes instances as unlimited and never queues a batch), throttles, the batches that straddle
a phase change, policies that learn (SLO-aware) and queues (SQS). Where the two disagree,
the simulator decides; :func:`agreement` measures where they part.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from labkit import cost
from labkit.load.batching import PolicyConfig
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import PlatformProfile

#: Policies the model covers.
COVERED = ("none", "static", "dynamic")
_WAIT_POINTS = 256
_OVERHEAD_QUANTILES = 32


@dataclass(frozen=True)
class Phase:
    """A stretch of Poisson arrivals at ``rate``, carrying ``share`` of the requests."""

    rate: float
    share: float


def phases(workload: WorkloadConfig) -> list[Phase] | None:
    """The workload as Poisson phases, or ``None`` when it is not one (uniform arrivals are
    deterministic; traces and ramps have no stationary phases)."""
    kind = workload.kind.lower()
    if kind == "poisson":
        return [Phase(float(workload.rate), 1.0)]
    if kind == "bursty":
        burst = workload.burst_rate * workload.burst_s
        quiet = workload.base_rate * (workload.period_s - workload.burst_s)
        out = [Phase(float(workload.burst_rate), burst / (burst + quiet))]
        if quiet > 0:
            out.append(Phase(float(workload.base_rate), quiet / (burst + quiet)))
        return out
    return None


def covers(policy: PolicyConfig, workload: WorkloadConfig) -> bool:
    """Whether the model applies to this policy on this workload."""
    return policy.kind in COVERED and phases(workload) is not None


def _shape(policy: PolicyConfig) -> tuple[int, float]:
    """(N, T) of a covered policy: no batching is N = 1, static is T = infinity."""
    if policy.kind == "none":
        return 1, math.inf
    if policy.kind == "static":
        return policy.size, math.inf
    return policy.size, policy.timeout_s


@dataclass(frozen=True)
class _Sizes:
    """One phase's batches: P(K = k) for k = 1..N, and per k the wait pmf on ``grid``."""

    p_batch: np.ndarray  # by batch
    grid: np.ndarray  # wait values (s)
    waits: np.ndarray  # [k-1, j]: P(wait = grid[j]) for a request in a batch of k


def _batches(rate: float, n: int, timeout_s: float) -> _Sizes:
    if n == 1:
        return _Sizes(np.array([1.0]), np.array([0.0]), np.array([[1.0]]))
    if math.isfinite(timeout_s):
        a = rate * timeout_s
        p = np.array([stats.poisson.pmf(k - 1, a) for k in range(1, n)])
        p_full = max(1.0 - p.sum(), 0.0)
        top = timeout_s
    else:
        p, p_full = np.zeros(n - 1), 1.0
        top = float(stats.gamma.ppf(0.99999, n - 1, scale=1.0 / rate))
    edges = np.linspace(0.0, top, _WAIT_POINTS + 1)
    grid = np.append((edges[:-1] + edges[1:]) / 2, top)  # bin midpoints, and T itself
    waits = np.zeros((n, grid.size))
    uniform = np.append(np.full(_WAIT_POINTS, 1.0 / _WAIT_POINTS), 0.0)  # U(0, T)
    for k in range(1, n):  # timed out with k requests: one waits T, k - 1 wait U(0, T)
        waits[k - 1] = uniform * (k - 1) / k
        waits[k - 1, -1] += 1.0 / k
    # full: S = the (N-1)-th arrival given S < T; first waits S, last 0, middle U(0, S)
    cdf = stats.gamma.cdf(edges, n - 1, scale=1.0 / rate)
    mass = np.diff(cdf)
    mass = mass / mass.sum() if mass.sum() > 0 else np.append(np.zeros(_WAIT_POINTS - 1), 1.0)
    s = grid[:-1]
    first = np.append(mass, 0.0)
    # P(U(0, S) <= edge) = E[min(edge / S, 1)], differenced over the bins
    below = np.array([(mass * np.minimum(e / s, 1.0)).sum() for e in edges])
    middle = np.append(np.diff(below), 0.0)
    last = np.zeros(grid.size)
    last[0] = 1.0  # no wait: the bin nearest 0
    waits[n - 1] = (first + (n - 2) * middle + last) / n
    return _Sizes(np.append(p, p_full), grid, waits)


class _Service:
    """P(client + round trip + service of a batch of k <= x), the simulator's draws."""

    def __init__(self, profile: PlatformProfile) -> None:
        over = np.asarray(profile.overhead_ms, float) / 1000.0
        if over.size > _OVERHEAD_QUANTILES:  # the empirical distribution, in equal-mass steps
            qs = (np.arange(_OVERHEAD_QUANTILES) + 0.5) / _OVERHEAD_QUANTILES
            over = np.quantile(over, qs, method="inverted_cdf")
        self.fixed = over + profile.client_ms / 1000.0
        self.sigma = profile.sigma
        self.profile = profile

    def cdf(self, k: int, x: np.ndarray) -> np.ndarray:
        median = self.profile.service_s(k)
        rest = x[..., None] - self.fixed  # the service may take what is left
        if self.sigma <= 0:
            return (rest >= median).mean(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (np.log(np.where(rest > 0, rest, np.nan) / median) + self.sigma**2 / 2) / self.sigma
        return np.nan_to_num(special.ndtr(z), nan=0.0).mean(axis=-1)


@dataclass(frozen=True)
class Prediction:
    """What the model predicts for one configuration (steady state, warm, unlimited
    instances)."""

    attainment_pct: float
    percentile_ms: float  # at the SLO's percentile
    p50_ms: float
    p99_ms: float
    mean_batch_size: float
    warm_cost_per_1m_usd: float


def _phase_models(policy: PolicyConfig, workload: WorkloadConfig) -> list[tuple[Phase, _Sizes]]:
    found = phases(workload)
    if found is None or policy.kind not in COVERED:
        raise ValueError(f"the analytic model covers {', '.join(COVERED)} on Poisson phases, "
                         f"not {policy.label} on {workload.describe()}")  # fmt: skip
    n, timeout = _shape(policy)
    return [(ph, _batches(ph.rate, n, timeout)) for ph in found]


def latency_cdf(policy: PolicyConfig, workload: WorkloadConfig, profile: PlatformProfile,
                latency_s: np.ndarray) -> np.ndarray:  # fmt: skip
    """P(a request's latency <= each of ``latency_s``)."""
    service = _Service(profile)
    x = np.atleast_1d(np.asarray(latency_s, float))
    total = np.zeros(x.shape)
    for phase, sizes in _phase_models(policy, workload):
        by_request = sizes.p_batch * np.arange(1, sizes.p_batch.size + 1)
        by_request = by_request / by_request.sum()
        for k, share in enumerate(by_request, start=1):
            if share < 1e-12:
                continue
            g = service.cdf(k, x[:, None] - sizes.grid[None, :])  # [x, wait]
            total += phase.share * share * (g * sizes.waits[k - 1]).sum(axis=1)
    return np.clip(total, 0.0, 1.0)


def predict(policy: PolicyConfig, workload: WorkloadConfig, profile: PlatformProfile,
            slo_ms: float, percentile: float, prices: cost.Prices | None = None) -> Prediction:  # fmt: skip
    """Attainment, percentiles, mean batch size and warm cost per 1M requests."""
    attained = float(latency_cdf(policy, workload, profile, np.array([slo_ms / 1000.0]))[0])
    hi = 0.2
    while latency_cdf(policy, workload, profile, np.array([hi]))[0] < 0.995 and hi < 600:
        hi *= 2
    xs = np.linspace(0.0, hi, 161)  # the percentiles to within hi / 160 (1-3 ms)
    cdf = latency_cdf(policy, workload, profile, xs)

    def at(q: float) -> float:
        return float(np.interp(q, cdf, xs) * 1000.0) if cdf[-1] >= q else math.inf

    prices = prices or cost.Prices()
    gb = profile.memory_mb / 1024.0
    cost_per_request, batch_mean = 0.0, 0.0
    for phase, sizes in _phase_models(policy, workload):
        k = np.arange(1, sizes.p_batch.size + 1)
        billed_ms = np.array([profile.service_s(int(i)) * 1000.0 + 0.5 for i in k])
        per_invocation = prices.per_request + billed_ms / 1000.0 * gb * prices.per_gb_s
        mean_k = float((sizes.p_batch * k).sum())
        cost_per_request += phase.share * float((sizes.p_batch * per_invocation).sum()) / mean_k
        batch_mean += phase.share / mean_k  # invocations per request
    return Prediction(
        attainment_pct=attained * 100.0, percentile_ms=at(percentile / 100.0), p50_ms=at(0.5),
        p99_ms=at(0.99), mean_batch_size=1.0 / batch_mean,
        warm_cost_per_1m_usd=cost_per_request * 1e6,
    )  # fmt: skip


def attainment_pct(policy: PolicyConfig, workload: WorkloadConfig, profile: PlatformProfile,
                   slo_ms: float) -> float:  # fmt: skip
    """The model's SLO attainment alone (what the search's pruning asks, cheaply)."""
    return float(latency_cdf(policy, workload, profile, np.array([slo_ms / 1000.0]))[0]) * 100


def best_case_attainment_pct(profile: PlatformProfile, slo_ms: float) -> float:
    """The attainment no policy on any workload can beat at this profile's memory: a batch of
    one, sent at its arrival, on a warm instance. Every request waits at least that long (a
    larger batch takes no less; waiting and cold starts only add), so a memory size whose
    best case misses the SLO's percentile cannot meet it: a bound, not an estimate."""
    return float(_Service(profile).cdf(1, np.array([slo_ms / 1000.0]))[0]) * 100
