"""`labkit tune`: the cheapest configuration that meets an SLO, searched, and how sure.

The search (:func:`tune`):

1. **The platform's timing** for the model (:func:`model_profile`): a stated or calibrated
   platform profile (the paper's AWS figures, ``paper-aws``, for the MNIST CNN by default),
   or a short live probe of the model on the local Lambda, fitted and carried to every
   memory size by Lambda's CPU share.
2. **Pruning that cannot drop the answer**: a memory size below the model's measured peak
   (Max Memory Used, plus 10 %) fails with ``Runtime.OutOfMemory`` and is never run; one
   whose best case (a batch of one, warm, sent at once) misses the SLO's percentile is
   dropped whole (:func:`~labkit.tune.analytic.best_case_attainment_pct`: a bound). Then,
   on Poisson or bursty workloads, the closed-form model (:mod:`labkit.tune.analytic`) drops
   batching candidates it puts more than ``prune_margin_pts`` below the target (on the
   workers, in each task, so the fan-out starts at once); how far the model and the
   simulator actually part is measured on every candidate both cover
   (:attr:`TuneResult.agreement`), so the margin is checked, not trusted.
3. **The simulator** on every candidate left, ``requests`` requests each, fanned out on
   Dask (:mod:`labkit.tune.executor`), saved as tasks finish (:mod:`labkit.tune.store`).
4. **The answer**: the cheapest candidate meeting the SLO, the runner-up (the cheapest
   meeting it at another policy or memory), every candidate within ``margin_pct`` of the
   answer's cost, and the SLO-cost frontier.
5. **How sure** (:func:`sureness`): the answer and the runner-up simulated again on
   ``replications`` fresh draws (arrivals and platform), paired; the interval of their cost
   difference says whether the runner-up could win within the simulator's own noise. The
   simulator's error against live measurements comes from ``--validate``
   (:mod:`labkit.tune.validate`), which runs both live.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from labkit import cost, paths
from labkit.analysis import inference
from labkit.load.workloads import WorkloadConfig
from labkit.models import registry
from labkit.sim.simulate import PlatformProfile, add_network
from labkit.tune import analytic, evaluate
from labkit.tune.executor import Cluster, run_all
from labkit.tune.objective import Slo
from labkit.tune.space import Candidate, SearchSpace
from labkit.tune.store import ResultStore, fingerprint

#: The profile a model is timed with when none is named: the paper's platform for its model.
PAPER_PROFILE = "paper-aws"


@dataclass(frozen=True)
class TuneConfig:
    """One search: the model, its traffic and SLO, the space, and how it runs."""

    model: str = registry.MNIST  # a registry name or a bundle folder
    model_dir: str | None = None  # the MNIST CNN's trained folder (default models/mnist-cnn)
    workload: WorkloadConfig = field(default_factory=lambda: WorkloadConfig("bursty"))
    slo: Slo = field(default_factory=Slo)
    profile: str | None = None  # a profile name or file; None: paper-aws (MNIST) or a probe
    network: str | None = "laptop-to-region"  # added to a probed model's round trip
    space: SearchSpace = field(default_factory=SearchSpace)
    requests: int = 100_000
    seed: int = 0
    margin_pct: float = 5.0  # the runner-ups listed: within this much of the answer's cost
    prune: bool = True  # False: simulate every candidate
    prune_margin_pts: float = 5.0
    replications: int = 5
    cluster: Cluster = field(default_factory=Cluster)
    out: str | None = None  # the search's folder; None: results/tune/<inputs>
    reprobe: bool = False  # a probed model: measure it again, not the probe kept for it

    def __post_init__(self) -> None:
        self._check_model()
        if self.requests < 100:
            raise ValueError(f"requests must be >= 100 per configuration, not {self.requests}")
        if self.margin_pct < 0 or self.prune_margin_pts < 0:
            raise ValueError("margins must be >= 0")
        if self.replications < 0 or self.replications == 1:
            raise ValueError("replications must be 0 (none) or >= 2 (an interval needs two)")

    def _check_model(self) -> None:
        """A registry name or a bundle's folder; a model file or a missing folder is refused
        here, naming the fix, before anything is probed or started."""
        path = Path(self.model)
        if self.model in registry.MODELS or path.is_dir():
            return
        if path.is_file():
            raise ValueError(
                f"{self.model} is a model file, not a bundle: bundle it first (`labkit bundle "
                f"--model {self.model} --input DTYPE[D1,...]`), then give its folder to --model"
            )
        if path.suffix or len(path.parts) > 1:
            raise ValueError(f"no bundle folder at {self.model}")
        registry.get(self.model)  # raises, listing the registry's models


@dataclass
class Sureness:
    """The answer and the runner-up on fresh draws: per replication their SLO attainment
    and cost, and the interval of the runner-up's cost less the answer's (% of it)."""

    replications: pd.DataFrame
    difference: inference.Interval
    answer_always_meets: bool
    runner_up_wins: int  # replications where the runner-up met the SLO for less

    def sentence(self) -> str:
        r = len(self.replications) // 2
        if not r:
            return "How sure: not measured (replications=0)."
        d = self.difference
        held = "met the SLO in every one" if self.answer_always_meets else "missed it in some"
        if self.runner_up_wins == 0 and d.low > 0:
            close = (f"the runner-up costs {d.low:+.1f} % to {d.high:+.1f} % more, and won "
                     f"none: the answer holds within the simulator's own noise")  # fmt: skip
        else:
            close = (f"the runner-up's cost differs by {d.low:+.1f} % to {d.high:+.1f} % and "
                     f"won {self.runner_up_wins} of {r}: within the simulator's noise the "
                     f"two are a tie, and either is a sound choice")  # fmt: skip
        return f"How sure: on {r} fresh draws the answer {held}; {close}."


@dataclass
class TuneResult:
    config: TuneConfig
    profile: PlatformProfile
    table: pd.DataFrame  # every simulated candidate
    pruned: pd.DataFrame  # every candidate not simulated, and why
    agreement: pd.DataFrame  # analytic vs simulated attainment, where both apply
    folder: Path
    run: dict[str, Any]
    sureness: Sureness | None = None
    validation: pd.DataFrame | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def feasible(self) -> pd.DataFrame:
        ok = self.table[self.table["meets"]]
        return ok.sort_values(["cost_per_1m_requests_usd", "key"], kind="stable")

    @property
    def answer(self) -> pd.Series | None:
        ok = self.feasible
        return ok.iloc[0] if len(ok) else None

    @property
    def runner_up(self) -> pd.Series | None:
        """The cheapest candidate meeting the SLO at another policy or memory than the answer
        (one that differs in concurrency alone is the same choice drawn again)."""
        best = self.answer
        if best is None:
            return None
        ok = self.feasible
        other = ok[(ok["label"] != best["label"]) | (ok["memory_mb"] != best["memory_mb"])]
        return other.iloc[0] if len(other) else None

    def near(self) -> pd.DataFrame:
        """One row per policy and memory meeting the SLO within ``margin_pct`` of the answer."""
        best = self.answer
        if best is None:
            return self.table.iloc[0:0]
        limit = best["cost_per_1m_requests_usd"] * (1 + self.config.margin_pct / 100)
        ok = self.feasible
        ok = ok[ok["cost_per_1m_requests_usd"] <= limit]
        return ok.drop_duplicates(["label", "memory_mb"]).reset_index(drop=True)

    def frontier(self) -> pd.DataFrame:
        """The SLO-cost frontier: candidates no other beats on both cost and attainment."""
        t = self.table.sort_values(["cost_per_1m_requests_usd", "slo_attainment_pct"],
                                   ascending=[True, False], kind="stable")  # fmt: skip
        best = -math.inf
        keep = []
        for i, attained in zip(t.index, t["slo_attainment_pct"], strict=True):
            if attained > best:
                keep.append(i)
                best = attained
        return t.loc[keep].reset_index(drop=True)

    def lines(self) -> list[str]:
        """The answer in plain lines, as the CLI prints it."""
        c = self.config
        out = [f"Search: {c.model} on {c.workload.describe()}, SLO {c.slo.label}; "
               f"{len(self.table):,} configurations simulated ({c.requests:,} requests each), "
               f"{len(self.pruned):,} pruned; {self.run['seconds']:.0f} s on {self.run['where']}."]  # fmt: skip
        if self.run.get("timing"):  # a probed model: which probe, so a rerun can be matched
            out.append(self.run["timing"].replace("timing: ", "Timing: ", 1))
        best = self.answer
        if best is None:
            top = self.table.sort_values("slo_attainment_pct", ascending=False).iloc[0]
            out.append(f"No configuration meets the SLO: the best reaches {top['slo_attainment_pct']:.1f} % "
                       f"({describe(top)}). Loosen the SLO, or look past this space.")  # fmt: skip
            return out
        out.append(f"Answer: {describe(best)}.")
        second = self.runner_up
        if second is not None:
            extra = (
                second["cost_per_1m_requests_usd"] / best["cost_per_1m_requests_usd"] - 1
            ) * 100
            out.append(f"Runner-up: {describe(second)} ({extra:+.1f} % cost).")
        out.append(f"Within {c.margin_pct:g} % of the answer's cost: {len(self.near())} "
                   f"policy-and-memory choices.")  # fmt: skip
        if self.sureness is not None:
            out.append(self.sureness.sentence())
        if len(self.agreement):
            err = self.agreement["error_pts"].abs()
            out.append(f"Analytic model vs simulator ({len(err):,} configurations both cover): "
                       f"SLO attainment within {err.median():.2f} points (median), "
                       f"{err.max():.2f} at most.")  # fmt: skip
        return out


def describe(row: pd.Series) -> str:
    """A candidate's row in words: policy, memory, concurrency and its figures."""
    return (f"{row['label']} at {int(row['memory_mb']):,} MB, concurrency {int(row['concurrency'])}: "
            f"{row['slo_attainment_pct']:.1f} % within the SLO, "
            f"${cost.format_usd(row['cost_per_1m_requests_usd'])} per 1M requests")  # fmt: skip


