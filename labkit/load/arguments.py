"""The workload's command-line arguments, shared by every command that sends traffic.

``labkit run`` and ``labkit tune`` describe traffic the same way; one definition keeps their
flags, defaults and help identical (a user who learnt one knows the other).
"""

from __future__ import annotations

import argparse

from labkit.load.workloads import WorkloadConfig

#: The kinds a command-line workload may name (``ramp`` is a preset's, not a flag's).
KINDS = ("uniform", "poisson", "bursty", "csv", "azure")


def add_workload_arguments(parser: argparse.ArgumentParser, *, default: str = "uniform",
                           kinds: tuple[str, ...] = KINDS) -> None:  # fmt: skip
    """Add ``--workload`` and its parameters (rate, bursts, trace, seed) to ``parser``."""
    parser.add_argument("--workload", default=default, help=" | ".join(kinds))
    parser.add_argument("--rate", type=float, default=20.0, help="requests/s (uniform, poisson)")
    parser.add_argument("--base-rate", type=float, default=8.0,
                        help="bursty: requests/s between bursts")  # fmt: skip
    parser.add_argument("--burst-rate", type=float, default=60.0,
                        help="bursty: requests/s in a burst")  # fmt: skip
    parser.add_argument("--burst-s", type=float, default=1.0, help="bursty: a burst's length")
    parser.add_argument("--period-s", type=float, default=5.0, help="bursty: burst every ...")
    parser.add_argument("--trace", default=None, help="csv/azure: the trace file")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(workload_kinds=kinds)


def workload_from(args: argparse.Namespace, duration_s: float = 30.0) -> WorkloadConfig:
    """The :class:`WorkloadConfig` the arguments describe; ``ValueError`` names a kind the
    command does not take, or a trace kind without ``--trace``."""
    kind = args.workload.lower()
    kinds = getattr(args, "workload_kinds", KINDS)
    if kind not in kinds:
        raise ValueError(f"--workload must be one of {', '.join(kinds)}, not {args.workload!r}")
    if kind in ("csv", "azure") and not args.trace:
        raise ValueError(f"--workload {kind} needs --trace FILE")
    return WorkloadConfig(kind, rate=args.rate, duration_s=duration_s, seed=args.seed,
                          base_rate=args.base_rate, burst_rate=args.burst_rate,
                          burst_s=args.burst_s, period_s=args.period_s, trace=args.trace)  # fmt: skip
