"""Configuration of one function in the embedded local Lambda, and its command-line form.

Kept free of the server's imports, so ``labkit --help`` does not load the server."""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from labkit.emulator.platform_support import detect
from labkit.settings import DEFAULT_HANDLER, NAME_PATTERN, FunctionSettings, local_concurrency

REGION = "us-east-1"
ACCOUNT_ID = "000000000000"  # like LocalStack and moto: obviously not a real account
#: Limits not given are the kit's function settings (labkit.settings), as on every backend.
_DEFAULTS = FunctionSettings()
#: labkit's own runtime client, run by path (importing the package would slow cold starts).
RUNTIME_CLIENT = Path(__file__).with_name("runtime_client.py")

#: Environment variables passed through from the emulator's own environment to instances.
PASS_THROUGH = ("PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "LABKIT_MNIST_ROOT")


@dataclass(frozen=True)
class FunctionConfig:
    """One function: its code folder and the limits Lambda would apply to it.

    ``code_dir`` is a bundle (``labkit bundle``) or any folder holding the handler's module;
    a folder with an executable ``bootstrap`` runs as a custom runtime instead of
    ``python -m awslambdaric <handler>``.
    """

    name: str
    code_dir: Path
    handler: str = DEFAULT_HANDLER
    memory_mb: int = _DEFAULTS.memory_mb
    timeout_s: float = _DEFAULTS.timeout_s
    concurrency: int = 10  # a new AWS account's limit (labkit's backend and CLI: local_concurrency)
    keep_alive_s: float = _DEFAULTS.keep_alive_s
    provisioned: int = 0
    #: Seconds an invocation may wait for a free instance at the concurrency limit before it
    #: is throttled (429). 0 is Lambda's behaviour; > 0 queues, for benchmarks only.
    throttle_wait_s: float = 0.0
    environment: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    #: Give each instance Lambda's CPU share (memory/1769 vCPU) and a memory limit through
    #: cgroups where the system allows it (labkit.emulator.cpu_share); otherwise whole cores.
    cpu_share: bool = False

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(f"function name {self.name!r}: 1-64 letters, digits, - or _")
        object.__setattr__(self, "code_dir", Path(self.code_dir).resolve())
        if not self.code_dir.is_dir():
            raise ValueError(f"function {self.name}: code folder {self.code_dir} does not exist")
        if not 128 <= self.memory_mb <= 10240:
            raise ValueError(f"memory_mb must be 128-10240 (as on Lambda), got {self.memory_mb}")
        if not 0 < self.timeout_s <= 900:
            raise ValueError(f"timeout_s must be in (0, 900], got {self.timeout_s}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {self.concurrency}")
        if not 0 <= self.provisioned <= self.concurrency:
            raise ValueError(
                f"provisioned must be between 0 and concurrency ({self.concurrency}), got {self.provisioned}"
            )
        if self.keep_alive_s <= 0:
            raise ValueError(f"keep_alive_s must be > 0, got {self.keep_alive_s}")
        if self.throttle_wait_s < 0:
            raise ValueError(f"throttle_wait_s must be >= 0, got {self.throttle_wait_s}")
        if not self.is_custom_runtime and "." not in self.handler:
            raise ValueError(f"handler {self.handler!r} must look like module.function")

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.name}"

    @property
    def bootstrap(self) -> Path:
        return self.code_dir / "bootstrap"

    @property
    def is_custom_runtime(self) -> bool:
        return self.bootstrap.is_file() and os.access(self.bootstrap, os.X_OK)

    def command(self) -> list[str]:
        """How an instance process starts: the custom runtime; the official runtime client;
        or, where it is not installed or the kernel cannot end the instance with the service,
        labkit's runtime client (:mod:`labkit.emulator.runtime_client`), which can also run
        the official one under its parent watch."""

        if self.is_custom_runtime:
            return [str(self.bootstrap)]
        facilities = detect()
        if facilities.runtime_client == "awslambdaric" and facilities.parent_death_signal:
            return [self.python, "-m", "awslambdaric", self.handler]
        watch = [] if facilities.parent_death_signal else ["--watch-parent"]
        return [self.python, str(RUNTIME_CLIENT), "--client", facilities.runtime_client, *watch,
                self.handler]  # fmt: skip

    def instance_environment(
        self, runtime_api: str, log_stream: str, *, provisioned: bool = False
    ) -> dict[str, str]:
        """What Lambda puts in a sandbox's environment (never AWS_LAMBDA_MAX_CONCURRENCY,
        which would switch the runtime client into multi-concurrency mode, nor the caller's
        AWS credentials)."""
        env = {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        env |= {
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": self.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": log_stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": (
                "provisioned-concurrency" if provisioned else "on-demand"
            ),
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_python{sys.version_info.major}.{sys.version_info.minor}",
            "_HANDLER": self.handler,
            "LAMBDA_TASK_ROOT": str(self.code_dir),
            "LAMBDA_RUNTIME_DIR": str(Path(self.python).resolve().parent),
            "TZ": ":UTC",
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": str(self.code_dir),
            "LABKIT_TORCH_THREADS": "1",
        }
        env |= self.environment
        env.pop("AWS_LAMBDA_MAX_CONCURRENCY", None)
        return env


