"""A discrete-event model of the same system, for scales one machine cannot run.

The same workloads and the *same policy objects* as live runs (``labkit.batching``; one
implementation of each policy) drive a model of the serverless platform:

- an invocation of ``n`` requests takes ``client + overhead + service(n)`` on a warm
  instance, where ``service(n)`` is lognormal around the measured median Duration for size
  ``n`` (the line ``base_ms + per_image_ms * n`` for sizes never measured), the overhead
  (round trip beyond the REPORT Duration) is drawn from measured samples, and ``client`` is
  the load generator's own time per invocation;
- a cold start adds an Init Duration drawn from measured samples; billed time is
  ``ceil(duration + init)`` as for container images;
- instances serve one invocation at a time, are reused when idle, retire after
  ``keep_alive_s`` idle, and are provisioned (pre-warmed) as asked;
- the client keeps at most ``concurrency`` invocations in flight (later batches queue, as the
  live load generator's worker pool does); beyond the function's concurrency limit a request
  is throttled and retried with backoff; new instances are limited to Lambda's scaling rate
  (1,000 per 10 s per function).

Records have the live runs' schema (``labkit.loadgen``), so ``metrics``, ``cost`` and
``report`` work on both unchanged. A :class:`PlatformProfile` is fitted from a live run
folder with :func:`fit_profile` and saved as JSON; ``profiles/`` ships a local one and one
shaped after the paper's AWS figures.
"""

from __future__ import annotations

import heapq
import json
import math
import os
from collections import deque
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit.batching import BatchingPolicy, Request
from labkit.loadgen import INVOCATION_COLUMNS, REQUEST_COLUMNS, LoadResult

SCALING_PER_10S = 1000  # Lambda: new execution environments per function per 10 seconds


@dataclass
class PlatformProfile:
    """What the model needs to know about the platform, fitted or stated."""

    name: str = "default"
    source: str = "stated"
    base_ms: float = 2.0  # warm service time: base + per image, lognormal around it
    per_image_ms: float = 0.15
    sigma: float = 0.25  # lognormal shape of the service time
    overhead_ms: list[float] = field(default_factory=lambda: [4.0])  # round trip - Duration
    # warm service medians per observed batch size (the line above for other sizes)
    service_ms_by_size: dict[str, float] = field(default_factory=dict)
    client_ms: float = 0.0  # the load generator's own time: release lag, hand-off, wrap-up
    init_ms: list[float] = field(default_factory=lambda: [2400.0])  # cold-start samples
    memory_mb: int = 1024
    concurrency_limit: int = 1000
    keep_alive_s: float = 300.0

    def save(self, path: str | os.PathLike[str]) -> Path:
        path = Path(path)
        path.write_text(json.dumps(asdict(self), indent=2))
        return path

    @classmethod
    def load(cls, path_or_name: str | os.PathLike[str]) -> PlatformProfile:
        """A saved profile file, or a shipped one by name (``local``, ``paper-aws``)."""
        path = Path(path_or_name)
        if not path.is_file():
            shipped = resources.files("labkit.profiles").joinpath(f"{path_or_name}.json")
            if not shipped.is_file():
                raise FileNotFoundError(
                    f"no profile file or shipped profile named {path_or_name!r}"
                )
            return cls(**json.loads(shipped.read_text()))
        return cls(**json.loads(path.read_text()))


def fit_profile(invocations: pd.DataFrame | list[pd.DataFrame], *, name: str = "fitted",
                source: str = "", memory_mb: int = 1024,
                client_ms: float = 0.0) -> PlatformProfile:  # fmt: skip
    """Fit the model to measured invocations (one or several cells' ``invocations`` tables).

    ``client_ms`` is the load generator's own median time per invocation (release lag plus
    hand-off to a worker), measured by :func:`fit_profile_from_run` from the request records."""
    inv = pd.concat(invocations) if isinstance(invocations, list) else invocations
    inv = inv[inv["error"].isna() & inv["duration_ms"].notna()]
    warm = inv[~inv["cold_start"].astype(bool)]
    if len(warm) < 5:
        raise ValueError(f"need at least 5 warm invocations to fit a profile, got {len(warm)}")
    sizes = warm["batch_size"].to_numpy(float)
    durations = warm["duration_ms"].to_numpy(float)
    if np.unique(sizes).size > 1:
        # median duration as a line in n, from per-size medians (robust to outliers)
        per_size = warm.groupby("batch_size")["duration_ms"].median()
        b, a = np.polyfit(per_size.index.to_numpy(float), per_size.to_numpy(float), 1)
        base, per_image = max(float(a), 0.05), max(float(b), 0.0)
    else:
        base, per_image = float(np.median(durations)), 0.0
    model = base + per_image * sizes
    sigma = float(np.std(np.log(durations / model))) if len(durations) > 1 else 0.2
    overhead = (warm["round_trip_ms"] - warm["duration_ms"]).clip(lower=0)
    by_size = warm.groupby("batch_size")["duration_ms"].median()
    cold = inv[inv["cold_start"].astype(bool)]
    init = cold["init_duration_ms"].dropna().to_numpy(float)
    return PlatformProfile(
        name=name, source=source or "fitted from measured invocations", base_ms=round(base, 4),
        per_image_ms=round(per_image, 4), sigma=round(min(sigma, 2.0), 4),
        overhead_ms=[round(float(x), 3) for x in overhead.to_numpy(float)],
        service_ms_by_size={str(int(k)): round(float(v), 4) for k, v in by_size.items()},
        client_ms=round(client_ms, 4),
        init_ms=[round(float(x), 1) for x in init] or [2400.0], memory_mb=memory_mb,
    )  # fmt: skip