def model_profile(config: TuneConfig, *, run_dir: str | None = None,
                  say: Callable[[str], None] | None = None) -> PlatformProfile:  # fmt: skip
    """The platform's timing for ``config.model`` at a reference memory: the profile named
    (a shipped name or a file), ``paper-aws`` for the MNIST CNN, else a live probe of the
    model on the local Lambda, kept per bundle and reused unless ``config.reprobe``
    (:mod:`labkit.tune.probes`; about a minute the first time), with the network's round
    trip added. ``say`` hears where a probed timing comes from."""
    name = config.profile or (PAPER_PROFILE if config.model == registry.MNIST else None)
    if name and name != "probe":
        return PlatformProfile.load(name)
    # deferred: the probe's parts (the emulator, torch to make the probe's inputs)
    from labkit.emulator.network import network_profile
    from labkit.studies import your_model
    from labkit.tune import probes

    own = config.model if Path(config.model).is_dir() else None
    bundles = your_model.bundles([] if own else [config.model], own, model_dir=config.model_dir,
                                 run_dir=run_dir)  # fmt: skip
    profile = probes.probed_profile(next(iter(bundles.values())), reprobe=config.reprobe, say=say)
    distance = network_profile(config.network)
    return add_network(profile, distance) if distance is not None else profile


