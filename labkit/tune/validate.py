"""`labkit tune --validate`: the answer and the runner-up run live, beside the model.

Each of the two configurations runs ``duration_s`` of the search's workload on the embedded
local Lambda: its policy, its memory (with Lambda's CPU share where the system allows it),
its concurrency capped at what this machine runs at once (:mod:`labkit.backends.local`),
and the network round trip the model assumed. The *same arrivals* go through the simulator
with a profile of this machine: the search's own when it was a probe of the model here, else
a fresh probe (a stated profile such as ``paper-aws`` describes another platform, and
measuring it here would compare unlike things). Model and measurement side by side give the
simulator's out-of-sample error for this model and workload (the probe's calls are not these
cells), and the verdict: the choice *held* when the answer met the SLO live and cost no more
than the runner-up did (or the runner-up missed the SLO).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import backends, cost
from labkit.load.batching import PolicyConfig
from labkit.load.loadgen import LoadConfig, Payloads
from labkit.models import registry
from labkit.settings import FunctionSettings
from labkit.sim.simulate import PlatformProfile, SimConfig, run_platform
from labkit.sim.simulate_queue import simulate_queue
from labkit.tune import evaluate, figures
from labkit.tune.search import TuneResult, model_profile
from labkit.tune.space import Candidate


def _candidate(result: TuneResult, row: pd.Series) -> Candidate:
    return next(c for c in result.config.space.candidates() if c.key == row["key"])


def local_profile(result: TuneResult, say: Callable[[str], None] | None = None) -> PlatformProfile:
    """A profile of this machine for the model: the search's when it was probed here, else
    the model's kept probe (:mod:`labkit.tune.probes`); ``say`` hears which probe."""
    if result.config.profile == "probe" or (
        result.config.profile is None and result.config.model != registry.MNIST
    ):
        return result.profile
    return model_profile(dataclasses.replace(result.config, profile="probe"), say=say)


def _payloads(bundle: Any) -> Payloads:
    from labkit.studies.your_model import event  # deferred: torch for the MNIST digits

    return Payloads(event(bundle, 16)["instances"], np.full(16, -1))


#: Where ``--validate`` can run: the embedded local Lambda, or the deployed AWS function.
BACKENDS = ("local", "aws")


@dataclasses.dataclass(frozen=True)
class LiveTarget:
    """Where the live check runs. ``aws``: the function ``labkit deploy up`` deployed
    (``function_name``, ``region``), resized to each configuration's memory and back
    afterwards, and refused before anything runs when the model's estimate of the two cells
    exceeds ``max_budget_usd`` (required there: a live check on AWS spends money)."""

    backend: str = "local"
    region: str | None = None
    function_name: str | None = None
    max_budget_usd: float | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"validate on {' or '.join(BACKENDS)}, not {self.backend!r}")
        if self.backend == "aws" and self.max_budget_usd is None:
            raise ValueError("a live check on AWS spends money: give --max-budget-usd")
        if self.max_budget_usd is not None and not self.max_budget_usd > 0:
            raise ValueError(f"max_budget_usd must be > 0, not {self.max_budget_usd!r}")


class BudgetExceeded(ValueError):
    """The live check is expected to cost more than the budget it was given."""