def fit_profile_from_run(run: str | os.PathLike[str], name: str = "fitted") -> PlatformProfile:
    """Fit from every cell of a live run folder."""
    from labkit.experiment import cell_folders, load_cell

    cells = [load_cell(f) for f in cell_folders(run)]
    if not cells:
        raise FileNotFoundError(f"no experiment cells under {run}")
    memory = cells[0]["config"].function.memory_mb
    return fit_profile([c["invocations"] for c in cells], name=name, source=f"fitted from {run}",
                       memory_mb=memory, client_ms=_client_ms(cells))  # fmt: skip


def _client_ms(cells: list[dict[str, Any]]) -> float:
    """The load generator's own time per invocation, outside the round trip: median release
    lag (scheduled -> released), hand-off (dispatched -> a worker starts it) and wrap-up (the
    call returned -> recorded). Small, but a tenth of a no-batching request's latency on a
    local run. Over invocations never throttled (429 back-off is modelled apart); the
    hand-off is the 10th percentile, because queueing for a worker is modelled apart too and
    in a short cell most invocations queue behind the first cold start (median: seconds)."""
    requests = pd.concat([c["requests"] for c in cells])
    inv = pd.concat([c["invocations"] for c in cells])
    inv = inv[(inv["throttles"] == 0) & inv["error"].isna()]
    lag = (requests["t_release"] - requests["t_arrive"]).dropna()
    hand_off = (inv["t_start"] - inv["t_dispatch"]).dropna()
    wrap_up = ((inv["t_done"] - inv["t_start"]) - inv["round_trip_ms"] / 1000.0).dropna()
    if lag.empty or hand_off.empty or wrap_up.empty:
        return 0.0
    return float(lag.median() + hand_off.quantile(0.1) + max(wrap_up.median(), 0.0)) * 1000.0


@dataclass(frozen=True)
class SimConfig:
    """How the simulated client and platform behave."""

    concurrency: int = 2  # invocations in flight at most (the live load generator's pool)
    provisioned: int = 0
    seed: int = 0
    slo_s: float = 0.2
    throttle_backoff_s: float = 0.02


_TIMER, _DONE, _RETRY = 1, 2, 3


