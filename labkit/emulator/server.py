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
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from labkit.emulator.api import InvokeApi
from labkit.emulator.config import DEFAULT_HANDLER, FunctionConfig
from labkit.emulator.service import FunctionService


async def serve(
    configs: Sequence[FunctionConfig], host: str = "127.0.0.1", port: int = 0,
    stop: asyncio.Event | None = None,
) -> None:  # fmt: skip
    """Serve ``configs`` until ``stop`` is set (or SIGINT/SIGTERM)."""
    services = {c.name: FunctionService(c) for c in configs}
    runner = web.AppRunner(InvokeApi(services).app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = site._server.sockets[0].getsockname()  # type: ignore[union-attr]
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        for service in services.values():
            await service.start()
        ready = {"endpoint_url": f"http://{bound[0]}:{bound[1]}", "functions": sorted(services)}
        print(json.dumps(ready), flush=True)
        await stop.wait()
    finally:
        await asyncio.gather(*(s.close() for s in services.values()), return_exceptions=True)
        await runner.cleanup()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--function", action="append", default=[], metavar="NAME=DIR",
                        help="a function and its code folder (a bundle); repeatable")  # fmt: skip
    parser.add_argument("--configs-json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--handler", default=DEFAULT_HANDLER,
                        help=f"module.function for folders without a bootstrap (default {DEFAULT_HANDLER})")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9001, help="port; 0 picks a free one")
    parser.add_argument("--memory-mb", type=int, default=1024)
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--keep-alive-s", type=float, default=300.0)
    parser.add_argument(
        "--provisioned", type=int, default=0, help="pre-warmed instances per function"
    )
    parser.add_argument("--throttle-wait-s", type=float, default=0.0,
                        help="queue this long at the concurrency limit before a 429 (0: as Lambda)")  # fmt: skip
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment variable for the function's instances; repeatable")  # fmt: skip


def configs_from_args(args: argparse.Namespace) -> list[FunctionConfig]:
    if args.configs_json:  # from LocalLambda: the full FunctionConfig fields
        return [FunctionConfig(**item) for item in json.loads(args.configs_json)]
    if not args.function:
        raise ValueError("name at least one --function NAME=DIR")
    environment = {}
    for item in args.env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--env {item!r} must look like KEY=VALUE")
        environment[key] = value
    configs = []
    for item in args.function:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise ValueError(f"--function {item!r} must look like NAME=DIR")
        configs.append(FunctionConfig(
            name=name, code_dir=Path(folder), handler=args.handler, memory_mb=args.memory_mb,
            timeout_s=args.timeout_s, concurrency=args.concurrency, keep_alive_s=args.keep_alive_s,
            provisioned=args.provisioned, throttle_wait_s=args.throttle_wait_s,
            environment=environment,
        ))  # fmt: skip
    return configs


def run(args: argparse.Namespace) -> int:
    """Serve from parsed CLI arguments until interrupted (exit code 0)."""
    configs = configs_from_args(args)
    try:
        import uvloop  # optional: a faster event loop where installed

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(serve(configs, args.host, args.port))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m labkit.emulator", description=__doc__)
    add_arguments(parser)
    try:
        return run(parser.parse_args(argv))
    except ValueError as exc:
        print(f"labkit emulator: error: {exc}", file=sys.stderr)
        return 2
