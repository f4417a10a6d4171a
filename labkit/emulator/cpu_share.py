"""Lambda's CPU share for local instances, through Linux cgroups.

Lambda gives a function CPU in proportion to its memory: 1,769 MB is one vCPU, so a
1,024 MB function runs at ~0.58 of a core. Where the operating system lets us (cgroup v2
with the cpu controller delegated, or cgroup v1's cpu hierarchy writable, as for root in
most containers), each instance process gets its own group with a CFS quota of
``period x memory / 1769`` and a memory limit of its memory size, so the local numbers come
closer to AWS's. Where it cannot, :func:`detect` says why once, and the run's environment
facts record that no share was applied.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from labkit.emulator.platform_support import detect as facilities

MB_PER_VCPU = 1769
CGROUP_ROOT = Path("/sys/fs/cgroup")
PERIOD_US = 20_000  # short, so even a few-ms handler feels the share (CFS period)
GROUP_PREFIX = "labkit"


def cpu_fraction(memory_mb: int) -> float:
    """The vCPUs Lambda gives ``memory_mb`` (1,769 MB = 1 vCPU; at most 6 vCPUs)."""
    return min(memory_mb / MB_PER_VCPU, 6.0)


@dataclass(frozen=True)
class CpuShareSupport:
    """Whether instances can get Lambda's CPU share here, how, or why not."""

    mode: str | None  # "cgroup-v2", "cgroup-v1" or None
    reason: str

    @property
    def available(self) -> bool:
        return self.mode is not None


def detect(root: Path = CGROUP_ROOT) -> CpuShareSupport:
    """Find a writable cgroup hierarchy with a cpu controller."""

    if not sys.platform.startswith("linux") or facilities().portable:
        return CpuShareSupport(None, f"no cgroups on this platform ({facilities().facts()['platform']})"
                                     "; instances may use whole cores")  # fmt: skip
    unified = root / "cgroup.controllers"
    if unified.is_file():
        controllers = unified.read_text().split()
        if "cpu" in controllers and os.access(root, os.W_OK):
            return CpuShareSupport("cgroup-v2", f"cgroup v2 at {root}")
        return CpuShareSupport(None, f"cgroup v2 at {root} without a writable cpu controller")
    v1 = root / "cpu"
    if (v1 / "cpu.cfs_quota_us").is_file() and os.access(v1, os.W_OK):
        return CpuShareSupport("cgroup-v1", f"cgroup v1 cpu hierarchy at {v1}")
    return CpuShareSupport(None, f"no writable cgroup cpu controller under {root} (not root, or "
                                 "not delegated); instances may use whole cores")  # fmt: skip


class InstanceGroup:
    """The cgroup(s) of one instance process; :meth:`enter` runs in the child before exec."""

    def __init__(self, support: CpuShareSupport, name: str, memory_mb: int,
                 root: Path = CGROUP_ROOT) -> None:  # fmt: skip
        if not support.available:
            raise RuntimeError(f"CPU share unavailable: {support.reason}")
        self.support, self.memory_mb = support, memory_mb
        quota = max(1000, int(PERIOD_US * cpu_fraction(memory_mb)))
        limit = memory_mb * 1024 * 1024
        if support.mode == "cgroup-v2":
            group = root / GROUP_PREFIX / name
            group.parent.mkdir(exist_ok=True)
            with contextlib.suppress(OSError):  # enable cpu/memory for the children
                (root / GROUP_PREFIX / "cgroup.subtree_control").write_text("+cpu +memory")
            group.mkdir(exist_ok=True)
            (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            with contextlib.suppress(OSError):
                (group / "memory.max").write_text(str(limit))
            self.dirs = [group]
        else:
            cpu = root / "cpu" / f"{GROUP_PREFIX}-{name}"
            cpu.mkdir(exist_ok=True)
            (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(str(quota))
            self.dirs = [cpu]
            memory = root / "memory" / f"{GROUP_PREFIX}-{name}"
            with contextlib.suppress(OSError):
                memory.mkdir(exist_ok=True)
                (memory / "memory.limit_in_bytes").write_text(str(limit))
                self.dirs.append(memory)
        self._procs = [str(d / "cgroup.procs") for d in self.dirs]

    def enter(self) -> None:
        """Move the calling process into the group(s); safe to call in a ``preexec_fn``."""
        pid = str(os.getpid()).encode()
        for path in self._procs:
            fd = os.open(path, os.O_WRONLY)
            try:
                os.write(fd, pid)
            finally:
                os.close(fd)

    def remove(self) -> None:
        """Delete the group(s) once the process is gone."""
        for d in self.dirs:
            with contextlib.suppress(OSError):
                d.rmdir()
