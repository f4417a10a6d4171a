"""One execution environment: a process running the runtime client, and its Runtime API.

Each instance gets its own Runtime API endpoint (its own port on 127.0.0.1), as each Lambda
sandbox has its own, so requests need no instance id; it admits connections from the
instance's own processes only (:func:`labkit.emulator.process_tree.owns_connection`), so no
other local process can take its events or answer them. The state machine:

    starting --first /next--> ready (idle or busy) --exit/kill--> dead

Init Duration is measured from process start to the first ``/next``; Duration from handing
the event over (the ``/next`` response) to the ``/response`` or ``/error`` arriving.

The Runtime API itself (HTTP framing, Nagle's algorithm off) is
:mod:`labkit.emulator.runtime_api`; this module decides what each call means.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from labkit.emulator import process_tree
from labkit.emulator.config import FunctionConfig
from labkit.emulator.cpu_share import InstanceGroup, detect
from labkit.emulator.httpserver import HttpServer, Response
from labkit.emulator.lifetime import die_with_parent
from labkit.emulator.platform_support import detect as facilities
from labkit.emulator.runtime_api import ACCEPTED, runtime_error, runtime_routes

MAX_PAYLOAD_BYTES = 6 * 1024 * 1024
#: One log line at most, as one CloudWatch Logs event (1 MB since April 2025; it was 256 KB):
#: the rest of a longer line is dropped and the line marked.
MAX_LINE_BYTES = 1024 * 1024
TRUNCATED = " [truncated]"
CPU_SHARE = detect()  # once per process: can instances get Lambda's CPU share here?
#: Why an invocation ended without reaching the runtime: its instance died before handing it
#: over. The service sends it to another instance (:meth:`FunctionService.invoke`).
UNDELIVERED = "labkit.Undelivered"


class Started:
    """The runtime processes this process started and has not reaped yet, and how many are
    being started right now: what a sweep for orphans (:func:`process_tree.sweep_orphans`)
    must leave alone."""

    pids: ClassVar[set[int]] = set()
    starting: ClassVar[int] = 0


@dataclass
class Outcome:
    """How an invocation ended: the payload for the caller, and the error type if any."""

    body: bytes
    error_type: str | None = None  # None: success; else X-Amz-Function-Error: Unhandled
    status: str | None = None  # REPORT status: "error", "timeout" (None for success)

    @classmethod
    def failure(cls, error_type: str, message: str, status: str = "error") -> Outcome:
        body = json.dumps({"errorType": error_type, "errorMessage": message}).encode()
        return cls(body, error_type, status)


@dataclass
class Invocation:
    """One request travelling through an instance."""

    payload: bytes
    deadline_ms: int
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    log: list[str] = field(default_factory=list)
    handed_at: float | None = None
    done_at: float | None = None
    outcome: asyncio.Future[Outcome] | None = None
    on_start: Callable[[Invocation], None] | None = None  # called when handed to the runtime


class Instance:
    """An execution environment of ``config``; create with :meth:`start`."""

    def __init__(
        self,
        config: FunctionConfig,
        *,
        provisioned: bool,
        on_log: Callable[[Instance, str], None],
        on_exit: Callable[[Instance], None],
        isolated: bool = True,
    ) -> None:
        """``isolated``: the Runtime API admits the instance's own processes only (False lets
        a test act as the runtime)."""
        self.config = config
        self.provisioned = provisioned
        self.id = uuid.uuid4().hex[:12]
        self.log_stream = time.strftime("%Y/%m/%d/[$LATEST]") + self.id
        self.state = "starting"
        self.started_at = 0.0
        self.init_duration_ms: float | None = None
        self.init_error: Outcome | None = None
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.current: Invocation | None = None  # handed over, awaiting its result
        self.idle_since = 0.0
        self.invocations = 0
        self.oom = False  # set by the memory watchdog before it kills the process
        self.peak_mb = 0  # last peak resident memory read, kept after the process is gone
        self._pending: Invocation | None = None  # assigned, not yet handed over
        self._next_waiter: asyncio.Future[Response] | None = None  # a /next awaiting work
        self._finished: set[str] = set()
        self._on_log, self._on_exit = on_log, on_exit
        self._process: asyncio.subprocess.Process | None = None
        # Keeps one byte past the payload limit: enough to tell a too-large response.
        self._server = HttpServer(runtime_routes(self), body_limit=MAX_PAYLOAD_BYTES + 1,
                                  admit=self._admits if isolated else None)  # fmt: skip
        self._tasks: list[asyncio.Task[Any]] = []
        self.init_log: list[str] = []
        self.runtime_api = ""  # host:port of this instance's Runtime API, once started
        self._output_fd: int | None = None
        self._status_fd: int | None = None  # /proc/PID/status, for memory readings
        self._partial = bytearray()  # the line being read, at most MAX_LINE_BYTES of it
        self._partial_cut = False  # whether the line being read was longer
        self.cgroup: InstanceGroup | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def alive(self) -> bool:
        return self.state != "dead"

    async def start(self) -> None:
        """Open the Runtime API endpoint and start the process (returns before init ends)."""
        host, port = await self._server.start()
        self.runtime_api = f"{host}:{port}"
        env = self.config.instance_environment(
            self.runtime_api, self.log_stream, provisioned=self.provisioned
        )
        # Output goes through a pipe read here without buffering layers, so everything the
        # runtime wrote before posting a result can be drained before the invocation ends.
        read_fd, write_fd = os.pipe()
        os.set_blocking(read_fd, False)
        preexec = die_with_parent(signal.SIGKILL)
        if self.config.cpu_share and not CPU_SHARE.available:
            _warn_once(f"labkit emulator: CPU share not applied: {CPU_SHARE.reason}")
        if self.config.cpu_share and CPU_SHARE.available:
            self.cgroup = InstanceGroup(
                CPU_SHARE, f"{self.config.name}-{self.id}", self.config.memory_mb
            )
            die, enter = preexec, self.cgroup.enter

            def preexec() -> None:
                die()
                enter()

        self.started_at = time.perf_counter()
        Started.starting += 1
        try:
            self._process = await asyncio.create_subprocess_exec(
                *self.config.command(), cwd=self.config.code_dir, env=env,
                stdin=asyncio.subprocess.DEVNULL, stdout=write_fd, stderr=write_fd,
                start_new_session=True, preexec_fn=preexec,
            )  # fmt: skip
            Started.pids.add(self._process.pid)
        finally:
            Started.starting -= 1
            os.close(write_fd)
        self._output_fd = read_fd
        asyncio.get_running_loop().add_reader(read_fd, self.drain_output)
        self._tasks = [asyncio.create_task(self._watch_exit())]

    def dispatch(self, invocation: Invocation) -> None:
        """Give the instance its next invocation (handed over at its next ``/next``)."""
        assert self._pending is None and self.current is None, "instance is not free"
        self.state = "busy"
        self._pending = invocation
        waiter, self._next_waiter = self._next_waiter, None
        if waiter is not None and not waiter.done():  # done: cancelled, its connection is gone
            waiter.set_result(self._hand_over())

    def release(self) -> None:
        """The invocation is over; the instance is free for the next one."""
        if self.alive:
            self.state = "idle"
            self.idle_since = time.monotonic()

    def kill(self) -> None:
        """SIGKILL the runtime and everything it started (its process group, and descendants
        that left the group).

        The instance is dead from this moment, not from when its exit is reaped, so it can
        never be handed another invocation in between."""
        self.state = "dead"
        if self._process is not None and self._process.returncode is None:
            process_tree.kill(self._process.pid)

    def _admits(self, peer: Any) -> bool:
        """Whether a connection to the Runtime API comes from this instance's processes."""
        if self._process is None or not isinstance(peer, tuple) or len(peer) < 2:
            return False
        return process_tree.owns_connection(
            self._process.pid, peer[1], int(self.runtime_api.rpartition(":")[2])
        )

    async def close(self) -> None:
        self.kill()
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                await self._process.wait()
        for task in self._tasks:
            task.cancel()
        if self._next_waiter is not None and not self._next_waiter.done():
            self._next_waiter.cancel()
        self._close_output()
        if self._status_fd is not None:
            os.close(self._status_fd)
            self._status_fd = None
        if self.cgroup is not None:
            self.cgroup.remove()
        await self._server.close()

    def tree_memory_mb(self) -> int:
        """Resident memory of the runtime and every process it started, in MB; raises the
        peak kept for the REPORT line."""
        value = process_tree.memory_mb(self.pid) if self.pid is not None and self.alive else 0
        self.peak_mb = max(self.peak_mb, value)
        return value

    def memory_mb(self, field_name: str = "VmHWM") -> int:
        """Resident memory of the runtime process from /proc (VmHWM: peak, VmRSS: now), in
        MB; cheap enough to read every few ms (:meth:`tree_memory_mb` counts its children).

        Once the process is gone, the last peak read (or 0)."""
        value = 0
        if self.pid is not None and self.alive and not facilities().proc_memory:
            value = _psutil_rss_mb(self.pid)
        elif self.pid is not None and self.alive:
            try:
                if self._status_fd is None:  # kept open: read once per invocation, ~2x faster
                    self._status_fd = os.open(f"/proc/{self.pid}/status", os.O_RDONLY)
                status = os.pread(self._status_fd, 8192, 0)
                start = status.index(field_name.encode() + b":") + len(field_name) + 1
                value = int(status[start : status.index(b"kB", start)]) // 1024
            except (OSError, ValueError):
                value = 0
        self.peak_mb = max(self.peak_mb, value)
        return value if value else (self.peak_mb if field_name == "VmHWM" else 0)

    # ----- Runtime API -----------------------------------------------------------------

    def runtime_next(self) -> Response | asyncio.Future[Response]:
        """``GET /next``: the first one ends init; each hands over the pending invocation,
        or waits (a long poll) until :meth:`dispatch` gives one."""
        if self.current is not None:
            return runtime_error(403, "InvalidStateTransition",
                                 f"/next called while {self.current.request_id} has no result")  # fmt: skip
        if not self.ready.done():
            self.init_duration_ms = (time.perf_counter() - self.started_at) * 1000.0
            self.state = "idle"
            self.idle_since = time.monotonic()
            self.ready.set_result(None)
        if self._pending is not None:
            return self._hand_over()
        self._next_waiter = asyncio.get_running_loop().create_future()
        return self._next_waiter

    def _hand_over(self) -> Response:
        invocation, self._pending = self._pending, None
        assert invocation is not None
        self.current = invocation
        invocation.handed_at = time.perf_counter()
        if invocation.on_start is not None:
            invocation.on_start(invocation)
        return Response(200, invocation.payload, {
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.config.arn,
            "Lambda-Runtime-Trace-Id": f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]};Sampled=0",
            "Content-Type": "application/json",  # the native runtime client needs it
        })  # fmt: skip

    def runtime_result(
        self, request_id: str, kind: str, body: bytes, size: int, headers: Mapping[str, str]
    ) -> Response:
        """``POST /{id}/response`` or ``/{id}/error``: the invocation's outcome."""
        if self.current is None or self.current.request_id != request_id:
            if request_id in self._finished:
                return runtime_error(403, "InvalidStateTransition",
                                     f"{request_id} already has a result")  # fmt: skip
            return runtime_error(400, "InvalidRequestID", f"unknown request id {request_id}")
        if kind == "error":
            self._finish(self.current, _error_outcome(body, headers))
        elif size > MAX_PAYLOAD_BYTES:
            self._finish(self.current, Outcome.failure(
                "Function.ResponseSizeTooLarge",
                f"Response payload size ({size} bytes) exceeded maximum allowed payload "
                f"size ({MAX_PAYLOAD_BYTES} bytes).",
            ))  # fmt: skip
            return runtime_error(413, "RequestEntityTooLarge", "response too large")
        else:
            self._finish(self.current, Outcome(body))
        return ACCEPTED

    def runtime_init_error(self, body: bytes, headers: Mapping[str, str]) -> Response:
        """``POST /init/error``: init failed; Lambda discards the environment."""
        if self.ready.done():
            return runtime_error(403, "InvalidStateTransition", "init already complete")
        self.init_duration_ms = (time.perf_counter() - self.started_at) * 1000.0
        self.init_error = _error_outcome(body, headers)
        self.init_error.status = "error"
        self.kill()
        self.ready.set_result(None)
        return ACCEPTED

    def _finish(self, invocation: Invocation, outcome: Outcome) -> None:
        invocation.done_at = time.perf_counter()
        self.drain_output()  # output written before the result belongs to this invocation
        self.current = None
        self._finished.add(invocation.request_id)
        self.invocations += 1
        if invocation.outcome is not None and not invocation.outcome.done():
            invocation.outcome.set_result(outcome)

    # ----- process watching ----------------------------------------------------------

    def drain_output(self) -> None:
        """Read whatever output the process has written so far, line by line.

        Linear in the output: each chunk is scanned once, and a line keeps at most
        :data:`MAX_LINE_BYTES` (the rest is counted, not kept), so one huge line costs no
        more than its reading and never stalls the service."""
        while self._output_fd is not None:
            try:
                chunk = os.read(self._output_fd, 65536)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:  # end of output: the process (and anything it started) is gone
                if self._partial or self._partial_cut:
                    self._end_line()
                self._close_output()
                return
            start = 0
            while (end := chunk.find(b"\n", start)) >= 0:
                self._add_to_line(chunk, start, end)
                self._end_line()
                start = end + 1
            self._add_to_line(chunk, start, len(chunk))

    def _add_to_line(self, chunk: bytes, start: int, end: int) -> None:
        room = MAX_LINE_BYTES - len(self._partial)
        if end - start > room:
            self._partial_cut = True
            end = start + max(room, 0)
        self._partial += chunk[start:end]

    def _end_line(self) -> None:
        raw, cut = bytes(self._partial), self._partial_cut
        self._partial, self._partial_cut = bytearray(), False
        self._emit(raw.decode(errors="replace") + (TRUNCATED if cut else ""))

    def _emit(self, line: str) -> None:
        target = self.current or self._pending
        (target.log if target is not None else self.init_log).append(line)
        self._on_log(self, line)

    def _close_output(self) -> None:
        if self._output_fd is not None:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_reader(self._output_fd)
            os.close(self._output_fd)
            self._output_fd = None

    async def _watch_exit(self) -> None:
        assert self._process is not None
        code = await self._process.wait()
        Started.pids.discard(self._process.pid)
        reason = (
            f"signal: {signal.Signals(-code).name.lower()[3:]}"
            if code < 0
            else f"exit status {code}"
        )
        self.state = "dead"
        if not self.ready.done():
            self.init_duration_ms = (time.perf_counter() - self.started_at) * 1000.0
            self.init_error = Outcome.failure(
                "Runtime.ExitError", f"Runtime exited with error: {reason}"
            )
            self.ready.set_result(None)
        if self.current is not None:
            self._finish(self.current, Outcome.failure(
                "Runtime.ExitError",
                f"RequestId: {self.current.request_id} Error: Runtime exited with error: {reason}",
            ))  # fmt: skip
        pending, self._pending = self._pending, None
        if pending is not None and pending.outcome is not None and not pending.outcome.done():
            # It never reached the runtime: the service can send it to another instance.
            pending.outcome.set_result(Outcome.failure(UNDELIVERED, reason))
        self._on_exit(self)


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        print(message, file=sys.stderr, flush=True)


def _error_outcome(body: bytes, headers: Mapping[str, str]) -> Outcome:
    """The error a runtime reported; the type comes from the body (awslambdaric does not send
    the ``Lambda-Runtime-Function-Error-Type`` header on invocation errors)."""
    try:
        data = json.loads(body) if body else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = {}
    if not isinstance(data, dict):
        data = {}
    error_type = (
        data.get("errorType") or headers.get("Lambda-Runtime-Function-Error-Type") or "Unhandled"
    )
    payload = {"errorMessage": data.get("errorMessage", ""), "errorType": error_type}
    if data.get("stackTrace"):
        payload["stackTrace"] = data["stackTrace"]
    # A handler's own exception is a function error, not a platform failure: no REPORT status.
    return Outcome(json.dumps(payload).encode(), str(error_type), None)


def _psutil_rss_mb(pid: int) -> int:
    """Resident memory of ``pid`` in MB where there is no /proc (0 once it is gone)."""
    import psutil

    try:
        return int(psutil.Process(pid).memory_info().rss) // (1024 * 1024)
    except psutil.Error:
        return 0