def simulate(arrivals: np.ndarray, policy: BatchingPolicy, profile: PlatformProfile,
             config: SimConfig | None = None) -> LoadResult:  # fmt: skip
    """Run the model; returns records in the live schema (``t_release == t_arrive``)."""
    config = config or SimConfig()
    rng = np.random.default_rng(config.seed)
    times = np.asarray(arrivals, dtype=float)
    if times.ndim != 1 or (times.size and (np.diff(times) < 0).any()):
        raise ValueError("arrivals must be a sorted 1-D sequence of seconds")
    n = len(times)
    overhead = [x / 1000.0 for x in profile.overhead_ms]
    inits = [x / 1000.0 for x in profile.init_ms]
    base_s, per_image_s = profile.base_ms / 1000.0, profile.per_image_ms / 1000.0
    by_size = {int(k): v / 1000.0 for k, v in profile.service_ms_by_size.items()}
    # median service time per batch size, looked up a million times: a list, not a dict
    medians = [
        by_size.get(n, base_s + per_image_s * n) for n in range(max(by_size, default=0) + 65)
    ]
    client_s = profile.client_ms / 1000.0
    draws = _Draws(rng, profile.sigma)
    limit = max(config.concurrency, 1)
    batch_of = np.full(n, -1, np.int64)
    done_at = np.full(n, np.nan)
    inv_rows: list[tuple[Any, ...]] = []
    idle: deque[float] = deque([math.inf] * config.provisioned)  # idle since (inf: provisioned)
    state = {"instances": config.provisioned, "in_flight": 0, "batches": 0}
    scale_window: deque[float] = deque()
    waiting: deque[tuple[int, list[Request], float]] = deque()  # batches queued client-side
    events: list[tuple[float, int, int, Any]] = []
    seq = 0
    timer_at = math.inf
    slo = config.slo_s

    def push(t: float, kind: int, payload: Any) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (t, kind, seq, payload))

    def start(batch_id: int, batch: list[Request], t_dispatch: float, now: float) -> None:
        while idle and now - idle[0] > profile.keep_alive_s:  # oldest idle first
            idle.popleft()
            state["instances"] -= 1
        if idle:
            idle.pop()  # the most recently used instance
            init = 0.0
        else:
            while scale_window and now - scale_window[0] > 10.0:
                scale_window.popleft()
            if (
                state["instances"] >= profile.concurrency_limit
                or len(scale_window) >= SCALING_PER_10S
            ):
                backoff = config.throttle_backoff_s * (0.5 + draws.uniform())
                push(now + backoff, _RETRY, (batch_id, batch, t_dispatch))
                return
            state["instances"] += 1
            scale_window.append(now)
            init = inits[int(draws.uniform() * len(inits))]
        size = len(batch)
        median = medians[size] if size < len(medians) else base_s + per_image_s * size
        service = median * draws.noise()
        end = now + client_s + init + service + overhead[int(draws.uniform() * len(overhead))]
        state["in_flight"] += 1
        push(end, _DONE, (batch_id, batch, t_dispatch, now, init, service))

    def dispatch(batch: list[Request], now: float) -> None:
        batch_id = state["batches"]
        state["batches"] += 1
        for r in batch:
            batch_of[r.id] = batch_id
        if state["in_flight"] < limit:
            start(batch_id, batch, now, now)
        else:
            waiting.append((batch_id, batch, now))

    arrival_times = times.tolist()
    i = 0
    while i < n or events:
        if i < n and (not events or arrival_times[i] <= events[0][0]):
            now = arrival_times[i]
            for batch in policy.offer(Request(i, now, now + slo), now):
                dispatch(batch, now)
            i += 1
            if i == n and policy.next_deadline() is None:
                for batch in policy.flush(now):  # the workload ended (static's final flush)
                    dispatch(batch, now)
        else:
            now, kind, _, payload = heapq.heappop(events)
            if kind == _TIMER:
                if now >= timer_at:
                    timer_at = math.inf
                for batch in policy.poll(now):
                    dispatch(batch, now)
                if i == n and policy.next_deadline() is None:
                    for batch in policy.flush(now):
                        dispatch(batch, now)
            elif kind == _RETRY:
                if state["in_flight"] < limit:
                    start(*payload, now)
                else:
                    waiting.append(payload)
            else:  # an invocation finished
                batch_id, batch, t_dispatch, t_start, init, service = payload
                state["in_flight"] -= 1
                idle.append(now)
                for r in batch:
                    done_at[r.id] = now
                cold = init > 0
                inv_rows.append((batch_id, len(batch), t_dispatch, t_start, now, (now - t_start) * 1000.0,
                                 0, cold, init * 1000 if cold else None, service * 1000,
                                 math.ceil((service + init) * 1000), profile.memory_mb, None, None, None))  # fmt: skip
                policy.observe(len(batch), now - t_start, cold)
                while waiting and state["in_flight"] < limit:
                    start(*waiting.popleft(), now)
        deadline = policy.next_deadline()
        if deadline is not None and deadline < timer_at:
            timer_at = deadline
            push(deadline, _TIMER, None)
    return _records(times, batch_of, done_at, inv_rows)


class _Draws:
    """Random numbers drawn in blocks (numpy per-call overhead dominates otherwise)."""

    def __init__(self, rng: np.random.Generator, sigma: float, block: int = 65_536) -> None:
        self.rng, self.sigma, self.block = rng, sigma, block
        self._u: list[float] = []
        self._z: list[float] = []

    def uniform(self) -> float:
        if not self._u:
            self._u = self.rng.random(self.block).tolist()
        return self._u.pop()

    def noise(self) -> float:
        """Lognormal service-time factor with mean 1."""
        if not self._z:
            s = self.sigma
            self._z = np.exp(self.rng.normal(-0.5 * s * s, s, self.block)).tolist()
        return self._z.pop()