def validate(result: TuneResult, *, duration_s: float = 30.0,
             profile: PlatformProfile | None = None, target: LiveTarget | None = None,
             say: Callable[[str], None] | None = None) -> pd.DataFrame:  # fmt: skip
    """Model vs measured for the answer and the runner-up; also saved as ``validation.csv``
    in the search's folder, with each live cell's records.

    Locally, each runs at its concurrency capped at this machine's cores, beside the model of
    this machine (:func:`local_profile`). On AWS (``target``), each runs at its own memory and
    concurrency beside the search's own model of the platform; the estimate of what the two
    cells cost (the model's, on these arrivals) is checked against the budget first. ``say``
    hears which probe of this machine the local model comes from, where it is one."""
    from labkit.studies.your_model import bundles  # deferred: builds a bundle when needed

    target = target or LiveTarget()
    if result.answer is None:
        raise ValueError("nothing to validate: no configuration met the SLO")
    if not math.isfinite(duration_s) or duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, not {duration_s!r}")
    config = result.config
    on_aws = target.backend == "aws"
    own = config.model if Path(config.model).is_dir() else None
    found = bundles([] if own else [config.model], own, model_dir=config.model_dir)
    bundle = next(iter(found.values()))
    profile = profile or (result.profile if on_aws else local_profile(result, say))
    workload = dataclasses.replace(evaluate.sized(config.workload, 1, config.seed + 7),
                                   duration_s=duration_s)  # fmt: skip
    arrivals = workload.arrivals()
    most = math.inf if on_aws else backends.default_concurrency("local")
    cells = []
    for role, row in (("answer", result.answer), ("runner-up", result.runner_up)):
        if row is not None:
            candidate = _candidate(result, row)
            concurrency = int(min(candidate.concurrency, most))
            modelled = _modelled(profile, candidate, concurrency, arrivals, result)
            cells.append((role, candidate, concurrency, modelled))
    if target.max_budget_usd is not None:
        check_budget([(c[1], c[3]) for c in cells], len(arrivals), target.max_budget_usd)
    rows = []
    with _restored_memory(target, bundle):
        for role, candidate, concurrency, modelled in cells:
            live = _live(bundle, candidate.policy, candidate.memory_mb, concurrency, arrivals,
                         config.slo.latency_ms, config.network, target)  # fmt: skip
            folder = result.folder / "validation" / role
            folder.mkdir(parents=True, exist_ok=True)
            live.requests.to_parquet(folder / "requests.parquet", index=False)
            live.invocations.to_parquet(folder / "invocations.parquet", index=False)
            measured = figures.from_records(live.requests, live.invocations, config.slo,
                                            candidate.memory_mb)  # fmt: skip
            for metric in ("slo_attainment_pct", "p50_ms", "p99_ms", "cost_per_1m_requests_usd",
                           "cold_starts"):  # fmt: skip
                m, x = modelled[metric], measured[metric]
                error = (
                    m - x if metric == "slo_attainment_pct"
                    else (m / x - 1) * 100 if x else math.nan
                )  # fmt: skip
                rows.append({"role": role, "key": candidate.key, "backend": target.backend,
                             "concurrency_run": concurrency, "metric": metric, "model": m,
                             "measured": x, "error": error})  # fmt: skip
    table = pd.DataFrame(rows)
    table.to_csv(result.folder / "validation.csv", index=False)
    return table


def estimate_usd(cells: list[tuple[Candidate, dict[str, float]]], requests: int) -> float:
    """What the live cells are expected to cost: the model's cost per request on the same
    arrivals (compute, requests, cold starts' init) and, for an SQS placement, its queue's
    billed requests (a send, a receive and a delete per message, each way)."""
    total = 0.0
    for candidate, modelled in cells:
        total += modelled["cost_per_1m_requests_usd"] * requests / 1e6
        if candidate.policy.kind == "sqs":
            total += 6 * requests * cost.SQS_PER_REQUEST["standard"]
    return total


def check_budget(cells: list[tuple[Candidate, dict[str, float]]], requests: int,
                 max_budget_usd: float) -> float:  # fmt: skip
    """The estimate, or :class:`BudgetExceeded` (before anything runs) above the budget."""
    expected = estimate_usd(cells, requests)
    if expected > max_budget_usd:
        raise BudgetExceeded(
            f"the live check ({len(cells)} cells of {requests} requests) is expected to cost "
            f"${expected:.4f}, above --max-budget-usd {max_budget_usd:.4f}; shorten it "
            "(--validate-s) or raise the budget"
        )
    return expected


@contextlib.contextmanager
def _restored_memory(target: LiveTarget, bundle: Any) -> Iterator[None]:
    """On AWS, the function's memory as it was before the check, whatever happens in it."""
    if target.backend != "aws":
        yield
        return
    backend = _aws_backend(target, FunctionSettings(**_named(target)))
    before = backend.preflight()["memory_mb"]
    try:
        yield
    finally:
        backend.resize(int(before))


def _named(target: LiveTarget) -> dict[str, Any]:
    return {"name": target.function_name} if target.function_name else {}


def _aws_backend(target: LiveTarget, function: FunctionSettings) -> Any:
    return backends.create("aws", function, region=target.region, apply_memory=True)


def _live(bundle: Any, policy: PolicyConfig, memory_mb: int, concurrency: int,
          arrivals: np.ndarray, slo_ms: float, network: str | None,
          target: LiveTarget) -> Any:  # fmt: skip
    if target.backend == "aws":
        function = FunctionSettings(memory_mb=memory_mb, concurrency=concurrency, **_named(target))
        backend = _aws_backend(target, function)
    else:
        function = FunctionSettings(memory_mb=memory_mb, concurrency=concurrency, cpu_share=True)
        backend = backends.create("local", function, bundle_dir=str(bundle.path), network=network)
    try:
        load = LoadConfig(max_in_flight=concurrency, progress=False)
        if policy.kind == "sqs":
            return backend.run_queue_cell(arrivals, policy.mapping(), _payloads(bundle),
                                          slo_s=slo_ms / 1000.0)  # fmt: skip
        return backend.run_cell(arrivals, policy.build(), _payloads(bundle), load,
                                slo_s=slo_ms / 1000.0)  # fmt: skip
    finally:
        backend.stop()


