"""Where should batching happen? On the client (the paper), in Lambda's SQS mapping, or nowhere.

The paper batches on the client: its load generator sends a batch of up to 5 after at most
0.3 s. The platform can batch too: an SQS queue in front of the function, whose event-source
mapping hands it up to ``BatchSize`` messages, gathered for up to a *whole-second* window
(0 takes what one poll returns). :data:`PLACEMENTS` are the contenders; this module runs
them (live where asked, on any backend), models the rest on a profile fitted from the live
cells, checks the model against the live cells, and answers, per workload, which placement
to choose.

The answer's rule (:func:`answer`): among the placements whose steady-state SLO attainment
reaches ``target_pct``, the cheapest per 1M requests once warm (Lambda's requests and
duration plus SQS's requests; cold starts are shown apart, as in Table 1); if none reaches
it, the one with the highest attainment. Its confidence is the share of bootstrap resamples
(requests drawn again, per placement) in which the rule picks the same placement; what the
resamples cannot see is the model's own error, which :func:`validate` measures on the live
cells and the answer names where it rests on modelled figures.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost, metrics
from labkit.analysis import report
from labkit.backends.simulated import SimulatedBackend
from labkit.emulator.network import network_profile
from labkit.experiment import ExperimentConfig
from labkit.load.batching import PolicyConfig
from labkit.load.loadgen import LoadConfig, Payloads
from labkit.load.workloads import WorkloadConfig
from labkit.sim.simulate import PlatformProfile, add_network, client_time_ms, fit_profile
from labkit.sim.simulate_queue import fit_queue_latencies

_CONTENDERS = [
    ("client: dynamic 5, 0.3 s", PolicyConfig("dynamic", 5, 0.3)),
    ("SQS: BatchSize 5, window 0", PolicyConfig("sqs", 5, 0)),
    ("SQS: BatchSize 10, window 0", PolicyConfig("sqs", 10, 0)),
    ("SQS: BatchSize 5, window 1 s", PolicyConfig("sqs", 5, 1)),
    ("SQS: BatchSize 10, window 1 s", PolicyConfig("sqs", 10, 1)),
    ("nowhere: no batching", PolicyConfig("none")),
]
#: The contenders by their policy labels (what parameters name: ``sqs-10-1s``, ...).
PLACEMENTS: dict[str, PolicyConfig] = {policy.label: policy for _, policy in _CONTENDERS}
#: A profile's figures for the queue path, which cells without a queue cannot fit.
_QUEUE_FIELDS = ("queue_pickup_ms", "queue_extra_ms", "queue_answer_ms", "queue_init_ms")
#: What tables and answers call them.
NAMES: dict[str, str] = {policy.label: name for name, policy in _CONTENDERS}
MEASURED, MODELLED = "measured", "modelled"
VALIDATION_COLUMNS = ["cell", "placement", "fitted", "mean_ms live", "p99_ms live",
                      "slo_attainment_pct live", "mean_ms model", "p99_ms model",
                      "slo_attainment_pct model", "mean error %", "p99 error %",
                      "SLO error (points)"]  # fmt: skip


def placement_name(policy: PolicyConfig) -> str:
    """What tables call ``policy`` (its label when it is not among :data:`PLACEMENTS`)."""
    return NAMES.get(policy.label, policy.label) if policy in PLACEMENTS.values() else policy.label


def check_names(names: Sequence[str]) -> list[str]:
    """Policy labels checked against :data:`PLACEMENTS` (``["all"]``: every one), in order."""
    if list(names) == ["all"]:
        return list(PLACEMENTS)
    unknown = [n for n in names if n not in PLACEMENTS]
    if unknown:
        raise ValueError(f"unknown placements {unknown}; known: {list(PLACEMENTS)} or ['all']")
    return list(names)


def live_configs(base: ExperimentConfig, workloads: Sequence[WorkloadConfig],
                 names: Sequence[str], reuse: Sequence[report.Cell] = ()) -> list[ExperimentConfig]:  # fmt: skip
    """The cells to run live: each named placement on each workload, except those a
    ``reuse`` cell already measured with the same settings (:func:`matching`)."""
    configs = []
    for workload in workloads:
        for name in check_names(names):
            config = dataclasses.replace(base, workload=workload, policy=PLACEMENTS[name],
                                         name=f"{PLACEMENTS[name].label}-{workload.label}")  # fmt: skip
            if not any(matching(cell.config, config) for cell in reuse):
                configs.append(config)
    return configs


def matching(found: ExperimentConfig, wanted: ExperimentConfig) -> bool:
    """Whether a cell run earlier (Lab 4's, say) measured what ``wanted`` would: the same
    policy, workload shape and rates (its length and seed may differ), function settings,
    backend and network."""

    def shape(w: WorkloadConfig) -> tuple[Any, ...]:
        return (w.label, w.kind, w.rate, w.base_rate, w.burst_rate, w.burst_s, w.period_s)

    return (found.policy == wanted.policy and shape(found.workload) == shape(wanted.workload)
            and found.function == wanted.function and found.backend == wanted.backend
            and found.network == wanted.network and found.slo_ms == wanted.slo_ms)  # fmt: skip


def reusable(cells: Sequence[report.Cell], base: ExperimentConfig,
             workloads: Sequence[WorkloadConfig], names: Sequence[str]) -> list[report.Cell]:  # fmt: skip
    """The complete cells among ``cells`` that measured a named placement on a workload."""
    wanted = [dataclasses.replace(base, workload=w, policy=PLACEMENTS[n])
              for w in workloads for n in check_names(names)]  # fmt: skip
    return [c for c in cells if c.status.get("status") == "complete"
            and any(matching(c.config, w) for w in wanted)]  # fmt: skip


def fit(live: Sequence[report.Cell], base: PlatformProfile | None = None, *,
        network: str | None = None) -> PlatformProfile:  # fmt: skip
    """A profile for the model from live cells: the direct invocations' figures from the
    cells without a queue, the queue's latencies and Init from the queue cells
    (:func:`labkit.sim.simulate_queue.fit_queue_latencies`). What the cells cannot give comes
    from ``base`` (default ``local``) with ``network`` added, the round trip the live cells
    had (:func:`labkit.sim.simulate.add_network`; ``ExperimentConfig.added_network``): a
    fitted figure already holds the live cells' network, a base one does not, and without
    it a modelled direct invocation on ``laptop-to-region`` would skip its ~30 ms trip."""

    direct = [c for c in live if c.config.policy.kind != "sqs"]
    queued = [c for c in live if c.config.policy.kind == "sqs"]
    stated = base or PlatformProfile.load("local")
    trips = network_profile(network)
    stated = add_network(stated, trips) if trips else stated
    profile = stated
    if direct:
        requests = pd.concat([c.requests for c in direct])
        invocations = pd.concat([c.invocations for c in direct])
        try:
            fitted = fit_profile([c.invocations for c in direct], name="fitted",
                                 source=f"fitted from {len(direct)} live cells without a queue",
                                 memory_mb=direct[0].config.function.memory_mb,
                                 client_ms=client_time_ms(requests, invocations))  # fmt: skip
            profile = dataclasses.replace(fitted, **{f: getattr(stated, f) for f in _QUEUE_FIELDS})
        except ValueError as exc:  # too few warm invocations: keep the base, say so
            profile = dataclasses.replace(profile, source=f"{profile.source} ({exc})")
    if any(c.config.policy.mapping().window_s == 0 for c in queued):
        try:
            profile = fit_queue_latencies(
                [(c.requests, c.invocations, c.config.policy.mapping()) for c in queued], profile
            )
        except ValueError as exc:
            profile = dataclasses.replace(profile, source=f"{profile.source} ({exc})")
    return profile


def model(profile: PlatformProfile, base: ExperimentConfig, workloads: Sequence[WorkloadConfig],
          names: Sequence[str], *, seeds: int = 3, duration_s: float | None = None) -> list[report.Cell]:  # fmt: skip
    """Each named placement on each workload on the model (``seeds`` runs of ``duration_s``,
    the workload's own length by default), as cells :mod:`labkit.analysis.report` reads."""

    cells = []
    for workload in workloads:
        longer = dataclasses.replace(workload, duration_s=duration_s or workload.duration_s)
        for name in check_names(names):
            config = dataclasses.replace(base, workload=longer, policy=PLACEMENTS[name],
                                         backend="simulated", bundle_dir=None)  # fmt: skip
            for seed in range(seeds):
                backend = SimulatedBackend(config.function, profile=profile, seed=seed)
                result = backend.run_cell(longer.arrivals(), config.policy.build(), Payloads.empty(),
                                          LoadConfig(), slo_s=config.slo_ms / 1000.0)  # fmt: skip
                label = f"{config.policy.label}-{workload.label}-model{seed}"
                cells.append(report.Cell(label, dataclasses.replace(config, sim_seed=seed, repetition=seed),
                                         {"status": "complete", "wall_s": result.wall_s},
                                         result.requests, result.invocations, result.facts))  # fmt: skip
    return cells


def validate(live: Sequence[report.Cell], *, seeds: int = 3) -> pd.DataFrame:
    """The model against each live cell, out of sample where the cells allow: a queue cell
    is modelled with the queue latencies fitted from the *other* live queue cells (in sample
    when it is the only window-0 one). One row per cell: live and modelled steady-state
    mean, p99 and SLO attainment, and the errors (%, points)."""
    rows = []
    for cell in live:
        if cell.config.backend == "simulated":
            continue  # the model against itself says nothing
        others = [c for c in live if c is not cell]
        out_of_sample = any(c.config.policy.kind == "sqs" and c.config.policy.mapping().window_s == 0
                            for c in others) or cell.config.policy.kind != "sqs"  # fmt: skip
        profile = fit(others if out_of_sample else live, network=cell.config.added_network)
        config = dataclasses.replace(cell.config, backend="simulated", bundle_dir=None)
        modelled = model(profile, config, [config.workload], [config.policy.label], seeds=seeds)
        options: dict[str, Any] = {"slo_ms": cell.config.slo_ms, "view": "steady"}
        measured = metrics.summarize(cell.requests, cell.invocations, **options)
        sim = metrics.pooled([c.records for c in modelled], **options)
        rows.append({
            "cell": cell.name, "placement": placement_name(cell.config.policy),
            "fitted": "without this cell" if out_of_sample else "with this cell",
            **{f"{m} live": measured[m] for m in ("mean_ms", "p99_ms", "slo_attainment_pct")},
            **{f"{m} model": sim[m] for m in ("mean_ms", "p99_ms", "slo_attainment_pct")},
            **{label: metrics.change(m, measured[m], sim[m]) for label, m in (
                ("mean error %", "mean_ms"), ("p99 error %", "p99_ms"),
                ("SLO error (points)", "slo_attainment_pct"))},
        })  # fmt: skip
    return pd.DataFrame(rows, columns=VALIDATION_COLUMNS)


def model_error(validation: pd.DataFrame) -> float:
    """The model's largest SLO-attainment error (points) in a :func:`validate` table, over the
    cells it was fitted without (all cells when there are none); 0 for an empty table."""
    if validation.empty:
        return 0.0
    outside = validation[validation["fitted"] == "without this cell"]
    errors = (outside if len(outside) else validation)["SLO error (points)"].abs()
    return float(errors.max()) if errors.notna().any() else 0.0


def choose(live: Sequence[report.Cell], modelled: Sequence[report.Cell]) -> dict[tuple[str, str], list[report.Cell]]:  # fmt: skip
    """(workload, placement) -> the cells its figures come from: the live ones where that
    placement was measured on that workload, else the modelled ones; workloads in the order
    they come, placements in :data:`PLACEMENTS`' order."""

    def key(cell: report.Cell) -> tuple[str, str]:
        return cell.workload, placement_name(cell.config.policy)

    groups: dict[tuple[str, str], list[report.Cell]] = {}
    for cell in live:
        groups.setdefault(key(cell), []).append(cell)
    measured = set(groups)
    for cell in modelled:
        if key(cell) not in measured:
            groups.setdefault(key(cell), []).append(cell)
    workloads = list(dict.fromkeys(c.workload for c in [*modelled, *live]))
    order = list(NAMES.values())

    def rank(item: tuple[str, str]) -> tuple[int, int]:
        name = item[1]
        return workloads.index(item[0]), order.index(name) if name in order else len(order)

    return {k: groups[k] for k in sorted(groups, key=rank)}


def _source(cell: report.Cell, live: Sequence[report.Cell]) -> str:
    measured = cell.config.backend != "simulated" and any(cell is c for c in live)
    return MEASURED if measured else MODELLED


def compare(groups: dict[tuple[str, str], list[report.Cell]], live: Sequence[report.Cell]) -> pd.DataFrame:  # fmt: skip
    """One row per (workload, placement): where the batching happens, whether its figures
    are measured or modelled, steady-state latency and SLO, the all-requests SLO, batch
    size, and cost per 1M requests split by service."""
    rows = []
    for (workload, name), cells in groups.items():
        options = report.summarize_options(cells, None)
        steady = metrics.pooled([c.records for c in cells], view="steady", **options)
        everything = metrics.pooled([c.records for c in cells], view="all", **options)
        per_m = 1e6 / everything["requests"] if everything["requests"] else float("nan")
        rows.append({
            "workload": workload, "placement": name, "source": _source(cells[0], live),
            "requests": int(everything["requests"]), "mean ms": steady["mean_ms"],
            "p50 ms": steady["p50_ms"], "p99 ms": steady["p99_ms"],
            "SLO % (steady)": steady["slo_attainment_pct"],
            "SLO % (all)": everything["slo_attainment_pct"],
            "mean batch": everything["mean_batch_size"],
            "Lambda requests $/1M": everything["request_usd"] * per_m,
            "Lambda warm compute $/1M": (everything["compute_usd"] - everything["init_usd"]) * per_m,
            "SQS request queue $/1M": sum(cost.traffic_cost(c.environment.get("sqs"), part="requests")
                                          for c in cells) * per_m,
            "SQS answers $/1M": sum(cost.traffic_cost(c.environment.get("sqs"), part="answers")
                                    for c in cells) * per_m,
            "warm total $/1M": everything["warm_cost_per_1m_requests_usd"],
            "cold-start init $/1M": everything["init_usd"] * per_m,
        })  # fmt: skip
    return pd.DataFrame(rows)


def answer(groups: dict[tuple[str, str], list[report.Cell]], live: Sequence[report.Cell], *,
           target_pct: float = 95.0, n_boot: int = 500, seed: int = 0,
           model_error_points: float = 0.0, table: pd.DataFrame | None = None) -> pd.DataFrame:  # fmt: skip
    """Per workload, the placement to choose by the rule in the module docstring, why, and
    the share of bootstrap resamples that choose it too. In each resample a modelled
    placement's SLO attainment also moves by a uniform draw within ``model_error_points``
    (the model's largest error against the live cells, :func:`validate`): resampling
    modelled requests alone would be sure of the model. ``table``: :func:`compare`'s table for
    these ``groups``, if the caller has it (it is made again otherwise)."""
    table = compare(groups, live) if table is None else table
    rng = np.random.default_rng(seed)
    rows = []
    for workload, part in table.groupby("workload", sort=False):
        names = part["placement"].tolist()
        costs = part["warm total $/1M"].to_numpy(float)
        pick = _rule(part["SLO % (steady)"].to_numpy(float), costs, target_pct)
        within = [_steady_within(groups[(workload, n)]) for n in names]
        spread = np.where(part["source"].to_numpy() == MODELLED, model_error_points, 0.0)
        agree = 0
        for _ in range(n_boot):
            slo = np.array([w[rng.integers(0, len(w), len(w))].mean() * 100 if len(w) else np.nan
                            for w in within])  # fmt: skip
            slo += rng.uniform(-1.0, 1.0, len(slo)) * spread
            agree += _rule(slo, costs, target_pct) == pick
        chosen = part.iloc[pick]
        meets = chosen["SLO % (steady)"] >= target_pct
        why = (f"the cheapest of the placements with at least {target_pct:g} % of requests within "
               f"the SLO" if meets else f"no placement reaches {target_pct:g} %: the highest attainment")  # fmt: skip
        policy = groups[(workload, chosen["placement"])][0].config.policy
        queue = policy.kind == "sqs"
        checked = chosen["source"] == MEASURED or any(
            c.workload == workload and c.config.backend != "simulated"
            and (c.config.policy.kind == "sqs") == queue for c in live)  # fmt: skip
        rows.append({
            "workload": workload, "choose": chosen["placement"],
            "where": where(policy), "SLO % (steady)": chosen["SLO % (steady)"],
            "warm $/1M": chosen["warm total $/1M"], "why": why,
            "confidence %": 100.0 * agree / n_boot, "figures": chosen["source"],
            "model checked here": bool(checked),
        })  # fmt: skip
    return pd.DataFrame(rows)


def where(policy: PolicyConfig) -> str:
    """Where ``policy`` batches: ``"SQS"`` (Lambda's mapping), ``"nowhere"`` or ``"client"``."""
    return {"sqs": "SQS", "none": "nowhere"}.get(policy.kind, "client")


def _rule(slo: np.ndarray, costs: np.ndarray, target_pct: float) -> int:
    ok = np.flatnonzero(np.nan_to_num(slo, nan=-1.0) >= target_pct)
    if ok.size:
        return int(ok[np.argmin(costs[ok])])
    return int(np.nanargmax(np.nan_to_num(slo, nan=-1.0)))


def _steady_within(cells: list[report.Cell]) -> np.ndarray:
    """1 for each steady-state request within its SLO, 0 otherwise (failures count as 0)."""
    parts = []
    for cell in cells:
        req = metrics.in_view(cell.requests, cell.invocations, "steady")
        ok = req["error"].isna() & (req["latency_ms"] <= cell.config.slo_ms)
        parts.append(ok.to_numpy(float))
    return np.concatenate(parts) if parts else np.array([])


def sentence(row: pd.Series, slo_ms: float) -> str:
    """One row of :func:`answer` as a plain sentence."""
    where = {"client": "batch on the client", "SQS": "let the platform batch (an SQS queue)",
             "nowhere": "do not batch"}.get(row["where"], row["where"])  # fmt: skip
    if row["figures"] == MEASURED:
        basis = "measured on this machine"
    elif row.get("model checked here", True):
        basis = "modelled; the model's error against live cells is in the confidence"
    else:
        basis = ("modelled, and the model was not checked against live cells of this kind on "
                 "this workload: its error here is not in the confidence")  # fmt: skip
    return (f"{row['workload']}: {where}, {row['choose']}. {row['SLO % (steady)']:.1f} % of "
            f"requests within {slo_ms:g} ms at ${row['warm $/1M']:.3g} per 1M requests once "
            f"warm: {row['why']}. Chosen in {row['confidence %']:.0f} % of bootstrap resamples; "
            f"{basis}.")  # fmt: skip


ANSWERS_FILE = "answers.txt"


def save(folder: str | os.PathLike[str] | None, table: pd.DataFrame, answers: pd.DataFrame,
         validation: pd.DataFrame, slo_ms: float) -> Path | None:  # fmt: skip
    """Write the comparison, the model's check and the answers (CSV, and the sentences in
    :data:`ANSWERS_FILE`, which ``labkit lab run`` prints at the end) into ``folder``;
    nothing when ``folder`` is None."""
    if folder is None:
        return None
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "comparison.csv", index=False)
    validation.to_csv(out / "model_check.csv", index=False)
    answers.to_csv(out / "answers.csv", index=False)
    text = "\n".join(sentence(row, slo_ms) for _, row in answers.iterrows())
    (out / ANSWERS_FILE).write_text(text + "\n")
    return out