#: Memory above the model's measured peak that a configuration must leave (the peak varies
#: a little with the batch and the input: 528-546 MB for the MNIST handler).
MEMORY_HEADROOM = 1.1


def memory_floor_mb(profile: PlatformProfile) -> float:
    """The smallest memory size the model runs in: its measured peak plus headroom (0 when
    the profile does not know its peak)."""
    used = profile.memory_used_mb
    return used * MEMORY_HEADROOM if used else 0.0


def inputs_of(config: TuneConfig, profile: PlatformProfile) -> dict[str, Any]:
    """What every figure of the search depends on (the store's fingerprint)."""
    return {"profile": dataclasses.asdict(profile), "workload": config.workload.as_dict(),
            "slo": dataclasses.asdict(config.slo), "requests": config.requests, "seed": config.seed}  # fmt: skip


def prune(config: TuneConfig, profile: PlatformProfile,
          candidates: list[Candidate]) -> tuple[list[Candidate], pd.DataFrame]:  # fmt: skip
    """The memory sizes that cannot serve: below the model's peak memory (always: such a
    function fails), or whose best case misses the SLO (a bound; not with ``prune=False``).
    Returns the candidates left, and those dropped with the reason and the bound. The closed
    form's pruning runs later, in the tasks (:func:`labkit.tune.evaluate.run`)."""
    target = config.slo.percentile
    floor = memory_floor_mb(profile)
    best_case = {m: analytic.best_case_attainment_pct(profile.at_memory(m), config.slo.latency_ms)
                 for m in sorted({c.memory_mb for c in candidates})}  # fmt: skip
    keep, dropped = [], []
    for c in candidates:
        if c.memory_mb < floor:  # not a performance prune: such a function cannot run
            dropped.append({**c.describe(), "reason": f"memory: the model uses {profile.memory_used_mb:.0f} MB",
                            "model_attainment_pct": 0.0})  # fmt: skip
        elif config.prune and best_case[c.memory_mb] < target - 0.5:
            dropped.append({**c.describe(), "reason": "memory: even a batch of one misses",
                            "model_attainment_pct": best_case[c.memory_mb]})  # fmt: skip
        else:
            keep.append(c)
    return keep, pd.DataFrame(dropped)


