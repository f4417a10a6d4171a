"""Holding the CPUs' wake-up latency down while measuring (Linux PM QoS).

Every warm invocation crosses four process boundaries (client -> emulator -> instance ->
emulator -> client), and each may wake a process on an idle CPU. On bare metal that wake-up
costs a few microseconds; on a virtual machine whose idle CPUs halt (a VM exit), it can cost
a hundred times more, and on such a machine it decides much of a warm round trip's tail
(``bench/emulator.py`` measures it with and without the hold; figures in bench/README.md).

The kernel's own interface for this is the PM QoS request ``/dev/cpu_dma_latency``: write a
32-bit limit in microseconds and keep the file open; while it is open no CPU enters an idle
state slower to leave than the limit (0: idle CPUs poll instead of halting). It is what
``tuned``'s latency-performance profile and ``cyclictest`` use. The price is power: idle
CPUs spin. So it is opt-in, held only while the emulator runs or an experiment measures, and
released by the kernel when the file is closed, even if the process is killed.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

DEVICE = Path("/dev/cpu_dma_latency")


@dataclass
class CpuLatencyHold:
    """An open PM QoS request (``fd``) or why there is none (``status``)."""

    limit_us: int | None
    status: str
    fd: int | None = None
    refused: bool = False  # asked for, not granted: latencies include idle wake-ups

    @property
    def held(self) -> bool:
        return self.fd is not None

    def release(self) -> None:
        """Close the request; the kernel drops the limit with it."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def check_limit(limit_us: int | None) -> None:
    """Reject a limit the kernel would misread (negative) before anything starts."""
    if limit_us is not None and (
        not isinstance(limit_us, int) or isinstance(limit_us, bool) or limit_us < 0
    ):
        raise ValueError(
            f"cpu_latency_us must be a whole number >= 0 (microseconds), not {limit_us!r}"
        )


def hold_cpu_latency(limit_us: int | None, device: Path | None = None) -> CpuLatencyHold:
    """Ask the kernel to keep every CPU's wake-up latency <= ``limit_us`` until released.

    ``None`` asks for nothing. Where the request cannot be made (not Linux, no permission:
    the device is root's), the hold says why and the caller runs without it; measured
    latencies then include the machine's idle wake-ups, which the caller should record."""
    check_limit(limit_us)
    if limit_us is None:
        return CpuLatencyHold(None, "not asked for")
    device = device or DEVICE
    try:
        fd = os.open(device, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        reason = f"not held ({device}: {exc.strerror or exc})"
        return CpuLatencyHold(limit_us, reason, refused=True)
    try:
        os.write(fd, struct.pack("=i", limit_us))
    except OSError as exc:
        os.close(fd)
        reason = f"not held (writing {device}: {exc.strerror or exc})"
        return CpuLatencyHold(limit_us, reason, refused=True)
    return CpuLatencyHold(limit_us, f"held at {limit_us} us ({device})", fd)
