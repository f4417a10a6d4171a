"""What this operating system gives the local Lambda, checked rather than assumed.

On Linux the local Lambda uses four facilities: the official runtime client
(``awslambdaric``, Linux wheels only), ``/proc`` for an instance's memory, the kernel's
parent-death signal (``prctl(PR_SET_PDEATHSIG)``) so no process outlives the service, and
cgroups for Lambda's CPU share (:mod:`labkit.emulator.cpu_share`). Elsewhere (macOS, Windows
without WSL2) each has a portable stand-in: the Python runtime client
(:mod:`labkit.emulator.runtime_client`), memory through psutil, a parent watch in each
instance, whole cores instead of a CPU share. :func:`detect` says which are in use;
:meth:`Facilities.differences` names each stand-in once, for the service's start-up line and
the run's environment facts.

``LABKIT_PORTABLE=1`` uses the stand-ins on Linux too (so CI exercises the other platforms'
paths); ``LABKIT_RUNTIME_CLIENT=python|awslambdaric`` chooses the client.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
from dataclasses import dataclass

from labkit.emulator.runtime_client import watch_parent

PORTABLE_ENV = "LABKIT_PORTABLE"
WATCH_PARENT_ENV = "LABKIT_WATCH_PARENT"  # set for the service where no PDEATHSIG ties it
CLIENT_ENV = "LABKIT_RUNTIME_CLIENT"
CLIENTS = ("awslambdaric", "python")


@dataclass(frozen=True)
class Facilities:
    runtime_client: str  # awslambdaric | python
    proc_memory: bool  # /proc/<pid>/status (else psutil)
    parent_death_signal: bool  # prctl(PR_SET_PDEATHSIG) (else each instance watches its parent)
    subreaper: bool  # prctl(PR_SET_CHILD_SUBREAPER): orphans come back to the service
    portable: bool  # the stand-ins were asked for (LABKIT_PORTABLE=1)

    def differences(self) -> list[str]:
        """Each stand-in in use, in words (empty on a Linux machine with everything)."""
        notes = []
        if self.runtime_client == "python":
            notes.append("runtime client: labkit's Python client (awslambdaric is not installed "
                         "or not chosen); same Runtime API, same error shapes")  # fmt: skip
        if not self.proc_memory:
            notes.append("memory: read with psutil (no /proc); the peak is the highest reading")
        if not self.parent_death_signal:
            notes.append("clean-up: instances watch their parent every 0.5 s (no "
                         "PR_SET_PDEATHSIG); a custom runtime is stopped only by the service")  # fmt: skip
        if not self.subreaper:
            notes.append("orphans: a handler's detached children are found through the "
                         "instance's process tree only (no child subreaper)")  # fmt: skip
        return notes

    def facts(self) -> dict[str, str]:
        """For ``environment.json``: which facility did each job."""
        return {
            "runtime_client": self.runtime_client,
            "memory": "/proc" if self.proc_memory else "psutil",
            "parent_death": "PR_SET_PDEATHSIG" if self.parent_death_signal else "parent watch",
            "orphans": "child subreaper" if self.subreaper else "process tree",
            "platform": sys.platform + (" (portable paths forced)" if self.portable else ""),
        }


def _runtime_client() -> str:
    chosen = os.environ.get(CLIENT_ENV, "").strip().lower()
    if chosen and chosen not in (*CLIENTS, "auto"):
        raise ValueError(f"{CLIENT_ENV}={chosen!r}: choose one of {', '.join(CLIENTS)} or auto")
    installed = importlib.util.find_spec("awslambdaric") is not None
    if chosen == "awslambdaric" and not installed:
        raise ValueError(f"{CLIENT_ENV}=awslambdaric but awslambdaric is not installed "
                         "(Linux only: pip install awslambdaric)")  # fmt: skip
    if chosen == "python":
        return "python"
    return "awslambdaric" if installed else "python"


@functools.cache
def detect() -> Facilities:
    """The facilities of this machine (cached: they do not change while a process runs)."""
    portable = os.environ.get(PORTABLE_ENV, "") not in ("", "0")
    linux = sys.platform.startswith("linux") and not portable
    return Facilities(
        runtime_client=_runtime_client(),
        proc_memory=linux and os.path.exists(f"/proc/{os.getpid()}/status"),
        parent_death_signal=linux,
        subreaper=linux,
        portable=portable,
    )


def stop_with_parent(poll_s: float = 0.5) -> None:
    """SIGTERM this process when its parent dies (it is re-parented: ``getppid`` changes), so
    it stops as on Ctrl-C, killing its instances: the portable stand-in for the parent-death
    signal."""
    import signal

    watch_parent(lambda: os.kill(os.getpid(), signal.SIGTERM), poll_s)