def agreement(table: pd.DataFrame) -> pd.DataFrame:
    """Analytic vs simulated SLO attainment on every simulated candidate the closed form
    covers (one per policy and memory: the model knows no concurrency)."""
    columns = ["key", "label", "policy", "memory_mb", "simulated_pct", "analytic_pct", "error_pts"]
    if "analytic_pct" not in table:
        return pd.DataFrame(columns=columns)
    both = table[table["analytic_pct"].notna()].drop_duplicates(["label", "memory_mb"])
    both = both.rename(columns={"slo_attainment_pct": "simulated_pct"})
    both["error_pts"] = both["analytic_pct"] - both["simulated_pct"]
    return both[columns].reset_index(drop=True)


def sureness(config: TuneConfig, profile: PlatformProfile, answer: pd.Series,
             runner_up: pd.Series | None) -> Sureness | None:  # fmt: skip
    """The answer and the runner-up on ``replications`` fresh draws, paired by draw."""
    if runner_up is None or config.replications == 0:
        return None
    by_key = {c.key: c for c in config.space.candidates()}
    rows = []
    for r in range(config.replications):
        seed = config.seed + 1_000 + r  # fresh arrivals and platform draws
        workload = evaluate.sized(config.workload, config.requests, seed)
        for role, row in (("answer", answer), ("runner-up", runner_up)):
            candidate = by_key[row["key"]]
            group = dataclasses.replace(_group_of(config, candidate), candidates=(candidate,))
            (found,) = evaluate.run(evaluate.Task(group, profile, workload, config.slo, seed)).rows
            rows.append({"replication": r, "role": role, "key": row["key"],
                         "slo_attainment_pct": found["slo_attainment_pct"],
                         "cost_per_1m_requests_usd": found["cost_per_1m_requests_usd"],
                         "meets": found["meets"]})  # fmt: skip
    table = pd.DataFrame(rows)
    a = table[table["role"] == "answer"].set_index("replication")
    b = table[table["role"] == "runner-up"].set_index("replication")
    changes = ((b["cost_per_1m_requests_usd"] / a["cost_per_1m_requests_usd"] - 1) * 100).tolist()
    estimate = float(np.mean(changes))
    wins = int(((b["cost_per_1m_requests_usd"] < a["cost_per_1m_requests_usd"]) & b["meets"]).sum())
    return Sureness(
        table, inference.replicated_interval(estimate, changes), bool(a["meets"].all()), wins
    )


def _group_of(config: TuneConfig, candidate: Candidate) -> Any:
    return next(g for g in config.space.groups() if g.policy == candidate.policy)


#: A configuration's simulation time relative to a batching policy's whose batches are
#: formed once (bench/tune.py: SQS ~1 s, SLO-aware ~0.45 s, no batching ~0.3 s, static and
#: dynamic ~0.1 s per 100,000 requests).
_RELATIVE_COST = {"sqs": 10.0, "slo-aware": 4.5, "none": 3.0}


def _work_units(space: SearchSpace) -> list[Any]:
    """The search's tasks: a policy's candidates together when they share its batches, one
    memory size at a time when they cannot (SQS, a learning policy), so that the slow
    policies spread over the workers instead of ending the search on one of them."""
    units = []
    for group in space.groups():
        if group.policy.kind in ("sqs", "slo-aware"):
            for memory in dict.fromkeys(c.memory_mb for c in group.candidates):
                units.append(dataclasses.replace(
                    group, candidates=tuple(c for c in group.candidates if c.memory_mb == memory)))  # fmt: skip
        else:
            units.append(group)
    return units


def _expected_seconds(task: evaluate.Task) -> float:
    return _RELATIVE_COST.get(task.group.policy.kind, 1.0) * len(task.todo())


def default_folder(config: TuneConfig, profile: PlatformProfile) -> Path:
    name = Path(config.model).name if Path(config.model).is_dir() else config.model
    tag = fingerprint(inputs_of(config, profile))
    return paths.results_dir() / "tune" / f"{name}-{config.workload.label}-{tag}"


