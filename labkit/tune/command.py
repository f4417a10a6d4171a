"""The ``labkit tune`` command: its arguments, and what it prints."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from labkit.load.workloads import WorkloadConfig
from labkit.tune.executor import Cluster
from labkit.tune.objective import Slo
from labkit.tune.space import POLICIES, SMALL, SearchSpace

SPACES = {"paper": SearchSpace(), "small": SMALL}


def add_parser(sub: Any) -> None:
    tune = sub.add_parser(
        "tune",
        help="the cheapest memory, policy, N, T and concurrency that meets your SLO",
        description="Search memory size, batching policy and placement (none, client, SQS), "
        "N, T and concurrency on the simulator for the cheapest configuration whose latency "
        "meets the SLO on your workload; print it, the runner-up and how sure, and save every "
        "configuration's figures (a rerun resumes). Example: labkit tune --model mnist-cnn "
        "--workload bursty --slo-ms 200 --percentile 95 --validate",
    )
    tune.add_argument("--model", default="mnist-cnn",
                      help="a model of `labkit models`, or your bundle's folder (`labkit bundle`)")  # fmt: skip
    tune.add_argument("--model-dir", default=None,
                      help="mnist-cnn: the trained model's folder (default models/mnist-cnn)")  # fmt: skip
    tune.add_argument("--workload", default="bursty", help="uniform | poisson | bursty | csv")
    tune.add_argument("--rate", type=float, default=20.0, help="uniform, poisson: requests/s")
    tune.add_argument("--base-rate", type=float, default=8.0, help="bursty: between bursts")
    tune.add_argument("--burst-rate", type=float, default=60.0, help="bursty: in a burst")
    tune.add_argument("--burst-s", type=float, default=1.0)
    tune.add_argument("--period-s", type=float, default=5.0)
    tune.add_argument("--trace", default=None, help="csv: a file of arrival times (seconds)")
    tune.add_argument("--slo-ms", type=float, default=200.0, help="the SLO's latency")
    tune.add_argument("--percentile", type=float, default=95.0,
                      help="the share of requests that must meet it (%%)")  # fmt: skip
    tune.add_argument(
        "--slo", default=None, help="instead: '95%% within 200 ms' or 'p99 <= 350 ms'"
    )
    tune.add_argument("--profile", default=None,
                      help="platform timing: paper-aws (default for mnist-cnn), local, a profile "
                           "file, or probe (measure the model on the local Lambda: the default "
                           "for other models)")  # fmt: skip
    tune.add_argument("--network", default="laptop-to-region",
                      help="round trip added to a probed model (same-region, laptop-to-region, none)")  # fmt: skip
    tune.add_argument("--space", choices=sorted(SPACES), default="paper",
                      help="paper: 7,014 configurations; small: a quick look")  # fmt: skip
    tune.add_argument("--policies", nargs="+", choices=POLICIES, default=None)
    tune.add_argument("--memories-mb", nargs="+", type=int, default=None)
    tune.add_argument("--requests", type=int, default=100_000, help="per configuration")
    tune.add_argument("--seed", type=int, default=0)
    tune.add_argument("--margin-pct", type=float, default=5.0,
                      help="list the choices within this much of the answer's cost")  # fmt: skip
    tune.add_argument("--no-prune", action="store_true", help="simulate every configuration")
    tune.add_argument("--replications", type=int, default=5,
                      help="fresh draws of the answer and the runner-up (how sure; 0: none)")  # fmt: skip
    tune.add_argument("--workers", type=int, default=None,
                      help="local Dask worker processes (default: the cores; 1: no Dask)")  # fmt: skip
    tune.add_argument("--scheduler", default=None,
                      help="a running Dask scheduler, tcp://host:8786 (its workers need labkit)")  # fmt: skip
    tune.add_argument("--out", default=None, help="the search's folder (default results/tune/...)")
    tune.add_argument("--validate", action="store_true",
                      help="run the answer and the runner-up live on the local Lambda")  # fmt: skip
    tune.add_argument("--validate-s", type=float, default=30.0, help="seconds of traffic each")
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.set_defaults(func=run)


def workload_from(args: argparse.Namespace) -> WorkloadConfig:
    kind = args.workload.lower()
    if kind not in ("uniform", "poisson", "bursty", "csv"):
        raise ValueError(
            f"--workload must be uniform, poisson, bursty or csv, not {args.workload!r}"
        )
    if kind == "csv" and not args.trace:
        raise ValueError("--workload csv needs --trace FILE")
    return WorkloadConfig(kind, rate=args.rate, base_rate=args.base_rate, burst_rate=args.burst_rate,
                          burst_s=args.burst_s, period_s=args.period_s, trace=args.trace)  # fmt: skip


def config_from(args: argparse.Namespace) -> Any:
    from labkit.tune.search import TuneConfig  # deferred: pandas (`labkit --help` stays fast)

    space = SPACES[args.space]
    if args.policies:
        space = dataclasses.replace(space, policies=tuple(args.policies))
    if args.memories_mb:
        space = dataclasses.replace(space, memories_mb=tuple(args.memories_mb))
    slo = Slo.parse(args.slo) if args.slo else Slo(args.slo_ms, args.percentile)
    return TuneConfig(model=args.model, model_dir=args.model_dir, workload=workload_from(args), slo=slo,
                      profile=args.profile, network=None if args.network == "none" else args.network,
                      space=space, requests=args.requests, seed=args.seed, margin_pct=args.margin_pct,
                      prune=not args.no_prune, replications=args.replications,
                      cluster=Cluster(args.workers, args.scheduler), out=args.out)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from labkit.tune import search  # deferred: pandas (`labkit --help` stays fast)

    config = config_from(args)
    result = search.tune(config, progress=None if args.quiet else search.progress_bar())
    print("\n".join(result.lines()))
    if args.validate and result.answer is not None:
        from labkit.tune import validate  # deferred: the live check's parts

        table = validate.validate(result, duration_s=args.validate_s)
        print("\nModel vs measured on the local Lambda (same arrivals):")
        print(table.round(3).to_string(index=False))
        print(validate.verdict(table, config.slo.percentile))
        print(validate.within_error(result, table))
    print(f"\nevery configuration's figures: {result.folder}")
    return 0