def _records(times: np.ndarray, batch_of: np.ndarray, done_at: np.ndarray,
             inv_rows: list[tuple[Any, ...]]) -> LoadResult:  # fmt: skip
    invocations = pd.DataFrame(inv_rows, columns=INVOCATION_COLUMNS).sort_values("batch_id")
    invocations = invocations.reset_index(drop=True)
    by_batch = invocations.set_index("batch_id")
    ids = batch_of
    known = ids >= 0
    size = np.where(known, by_batch["batch_size"].reindex(ids).to_numpy(), np.nan)
    dispatch = by_batch["t_dispatch"].reindex(ids).to_numpy()
    cold = by_batch["cold_start"].reindex(ids).fillna(False).to_numpy(bool)
    init = by_batch["init_duration_ms"].reindex(ids).to_numpy(dtype=float)
    billed = by_batch["billed_duration_ms"].reindex(ids).to_numpy(dtype=float)
    requests = pd.DataFrame({
        "request_id": np.arange(len(times)), "t_arrive": times, "t_release": times,
        "batch_id": ids, "batch_size": size, "t_dispatch": dispatch, "t_done": done_at,
        "latency_ms": (done_at - times) * 1000.0, "label": -1, "predicted": None,
        "correct": True, "cold_start": cold, "init_duration_ms": init,
        "billed_duration_ms": billed, "error": None,
    }, columns=REQUEST_COLUMNS)  # fmt: skip
    return LoadResult(requests, invocations, complete=bool(np.isfinite(done_at).all()))


def simulate_config(config: Any, profile: PlatformProfile, seed: int = 0) -> LoadResult:
    """Simulate one :class:`labkit.experiment.ExperimentConfig` cell."""
    sim = SimConfig(concurrency=config.function.concurrency, provisioned=config.function.provisioned,
                    seed=seed, slo_s=config.slo_ms / 1000.0)  # fmt: skip
    return simulate(config.workload.arrivals(), config.policy.build(), profile, sim)


def run_simulated_matrix(configs: list[Any], profile: PlatformProfile,
                         out_dir: str | os.PathLike[str] | None = None, seed: int = 0) -> Path:  # fmt: skip
    """Like :func:`labkit.experiment.run_matrix`, simulated: one folder per cell, same files
    (``environment.json`` says ``backend: simulated`` and names the profile)."""
    from labkit import paths
    from labkit.experiment import _save, _write_json

    run = Path(out_dir) if out_dir else paths.new_run_dir("simulations", profile.name)
    run.mkdir(parents=True, exist_ok=True)
    for config in configs:
        folder = run / config.label
        folder.mkdir(parents=True, exist_ok=False)
        _write_json(folder / "config.json", config.as_dict())
        result = simulate_config(config, profile, seed)
        _save(folder, result, {"backend": "simulated", "profile": profile.name,
                               "profile_source": profile.source, "seed": seed})  # fmt: skip
    _write_json(run / "matrix.json", {"cells": [c.label for c in configs], "status": "complete"})
    return run


VALIDATION_METRICS = (
    "mean_ms",
    "p50_ms",
    "p99_ms",
    "slo_attainment_pct",
    "cold_starts",
    "cost_usd",
)


def validate(run: str | os.PathLike[str], profile: PlatformProfile, seeds: int = 5, *,
             own_inits: bool = False) -> pd.DataFrame:  # fmt: skip
    """Simulate every cell of a live run with ``profile`` (median over ``seeds``) and compare:
    one row per (cell, metric) with live, simulated, and the error (% or, for SLO attainment,
    percentage points).

    ``own_inits`` draws each cell's cold starts from that cell's measured Init Durations
    instead of the pooled samples: in short cells one cold start decides most of the mean,
    and concurrent inits on a small machine vary from cell to cell."""
    from labkit import metrics
    from labkit.experiment import cell_folders, load_cell

    rows = []
    for folder in cell_folders(run):
        cell = load_cell(folder)
        config = cell["config"]
        memory = config.function.memory_mb
        live = metrics.summarize(cell["requests"], cell["invocations"], slo_ms=config.slo_ms,
                                 memory_mb=memory)  # fmt: skip
        cell_profile = profile
        if own_inits:
            inits = cell["invocations"]["init_duration_ms"].dropna().astype(float).tolist()
            cell_profile = PlatformProfile(
                **{**asdict(profile), "init_ms": inits or profile.init_ms}
            )
        sims = [metrics.summarize(r.requests, r.invocations, slo_ms=config.slo_ms, memory_mb=memory)
                for r in (simulate_config(config, cell_profile, seed) for seed in range(seeds))]  # fmt: skip
        for metric in VALIDATION_METRICS:
            simulated = float(np.median([s[metric] for s in sims]))
            if metric == "slo_attainment_pct":
                error = simulated - live[metric]
            else:
                error = (
                    (simulated - live[metric]) / live[metric] * 100 if live[metric] else math.nan
                )
            rows.append({"cell": folder.name, "metric": metric, "live": live[metric],
                         "simulated": simulated, "error": error,
                         "unit": "points" if metric == "slo_attainment_pct" else "%"})  # fmt: skip
    return pd.DataFrame(rows)


