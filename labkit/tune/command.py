"""The ``labkit tune`` command: its arguments, and what it prints."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from labkit.load.arguments import add_workload_arguments, workload_from
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
    add_workload_arguments(tune, default="bursty", kinds=("uniform", "poisson", "bursty", "csv"))
    tune.add_argument("--slo-ms", type=float, default=200.0, help="the SLO's latency")
    tune.add_argument("--percentile", type=float, default=95.0,
                      help="the share of requests that must meet it (%%)")  # fmt: skip
    tune.add_argument(
        "--slo", default=None, help="instead: '95%% within 200 ms' or 'p99 <= 350 ms'"
    )
    tune.add_argument("--profile", default=None,
                      help="platform timing: paper-aws (default for mnist-cnn), local, a profile "
                           "file, or probe (the model measured on the local Lambda once, then "
                           "kept: the default for other models)")  # fmt: skip
    tune.add_argument("--reprobe", action="store_true",
                      help="a probed model: measure it again (by default the probe kept for its "
                           "bundle is reused, so the same command gives the same answer and "
                           "resumes)")  # fmt: skip
    tune.add_argument("--network", default="laptop-to-region",
                      help="round trip added to a probed model (same-region, laptop-to-region, none)")  # fmt: skip
    tune.add_argument("--space", choices=sorted(SPACES), default="paper",
                      help="paper: 7,014 configurations; small: a quick look")  # fmt: skip
    tune.add_argument("--policies", nargs="+", choices=POLICIES, default=None)
    tune.add_argument("--memories-mb", nargs="+", type=int, default=None)
    tune.add_argument("--requests", type=int, default=100_000, help="per configuration")
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
                      help="run the answer and the runner-up live beside the model")  # fmt: skip
    tune.add_argument("--validate-s", type=float, default=30.0, help="seconds of traffic each")
    tune.add_argument("--validate-on", choices=("local", "aws"), default="local",
                      help="the embedded local Lambda, or the function `labkit deploy up` "
                           "deployed (resized per configuration and back; needs --max-budget-usd)")  # fmt: skip
    tune.add_argument("--max-budget-usd", type=float, default=None,
                      help="--validate-on aws: refuse a live check expected to cost more")  # fmt: skip
    tune.add_argument("--region", default=None, help="--validate-on aws: the function's region")
    tune.add_argument("--function-name", default=None,
                      help="--validate-on aws: the deployed function (default labkit-mnist)")  # fmt: skip
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.set_defaults(func=run)


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
                      cluster=Cluster(args.workers, args.scheduler), out=args.out,
                      reprobe=args.reprobe)  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from labkit.tune import search  # deferred: pandas (`labkit --help` stays fast)

    config = config_from(args)
    target = None
    if args.validate:
        from labkit.tune.validate import LiveTarget  # deferred: the live check's parts

        target = LiveTarget(args.validate_on, region=args.region, function_name=args.function_name,
                            max_budget_usd=args.max_budget_usd)  # fmt: skip
    result = search.tune(config, progress=None if args.quiet else search.progress_bar(), say=print)
    print("\n".join(result.lines()))
    if args.validate and result.answer is not None:
        from labkit.analysis import numbers  # deferred: pandas
        from labkit.tune import validate  # deferred: the live check's parts

        table = validate.validate(result, duration_s=args.validate_s, target=target, say=print)
        where = "AWS Lambda" if args.validate_on == "aws" else "the local Lambda"
        print(f"\nModel vs measured on {where} (same arrivals):")
        print(numbers.text(table))
        print(validate.verdict(table, config.slo.percentile))
        print(validate.within_error(result, table))
    print(f"\nevery configuration's figures: {result.folder}")
    return 0