def _modelled(profile: PlatformProfile, candidate: Candidate, concurrency: int,
              arrivals: np.ndarray, result: TuneResult) -> dict[str, float]:  # fmt: skip
    """The simulator on the very arrivals the live cell saw, at the concurrency it ran."""
    at = dataclasses.replace(candidate, concurrency=concurrency)
    platform_profile = evaluate.at(profile, at)
    slo = result.config.slo
    config = SimConfig(concurrency=concurrency, seed=at.seed(result.config.seed),
                       slo_s=slo.latency_ms / 1000.0)  # fmt: skip
    if candidate.policy.kind == "sqs":
        run = simulate_queue(arrivals, candidate.policy.mapping(), platform_profile, config)
        return figures.from_records(run.requests, run.invocations, slo, at.memory_mb)
    platform = run_platform(arrivals, candidate.policy.build(), platform_profile, config)
    return figures.from_platform(platform, arrivals, slo)


def verdict(table: pd.DataFrame, slo_percentile: float) -> str:
    """Whether the choice held live, in plain sentences.

    A live run is short: its cold starts weigh on few requests, so its costs and SLO
    attainment are not those of the search's long run. What it can check is the model on the
    same arrivals: the choice *held* when the live costs rank the answer and the runner-up as
    the model ranked them for these arrivals, and, where the model expects even this short
    run to meet the SLO, the answer met it live."""
    if table.empty:
        return "Not validated."
    figures_ = table.pivot_table(index="role", columns="metric", values=["model", "measured"])
    live, model = figures_["measured"], figures_["model"]
    cost, slo = "cost_per_1m_requests_usd", "slo_attainment_pct"
    a_live, a_model = live.loc["answer"], model.loc["answer"]
    text = (f"Live, the answer reached {a_live[slo]:.1f} % within the SLO at ${a_live[cost]:.3f} "
            f"per 1M (the model, for these arrivals: {a_model[slo]:.1f} %, ${a_model[cost]:.3f})")  # fmt: skip
    held, why = True, []
    if "runner-up" in live.index:
        b_live, b_model = live.loc["runner-up"], model.loc["runner-up"]
        text += (f"; the runner-up {b_live[slo]:.1f} % at ${b_live[cost]:.3f} (the model: "
                 f"{b_model[slo]:.1f} %, ${b_model[cost]:.3f})")  # fmt: skip
        ranked = (a_live[cost] <= b_live[cost]) == (a_model[cost] <= b_model[cost])
        held = bool(ranked)
        why.append("the live costs rank the two as the model did" if ranked
                   else "the live costs rank the two otherwise than the model did")  # fmt: skip
    if a_model[slo] < slo_percentile:
        why.append(f"a run this short cannot show the {slo_percentile:g} % SLO: its cold starts "
                   f"weigh on few requests, as the model expects too; run longer to see it")  # fmt: skip
    else:
        met = bool(a_live[slo] >= slo_percentile)
        held = held and met
        why.append(f"the SLO was {'met' if met else 'missed'} live")
    errors = table[table["metric"] == slo]["error"].abs().max()
    cost_errors = table[table["metric"] == cost]["error"].abs().max()
    return (f"{text}. The choice {'held' if held else 'did not hold'}: {'; '.join(why)}. The "
            f"model's error here: SLO attainment {errors:.1f} points, cost {cost_errors:.1f} % at most.")  # fmt: skip


def within_error(result: TuneResult, table: pd.DataFrame) -> str:
    """Whether the runner-up could win within the model's error measured live: the search's
    cost gap between the two against the largest cost error of the live check."""
    best, second = result.answer, result.runner_up
    if best is None or second is None or table.empty:
        return ""
    gap = (second["cost_per_1m_requests_usd"] / best["cost_per_1m_requests_usd"] - 1) * 100
    error = table[table["metric"] == "cost_per_1m_requests_usd"]["error"].abs().max()
    could = "could" if gap <= error else "could not"
    return (
        f"In the search the runner-up costs {gap:+.1f} %; the model's cost error measured "
        f"live is up to {error:.1f} %: within that error the runner-up {could} win."
    )
