"""Scheduling invocations onto instances, as Lambda does it.

- one invocation at a time per instance; an idle warm instance is reused (most recently
  used first, so surplus instances go cold and retire);
- otherwise a new instance starts (a cold start) while the function is under its
  concurrency limit; beyond it the invocation is throttled (429);
- idle on-demand instances retire after ``keep_alive_s``; provisioned instances are started
  before traffic, never retire, and their invocations never count as cold starts;
- a timeout kills and replaces the instance; an instance that dies fails its invocation
  with ``Runtime.ExitError``; one whose processes (the runtime and its children) exceed
  ``memory_mb`` is killed and reported as ``Runtime.OutOfMemory``;
- an invocation runs to its end whatever its caller does (a caller that hangs up does not
  free the instance); one given to an instance whose runtime exits before taking it (e.g.
  after a too-large response) goes to another instance.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import dataclass

from labkit.emulator.config import FunctionConfig
from labkit.emulator.instance import UNDELIVERED, Instance, Invocation, Outcome
from labkit.emulator.logs import LogStore, Report, end_line, log_tail, start_line

MEMORY_POLL_S = 0.02  # the runtime process's memory: one read of /proc per busy instance
TREE_POLLS = 5  # every this many polls, the memory of its whole process tree (psutil)
DELIVERIES = 3  # instances an invocation is offered to before it fails with ExitError


class Throttled(Exception):
    """The function is at its concurrency limit (HTTP 429)."""


@dataclass
class Result:
    """What the Invoke API returns for one invocation."""

    request_id: str
    outcome: Outcome
    report: Report
    log_lines: list[str]

    @property
    def log_result(self) -> str:
        return log_tail(self.log_lines)


class FunctionService:
    """The instances of one function and the policy that feeds them."""

    def __init__(self, config: FunctionConfig) -> None:
        self.config = config
        self.logs = LogStore()
        self.instances: list[Instance] = []
        self._idle: list[Instance] = []
        self._freed = asyncio.Condition()
        self._waiting = 0  # invocations queued at the concurrency limit (throttle_wait_s > 0)
        self._maintenance: asyncio.Task[None] | None = None
        self.cold_starts = 0
        self.throttles = 0

    async def start(self) -> None:
        """Start provisioned instances and the keep-alive / memory watchdog."""
        await self.set_provisioned(self.config.provisioned)
        self._maintenance = asyncio.create_task(self._maintain())

    async def close(self) -> None:
        if self._maintenance is not None:
            self._maintenance.cancel()
        await asyncio.gather(*(i.close() for i in list(self.instances)), return_exceptions=True)
        self.instances.clear()
        self._idle.clear()

    async def set_provisioned(self, count: int) -> None:
        """Keep ``count`` pre-warmed instances (started now, waited for until ready)."""
        if not 0 <= count <= self.config.concurrency:
            raise ValueError(f"provisioned must be 0..{self.config.concurrency}, got {count}")
        current = [i for i in self.instances if i.provisioned and i.alive]
        starting = []
        for _ in range(count - len(current)):
            instance = await self._new_instance(provisioned=True)
            starting.append(instance)
        for instance in starting:
            await instance.ready
            if instance.init_error is None:
                self._make_idle(instance)
        for instance in current[count:]:
            instance.provisioned = False  # surplus: ordinary instances now, retire when idle

    # ----- invoking ---------------------------------------------------------------------

    async def invoke(self, payload: bytes) -> Result:
        """Run one invocation to its end; raises :class:`Throttled` at the limit."""
        for attempt in range(1, DELIVERIES + 1):
            result = await self._invoke_on_an_instance(payload, last=attempt == DELIVERIES)
            if result is not None:
                return result
        raise AssertionError("unreachable: the last delivery always gives a result")

    async def _invoke_on_an_instance(self, payload: bytes, *, last: bool) -> Result | None:
        """One delivery: None when the instance died before taking the invocation (and this
        was not the ``last`` try)."""
        instance, cold = await self._acquire()
        deadline_s = time.time() + self.config.timeout_s
        invocation = Invocation(payload, deadline_ms=int(deadline_s * 1000))
        invocation.outcome = asyncio.get_running_loop().create_future()
        invocation.on_start = lambda started: self._log(started, start_line(started.request_id))
        init_ms = None
        try:
            if cold:
                await self._await_init(instance)
                init_ms = instance.init_duration_ms
                invocation.log += instance.init_log
            if instance.init_error is not None:
                self._log(invocation, start_line(invocation.request_id))
                return self._complete(invocation, instance, instance.init_error, 0.0, init_ms)
            instance.dispatch(invocation)
            timer = asyncio.get_running_loop().call_later(
                max(0.0, deadline_s - time.time()), self._time_out, instance, invocation
            )
            outcome = await invocation.outcome
            timer.cancel()
            if outcome.error_type == UNDELIVERED:
                if not last:
                    return None
                self._log(invocation, start_line(invocation.request_id))
                outcome = Outcome.failure("Runtime.ExitError",
                                          f"Runtime exited with error: {outcome.body.decode()}")  # fmt: skip
            end = invocation.done_at or time.perf_counter()
            duration_ms = (end - (invocation.handed_at or end)) * 1000.0
            over_limit = instance.memory_mb("VmHWM") > self.config.memory_mb
            if instance.oom or (over_limit and outcome.status != "timeout"):
                outcome = self._out_of_memory(instance)
            return self._complete(invocation, instance, outcome, duration_ms, init_ms)
        finally:
            if instance.alive:
                self._make_idle(instance)
            else:
                self._forget(instance)
            if self._waiting:
                async with self._freed:
                    self._freed.notify()

    def _complete(
        self, invocation: Invocation, instance: Instance, outcome: Outcome, duration_ms: float,
        init_ms: float | None,
    ) -> Result:  # fmt: skip
        report = Report(
            request_id=invocation.request_id,
            duration_ms=duration_ms,
            memory_size_mb=self.config.memory_mb,
            max_memory_used_mb=max(1, instance.peak_mb),
            init_duration_ms=init_ms,
            status=outcome.status,
            error_type=outcome.error_type if outcome.status else None,
        )
        if outcome.status:  # a platform failure: Lambda logs it in the function's stream
            message = json.loads(outcome.body).get("errorMessage", "")
            self._log(invocation, f"RequestId: {invocation.request_id} Error: {message}",
                      str(outcome.error_type))  # fmt: skip
        self._log(invocation, end_line(invocation.request_id), report.line())
        return Result(invocation.request_id, outcome, report, invocation.log)

    def _log(self, invocation: Invocation, *lines: str) -> None:
        """Platform lines go to the invocation's tail and to the function's log alike."""
        invocation.log.extend(lines)
        for line in lines:
            self.logs.append(line)

    def _time_out(self, instance: Instance, invocation: Invocation) -> None:
        """The deadline passed: kill the instance and answer as Lambda does."""
        if invocation.outcome is None or invocation.outcome.done():
            return
        invocation.done_at = time.perf_counter()
        instance.kill()
        invocation.outcome.set_result(Outcome.failure(
            "Sandbox.Timedout",
            f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {invocation.request_id} "
            f"Task timed out after {self.config.timeout_s:.2f} seconds",
            status="timeout",
        ))  # fmt: skip

    def _out_of_memory(self, instance: Instance) -> Outcome:
        instance.kill()
        return Outcome.failure(
            "Runtime.OutOfMemory",
            f"Runtime exited with error: signal: killed (memory limit of {self.config.memory_mb} MB exceeded)",
        )

    async def _await_init(self, instance: Instance) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(instance.ready), self.config.timeout_s)
        except asyncio.TimeoutError:
            instance.kill()
            instance.init_duration_ms = self.config.timeout_s * 1000.0
            instance.init_error = Outcome.failure(
                "Sandbox.Timedout", f"Init timed out after {self.config.timeout_s:.2f} seconds",
                status="timeout",
            )  # fmt: skip

    async def _acquire(self) -> tuple[Instance, bool]:
        """A free instance: (instance, is_cold_start)."""
        deadline = time.monotonic() + self.config.throttle_wait_s
        while True:
            while self._idle:
                instance = self._idle.pop()
                if instance.alive:
                    return instance, False
            if len(self.instances) < self.config.concurrency:
                self.cold_starts += 1
                return await self._new_instance(provisioned=False), True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.throttles += 1
                raise Throttled(f"Rate Exceeded: {self.config.name} is at its concurrency limit")
            self._waiting += 1
            try:
                async with self._freed:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._freed.wait(), remaining)
            finally:
                self._waiting -= 1

    async def _new_instance(self, *, provisioned: bool) -> Instance:
        instance = Instance(self.config, provisioned=provisioned, on_log=self._on_log,
                            on_exit=self._forget)  # fmt: skip
        self.instances.append(instance)
        await instance.start()
        return instance

    def _make_idle(self, instance: Instance) -> None:
        instance.release()
        if instance not in self._idle:
            self._idle.append(instance)

    def _forget(self, instance: Instance) -> None:
        """Drop a dead or retiring instance, once (its exit and its invocation both call this)."""
        if instance not in self.instances:
            return
        self.instances.remove(instance)
        if instance in self._idle:
            self._idle.remove(instance)
        instance.kill()
        asyncio.get_running_loop().create_task(instance.close())

    def _on_log(self, instance: Instance, line: str) -> None:
        self.logs.append(line)

    async def _maintain(self) -> None:
        """Retire idle instances past keep-alive; kill busy ones past their memory size (the
        runtime process every poll, its whole process tree every few)."""
        polls = 0
        while True:
            await asyncio.sleep(MEMORY_POLL_S)
            polls += 1
            now = time.monotonic()
            for instance in list(self.instances):
                if instance.state == "busy" and (
                    instance.memory_mb("VmRSS") > self.config.memory_mb
                    or (
                        polls % TREE_POLLS == 0
                        and instance.tree_memory_mb() > self.config.memory_mb
                    )
                ):
                    instance.oom = True
                    instance.kill()
                elif (
                    instance.state == "idle"
                    and not instance.provisioned
                    and now - instance.idle_since > self.config.keep_alive_s
                ):
                    self._forget(instance)

    def describe(self) -> dict[str, object]:
        """Counts for the admin API and tests."""
        return {
            "instances": [
                {"id": i.id, "pid": i.pid, "state": i.state, "provisioned": i.provisioned,
                 "invocations": i.invocations, "init_duration_ms": i.init_duration_ms}
                for i in self.instances
            ],
            "cold_starts": self.cold_starts,
            "throttles": self.throttles,
            "log_bytes": self.logs.size_bytes,
        }  # fmt: skip