def port_number(value: str) -> int:
    """``--port``: a TCP port, 0-65535 (0 picks a free one)."""
    try:
        port = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"port must be a number 0-65535, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535 (0 picks a free one), not {port}")
    return port


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds this machine only (127.0.0.0/8, ::1, localhost)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--function", action="append", default=[], metavar="NAME=DIR",
                        help="a function and its code folder (a bundle); repeatable")  # fmt: skip
    parser.add_argument("--configs-json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--handler", default=DEFAULT_HANDLER,
                        help=f"module.function for folders without a bootstrap (default {DEFAULT_HANDLER})")  # fmt: skip
    parser.add_argument("--host", default="127.0.0.1",
                        help="bind address (default 127.0.0.1: this machine only; another address "
                             "serves the Invoke API, unauthenticated, to the network)")  # fmt: skip
    parser.add_argument("--port", type=port_number, default=9001,
                        help="port 0-65535; 0 picks a free one (default 9001)")  # fmt: skip
    parser.add_argument("--memory-mb", type=int, default=_DEFAULTS.memory_mb)
    parser.add_argument("--timeout-s", type=float, default=_DEFAULTS.timeout_s)
    parser.add_argument("--concurrency", type=int, default=local_concurrency(),
                        help="instances at most (default: this machine's cores, at least 2)")  # fmt: skip
    parser.add_argument("--keep-alive-s", type=float, default=_DEFAULTS.keep_alive_s)
    parser.add_argument(
        "--provisioned", type=int, default=0, help="pre-warmed instances per function"
    )
    parser.add_argument("--cpu-share", action="store_true",
                        help="give instances Lambda's CPU share (memory/1769 vCPU) via cgroups")  # fmt: skip
    parser.add_argument("--cpu-latency-us", type=int, default=None, metavar="US",
                        help="while serving, keep CPUs' idle wake-up latency <= US via "
                             "/dev/cpu_dma_latency (0: idle CPUs poll; needs root; costs power)")  # fmt: skip
    parser.add_argument("--network", default=None, metavar="PROFILE",
                        help="add a network round trip per invocation: same-region or "
                             "laptop-to-region (labkit.emulator.network); default none")  # fmt: skip
    parser.add_argument("--network-json", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--network-seed", type=int, default=None, help="seed of the round trips")
    parser.add_argument("--sqs-endpoint-url", default=None, metavar="URL",
                        help="the SQS that event-source mappings poll (e.g. labkit.emulator.queues.LocalSqs)")  # fmt: skip
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
            environment=environment, cpu_share=args.cpu_share,
        ))  # fmt: skip
    return configs
