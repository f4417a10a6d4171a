"""Running the embedded local Lambda: one process serving the Invoke API for its functions.

``python -m labkit.emulator`` (or ``labkit emulator``) serves until interrupted; it prints one
JSON line ``{"endpoint_url": ...}`` on stdout when it is ready, which is how
:class:`labkit.emulator.LocalLambda` finds it. On exit every instance process is killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Sequence

from labkit.emulator import platform_support, process_tree
from labkit.emulator.api import BODY_LIMIT, InvokeApi
from labkit.emulator.config import FunctionConfig, add_arguments, configs_from_args, is_loopback
from labkit.emulator.cpu_latency import hold_cpu_latency
from labkit.emulator.httpserver import HttpServer
from labkit.emulator.instance import Started
from labkit.emulator.network import NetworkProfile, network_profile
from labkit.emulator.service import FunctionService


async def serve(
    configs: Sequence[FunctionConfig], host: str = "127.0.0.1", port: int = 0,
    stop: asyncio.Event | None = None, cpu_latency_us: int | None = None,
    network: NetworkProfile | None = None, network_seed: int | None = None,
    reap_orphans: bool = False, sqs_endpoint_url: str | None = None,
) -> None:  # fmt: skip
    """Serve ``configs`` until ``stop`` is set (or SIGINT/SIGTERM).

    ``cpu_latency_us``: hold the CPUs' wake-up latency at most this while serving (see
    :mod:`labkit.emulator.cpu_latency`); the ready line says whether it is held.
    ``network``: a round trip added to every invocation (:mod:`labkit.emulator.network`),
    drawn with ``network_seed``. ``reap_orphans``: this process is the emulator's own, so it
    may adopt and kill what dead instances left behind (:mod:`labkit.emulator.process_tree`).
    ``sqs_endpoint_url``: the SQS event-source mappings poll (:mod:`labkit.emulator.event_sources`).
    """
    hold = hold_cpu_latency(cpu_latency_us)  # a bad limit raises before anything starts
    facilities = platform_support.detect()
    for note in facilities.differences():  # each stand-in named once, at start
        print(f"labkit emulator: {note}", file=sys.stderr, flush=True)
    if hold.refused:
        print(f"labkit emulator: CPU wake-up latency {hold.status}", file=sys.stderr, flush=True)
    services = {c.name: FunctionService(c) for c in configs}
    round_trips = network.sampler(network_seed) if network is not None else None
    api = InvokeApi(services, round_trips, sqs_endpoint_url)
    server = HttpServer(api.handle, body_limit=BODY_LIMIT)
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        bound = await server.start(host, port)
        for service in services.values():
            await service.start()
        ready = {"endpoint_url": f"http://{bound[0]}:{bound[1]}", "functions": sorted(services),
                 "cpu_latency": hold.status, "platform": facilities.facts(),
                 "network": network.describe() if network is not None else None}  # fmt: skip
        print(json.dumps(ready), flush=True)
        sweeper = asyncio.create_task(_sweep_orphans()) if reap_orphans else None
        await stop.wait()
        if sweeper is not None:
            sweeper.cancel()
    finally:
        await api.close_mappings()
        await asyncio.gather(*(s.close() for s in services.values()), return_exceptions=True)
        await server.close()
        hold.release()


async def _sweep_orphans(interval_s: float = 1.0) -> None:
    """Kill what dead instances left behind (re-parented here), every ``interval_s``."""
    if not process_tree.become_subreaper():
        return
    while True:
        await asyncio.sleep(interval_s)
        if Started.starting == 0:
            process_tree.sweep_orphans(keep=Started.pids)


def run(args: argparse.Namespace) -> int:
    """Serve from parsed CLI arguments until interrupted (exit code 0)."""
    configs = configs_from_args(args)
    if not is_loopback(args.host):
        print(f"labkit emulator: warning: serving on {args.host}: the Invoke API is reachable from "
              "other machines, without authentication (use 127.0.0.1 unless you mean it)",
              file=sys.stderr, flush=True)  # fmt: skip
    network = network_profile(json.loads(args.network_json) if args.network_json else args.network)
    if os.environ.pop(platform_support.WATCH_PARENT_ENV, ""):
        platform_support.stop_with_parent()
    main = serve(configs, args.host, args.port, cpu_latency_us=args.cpu_latency_us,
                 network=network, network_seed=args.network_seed, reap_orphans=True,
                 sqs_endpoint_url=args.sqs_endpoint_url)  # fmt: skip
    try:
        import uvloop  # optional: a faster event loop where installed
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.emulator", description=__doc__)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ValueError as exc:
        print(f"labkit emulator: error: {exc}", file=sys.stderr)
        return 2
