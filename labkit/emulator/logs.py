"""CloudWatch-format log lines (START / END / REPORT) and the per-function log store."""

from __future__ import annotations

import base64
import math
import threading
import time
from collections import deque
from dataclasses import dataclass

TAIL_BYTES = 4096


@dataclass(frozen=True)
class Report:
    """The measured figures of one invocation, as Lambda's REPORT line carries them."""

    request_id: str
    duration_ms: float
    memory_size_mb: int
    max_memory_used_mb: int
    init_duration_ms: float | None = None
    status: str | None = None  # None for success; "error" or "timeout" otherwise
    error_type: str | None = None

    @property
    def billed_duration_ms(self) -> int:
        """Rounded up to 1 ms; includes Init Duration (container images bill their init)."""
        return max(1, math.ceil(self.duration_ms + (self.init_duration_ms or 0.0)))

    def line(self) -> str:
        fields = [
            f"REPORT RequestId: {self.request_id}",
            f"Duration: {self.duration_ms:.2f} ms",
            f"Billed Duration: {self.billed_duration_ms} ms",
            f"Memory Size: {self.memory_size_mb} MB",
            f"Max Memory Used: {self.max_memory_used_mb} MB",
        ]
        if self.init_duration_ms is not None:
            fields.append(f"Init Duration: {self.init_duration_ms:.2f} ms")
        if self.status:
            fields.append(f"Status: {self.status}")
        if self.error_type:
            fields.append(f"Error Type: {self.error_type}")
        return "\t".join(fields) + "\t"


def start_line(request_id: str) -> str:
    return f"START RequestId: {request_id} Version: $LATEST"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def log_tail(lines: list[str]) -> str:
    """Base64 of the last 4 KB of an invocation's log, as ``X-Amz-Log-Result`` carries it."""
    data = ("\n".join(lines) + "\n").encode()
    return base64.b64encode(data[-TAIL_BYTES:]).decode("ascii")


class LogStore:
    """A function's log: numbered lines, bounded in lines and in bytes (the oldest go first),
    readable from any position."""

    def __init__(self, max_lines: int = 200_000, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._lines: deque[tuple[int, float, str]] = deque()
        self._next = 0
        self._bytes = 0
        self.max_lines, self.max_bytes = max_lines, max_bytes
        self._lock = threading.Lock()

    def append(self, line: str) -> None:
        with self._lock:
            self._lines.append((self._next, time.time(), line))
            self._next += 1
            self._bytes += len(line)
            while self._lines and (
                len(self._lines) > self.max_lines or self._bytes > self.max_bytes
            ):
                self._bytes -= len(self._lines.popleft()[2])

    @property
    def size_bytes(self) -> int:
        """Characters held (a line's bytes, for the ASCII that logs mostly are)."""
        return self._bytes

    def since(self, position: int = 0) -> tuple[list[dict[str, object]], int]:
        """Lines numbered ``position`` and later, and the position to ask for next time."""
        with self._lock:
            rows = [
                {"n": n, "time": t, "line": line} for n, t, line in self._lines if n >= position
            ]
            return rows, self._next
