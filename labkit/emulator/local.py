"""Starting the embedded local Lambda from Python: ``with LocalLambda(config) as lam: ...``.

The emulator runs in its own process (so a load generator in this process does not compete
with it for the GIL), started here and stopped on exit; it and its instances die with this
process even if it is killed, so no process is ever left behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from labkit.emulator.config import FunctionConfig
from labkit.emulator.cpu_latency import check_limit
from labkit.emulator.lifetime import die_with_parent
from labkit.emulator.network import NetworkProfile, network_profile
from labkit.emulator.platform_support import WATCH_PARENT_ENV, detect
from labkit.emulator.readiness import await_ready_line

#: glibc's malloc raises its mmap threshold after freeing a large block, so later request
#: and response bodies of a few MB come from the heap and fragment it: in bench/soak.py the
#: service grew 46 -> 74 MB in 6 minutes with its log store near empty; with the threshold
#: held at 128 KB it stayed at 37-42 MB (bench/README.md). Other C libraries ignore it.
_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "131072"}


def _service_environment() -> dict[str, str]:
    """This process's environment, with the allocator setting above unless one is given; and,
    where the kernel cannot end the service with this process, the ask to watch for it."""

    watch = {} if detect().parent_death_signal else {WATCH_PARENT_ENV: "1"}
    return _MALLOC | dict(os.environ) | watch


class EmulatorError(RuntimeError):
    """The local Lambda did not start, or an admin call failed."""


class LocalLambda:
    """A running embedded local Lambda serving ``functions``; use as a context manager."""

    def __init__(
        self,
        functions: FunctionConfig | Sequence[FunctionConfig],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        startup_timeout_s: float = 60.0,
        cpu_latency_us: int | None = None,
        network: NetworkProfile | str | None = None,
        network_seed: int | None = None,
        sqs_endpoint_url: str | None = None,
    ) -> None:
        """``cpu_latency_us``: while running, hold idle CPUs' wake-up latency at most this
        (:mod:`labkit.emulator.cpu_latency`; 0 makes idle CPUs poll; needs root).
        :attr:`cpu_latency` says afterwards whether the hold was granted. ``network``: a round
        trip per invocation (:mod:`labkit.emulator.network`: a shipped name or a profile).
        ``sqs_endpoint_url``: the SQS its event-source mappings poll (:class:`labkit.emulator.queues.LocalSqs`)."""
        self.functions = [functions] if isinstance(functions, FunctionConfig) else list(functions)
        if not self.functions:
            raise ValueError("LocalLambda needs at least one function")
        check_limit(cpu_latency_us)
        self.network = network_profile(network)
        self.network_seed = network_seed
        self.sqs_endpoint_url = sqs_endpoint_url
        self.host, self.port, self.startup_timeout_s = host, port, startup_timeout_s
        self.cpu_latency_us = cpu_latency_us
        self.cpu_latency = ""  # once started: "held at 0 us (...)", "not asked for", ...
        self.endpoint_url = ""
        self._process: subprocess.Popen[bytes] | None = None
        # Lives as long as this object: the emulator's stderr, shown if it fails to start.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115

    def start(self) -> LocalLambda:
        configs = [
            {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(c).items()}
            for c in self.functions
        ]
        command = [sys.executable, "-m", "labkit.emulator", "--host", self.host,
                   "--port", str(self.port), "--configs-json", json.dumps(configs)]  # fmt: skip
        if self.cpu_latency_us is not None:
            command += ["--cpu-latency-us", str(self.cpu_latency_us)]
        if self.network is not None:
            command += ["--network-json", json.dumps(self.network.describe())]
        if self.network_seed is not None:
            command += ["--network-seed", str(self.network_seed)]
        if self.sqs_endpoint_url:
            command += ["--sqs-endpoint-url", self.sqs_endpoint_url]
        # In its own session: a terminal's Ctrl-C reaches the run, which saves what it has
        # and then stops this service in order, not the service mid-run. It still dies with
        # this process (die_with_parent), so nothing is ever left behind.
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=self._stderr, stdin=subprocess.DEVNULL,
            preexec_fn=die_with_parent(signal.SIGTERM), start_new_session=True,
            env=_service_environment(),
        )  # fmt: skip
        ready = self._read_ready_line()
        self.endpoint_url = ready["endpoint_url"]
        self.cpu_latency = ready.get("cpu_latency", "")
        self.platform: dict[str, str] = ready.get("platform", {})  # which facilities serve
        threading.Thread(target=self._drain, daemon=True).start()
        return self

    def _read_ready_line(self) -> dict[str, Any]:
        assert self._process is not None
        ready = await_ready_line(self._process, self.startup_timeout_s, close=self.close)
        if not ready.started:
            self._stderr.seek(0)
            detail = self._stderr.read().decode(errors="replace").strip()[-2000:]
            cause = detail.splitlines()[-1] if detail else ""  # a traceback's last line says why
            failure = ready.failure("the local Lambda", self.startup_timeout_s)
            raise EmulatorError(f"{failure}: {cause}\n{detail}" if cause else failure)
        return ready.fields

    def _drain(self) -> None:
        stream = self._process.stdout if self._process else None
        if stream is not None:
            for _ in stream:
                pass

    def close(self) -> None:
        """Stop the emulator; it kills every instance process before exiting."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> LocalLambda:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    # ----- clients and admin ------------------------------------------------------------

    def client(self, *, max_pool_connections: int = 10, read_timeout_s: float = 960.0) -> Any:
        """A boto3 Lambda client for this endpoint (dummy credentials, no retries)."""
        from labkit.aws.invoke import LambdaInvoker  # deferred: boto3, for the callers that ask

        return LambdaInvoker(
            endpoint_url=self.endpoint_url, max_connections=max_pool_connections,
            read_timeout_s=read_timeout_s,
        ).client  # fmt: skip

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.endpoint_url + path, data=data, method=method)
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return json.loads(response.read())
        except OSError as exc:
            raise EmulatorError(f"{method} {path} failed: {exc}") from exc

    def logs(self, function: str, since: int = 0) -> list[str]:
        """The function's log lines (START/END/REPORT and its own output), oldest first."""
        return [
            row["line"]
            for row in self._admin("GET", f"/labkit/functions/{function}/logs?since={since}")[
                "lines"
            ]
        ]

    def instances(self, function: str) -> dict[str, Any]:
        """Instances (id, pid, state, provisioned), cold-start and throttle counts."""
        return self._admin("GET", f"/labkit/functions/{function}/instances")

    def mapping(self, uuid: str) -> dict[str, Any]:
        """An event-source mapping as ``GetEventSourceMapping`` returns it, plus what AWS does
        not report under ``"labkit"``: its invocations, batch sizes, pollers now and at most."""
        return dict(self._admin("GET", f"/2015-03-31/event-source-mappings/{uuid}"))

    def set_provisioned(self, function: str, count: int) -> dict[str, Any]:
        """Keep ``count`` pre-warmed instances; returns when they are ready."""
        return self._admin("PUT", f"/labkit/functions/{function}/provisioned", {"count": count})

    def wait_until_idle(self, function: str, timeout_s: float = 30.0) -> None:
        """Block until no instance of ``function`` is busy or starting."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            states = {i["state"] for i in self.instances(function)["instances"]}
            if not states & {"busy", "starting"}:
                return
            time.sleep(0.02)
        raise EmulatorError(f"{function} still busy after {timeout_s} s")