def progress_bar(description: str = "tune") -> Callable[[int, int], None]:
    """A progress callback for :func:`tune` drawing a tqdm bar (a widget in a notebook)."""
    from tqdm.auto import tqdm

    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="config", desc=description)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()

    return update


def tune(config: TuneConfig, *, profile: PlatformProfile | None = None,
         progress: Callable[[int, int], None] | None = None,
         say: Callable[[str], None] | None = None) -> TuneResult:  # fmt: skip
    """Run the search (resuming what ``config.out`` holds), and answer. ``say`` hears where
    a probed model's timing comes from, before the probe (which takes a minute)."""
    start = time.perf_counter()
    timing: list[str] = []

    def heard(line: str) -> None:
        timing.append(line)
        if say:
            say(line)

    profile = profile or model_profile(config, say=heard)
    workload = evaluate.sized(config.workload, config.requests, config.seed)
    folder = Path(config.out) if config.out else default_folder(config, profile)
    store = ResultStore(folder, inputs_of(config, profile))
    candidates, pruned = prune(config, profile, config.space.candidates())
    done = store.done_keys()
    chosen = {c.key for c in candidates}
    margin = config.prune_margin_pts if config.prune else None
    tasks = []
    for group in _work_units(config.space):
        skip = frozenset(c.key for c in group.candidates if c.key in done or c.key not in chosen)
        task = evaluate.Task(group, profile, workload, config.slo, config.seed, skip=skip,
                             prune_margin_pts=margin)  # fmt: skip
        if task.todo():
            tasks.append(task)
    tasks.sort(key=_expected_seconds, reverse=True)  # the longest first: no straggler at the end
    total = sum(len(t.todo()) for t in tasks)
    finished = 0
    dropped: list[dict[str, Any]] = []

    def save(task: evaluate.Task, outcome: evaluate.Outcome) -> None:
        nonlocal finished
        store.write(task.group.policy.kind, task.group.key, outcome.rows)
        dropped.extend(outcome.pruned)
        finished += len(outcome.rows) + len(outcome.pruned)
        if progress:
            progress(finished, total)

    try:
        facts = run_all(evaluate.run, tasks, config.cluster, save, interruptible=False)
    except KeyboardInterrupt as stop:  # SIGTERM's Terminated too: the same kind, said where
        raise type(stop)(f"{finished} of {total} configurations kept in {folder}; the same "
                         "command resumes the search") from None  # fmt: skip
    table = store.load()
    table = table[table["key"].isin(chosen)].reset_index(drop=True)
    facts |= {"resumed": len(done & chosen), "simulated_now": total - len(dropped),
              "fanout_seconds": facts["seconds"],  # the configurations' own time, on the workers
              "seconds": time.perf_counter() - start, "timing": timing[-1] if timing else None}  # fmt: skip
    pruned = pd.concat([pruned, pd.DataFrame(dropped)], ignore_index=True)
    result = TuneResult(config, profile, table, pruned, agreement(table), folder, facts)
    if result.answer is not None:
        result.sureness = sureness(config, profile, result.answer, result.runner_up)
    result.run["seconds"] = time.perf_counter() - start
    save_answer(result)
    return result


def save_answer(result: TuneResult) -> Path:
    """``answer.json``, ``pruned.csv``, ``agreement.csv`` and ``frontier.csv`` in the search's folder."""
    import json

    folder = result.folder
    result.pruned.to_csv(folder / "pruned.csv", index=False)
    result.agreement.to_csv(folder / "agreement.csv", index=False)
    result.frontier().to_csv(folder / "frontier.csv", index=False)
    best, second = result.answer, result.runner_up

    def plain(row: pd.Series | None) -> dict[str, Any] | None:
        return None if row is None else json.loads(row.to_json())

    answer = {"lines": result.lines(), "answer": plain(best), "runner_up": plain(second),
              "near": json.loads(result.near().to_json(orient="records")), "run": result.run}  # fmt: skip
    if result.sureness is not None:
        answer["sureness"] = dataclasses.asdict(result.sureness.difference) | {
            "answer_always_meets": result.sureness.answer_always_meets,
            "runner_up_wins": result.sureness.runner_up_wins,
        }
    path = folder / "answer.json"
    path.write_text(json.dumps(answer, indent=2, default=str))
    return path