def synthetic_day_counts(mean_rate: float, *, peak_to_mean: float = 1.8, spikes: int = 6,
                         seed: int = 0) -> np.ndarray:  # fmt: skip
    """Per-minute invocation counts for 24 hours shaped like a busy Azure Functions trace:
    a diurnal cycle (peak at 14:00, trough at 02:00) with ``spikes`` short surges and Poisson
    noise; the mean is ``mean_rate`` requests/s. (The public Azure 2019 trace itself can be
    replayed with ``labkit.workloads.azure_trace``.)"""
    if mean_rate <= 0 or peak_to_mean < 1:
        raise ValueError("mean_rate must be > 0 and peak_to_mean >= 1")
    rng = np.random.default_rng(seed)
    minutes = np.arange(1440)
    shape = 1 + (peak_to_mean - 1) * np.cos(2 * np.pi * (minutes - 14 * 60) / 1440)
    for start in rng.integers(0, 1440 - 10, spikes):
        shape[start : start + rng.integers(2, 10)] *= rng.uniform(2, 5)
    expected = shape / shape.mean() * mean_rate * 60
    return rng.poisson(expected)


def nxt_sweep(arrivals: np.ndarray, profile: PlatformProfile, sizes: list[int], timeouts_s: list[float],
              *, concurrency: int = 1000, slo_s: float = 0.2, seed: int = 0) -> pd.DataFrame:  # fmt: skip
    """Dynamic batching over a grid of N x T on one workload: SLO attainment, p99 and cost
    per 1M requests per point, to map where batching pays off."""
    from labkit import metrics
    from labkit.batching import DynamicBatching

    rows = []
    for size in sizes:
        for timeout in timeouts_s:
            result = simulate(arrivals, DynamicBatching(size, timeout), profile,
                              SimConfig(concurrency=concurrency, seed=seed, slo_s=slo_s))  # fmt: skip
            f = metrics.summarize(result.requests, result.invocations, slo_ms=slo_s * 1000,
                                  memory_mb=profile.memory_mb)  # fmt: skip
            rows.append({"N": size, "T_s": timeout, "slo_attainment_pct": f["slo_attainment_pct"],
                         "p99_ms": f["p99_ms"], "mean_batch_size": f["mean_batch_size"],
                         "cost_per_1m_requests_usd": f["cost_per_1m_requests_usd"]})  # fmt: skip
    return pd.DataFrame(rows)


def plot_nxt(table: pd.DataFrame) -> Any:
    """Heatmaps of SLO attainment and cost per 1M requests over the N x T grid."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, column, cmap, label in ((axes[0], "slo_attainment_pct", "RdYlGn", "SLO attainment (%)"),
                                    (axes[1], "cost_per_1m_requests_usd", "viridis_r", "USD per 1M requests")):  # fmt: skip
        grid = table.pivot(index="N", columns="T_s", values=column)
        image = ax.imshow(grid.to_numpy(), cmap=cmap, aspect="auto", origin="lower")
        ax.set_xticks(range(len(grid.columns)), [f"{t:g}" for t in grid.columns])
        ax.set_yticks(range(len(grid.index)), grid.index)
        ax.set(xlabel="timeout T (s)", ylabel="max batch size N", title=label)
        for (r, c), value in np.ndenumerate(grid.to_numpy()):
            ax.text(c, r, f"{value:.1f}" if column.startswith("slo") else f"{value:.3f}",
                    ha="center", va="center", fontsize=7)  # fmt: skip
        fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig


def peak_concurrency(invocations: pd.DataFrame) -> int:
    """The most invocations in flight at once (from start and done times)."""
    if invocations.empty:
        return 0
    starts = np.sort(invocations["t_start"].to_numpy())
    ends = np.sort(invocations["t_done"].to_numpy())
    in_flight = np.arange(1, len(starts) + 1) - np.searchsorted(ends, starts, side="right")
    return int(in_flight.max())
