"""An instance's processes: the runtime and everything it started, wherever they went.

Lambda's sandbox holds every process a function starts: its memory counts against the
function's memory size, and the sandbox's end ends them all. Locally an instance is a
process; its handler may start children, and a child may leave the instance's process group
(``setsid``) or be orphaned. This module finds them (psutil, so it also works where there is
no ``/proc``), so the service can count their memory, kill them with the instance, and tell
a connection from the instance apart from one from any other local process.

The service makes itself a *child subreaper* (Linux): descendants orphaned by a dead
instance are re-parented to the service instead of to init, where :func:`sweep_orphans`
finds and kills them.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
from collections.abc import Iterable
from pathlib import Path

import psutil

from labkit.emulator.platform_support import detect

_PR_SET_CHILD_SUBREAPER = 36


def tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and all its descendants (those still alive)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def memory_mb(pid: int) -> int:
    """Resident memory of ``pid``'s whole process tree, in MB (0 once it is gone)."""
    total = 0
    for process in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
    return total // (1024 * 1024)


def kill(pid: int) -> None:
    """SIGKILL ``pid``, its process group and every descendant, also those that left the
    group. Descendants are listed before the first kill, while they still hang together."""
    members = tree(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for process in members:
        with contextlib.suppress(psutil.Error):
            process.kill()


def owns_connection(pid: int, local_port: int, remote_port: int) -> bool:
    """Whether a process of ``pid``'s tree holds the TCP socket from ``local_port`` to
    ``remote_port`` (the client side of a connection the server sees from ``local_port``).

    On Linux the socket's inode is looked up in ``/proc/net/tcp`` by its port pair and
    searched among the processes' descriptors, the runtime's own first: ~1 ms where
    psutil's ``net_connections`` parses every socket of the machine (26 ms with 3,400 in
    TIME_WAIT after a benchmark; bench/README.md). Elsewhere psutil answers."""

    table = Path("/proc/net/tcp")
    if not detect().proc_memory or not table.is_file():
        return _owns_connection_psutil(pid, local_port, remote_port)
    match = re.search(rf"^\s*\d+: [0-9A-F]{{8}}:{local_port:04X} [0-9A-F]{{8}}:{remote_port:04X} .*$",
                      table.read_text(), re.MULTILINE)  # fmt: skip
    if match is None:
        return False
    link = f"socket:[{match.group(0).split()[9]}]"
    if _holds(pid, link):
        return True
    return any(_holds(p.pid, link) for p in tree(pid)[1:])


def _holds(pid: int, link: str) -> bool:
    """Whether process ``pid`` has a descriptor pointing at ``link`` (``socket:[inode]``)."""
    folder = f"/proc/{pid}/fd"
    try:
        names = os.listdir(folder)
    except OSError:
        return False
    for name in names:
        with contextlib.suppress(OSError):
            if os.readlink(f"{folder}/{name}") == link:
                return True
    return False


def _owns_connection_psutil(pid: int, local_port: int, remote_port: int) -> bool:
    for process in tree(pid):
        with contextlib.suppress(psutil.Error):
            for connection in process.net_connections(kind="tcp"):
                if (connection.laddr and connection.laddr.port == local_port
                        and connection.raddr and connection.raddr.port == remote_port):  # fmt: skip
                    return True
    return False


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False elsewhere."""

    if not detect().subreaper:
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1) == 0
    except (OSError, AttributeError):
        return False


def sweep_orphans(keep: Iterable[int]) -> list[int]:
    """Kill and reap this process's children that are not in ``keep`` (the live instances'
    processes): descendants of dead instances, re-parented here. Returns their pids."""
    keep = set(keep)
    swept = []
    for child in psutil.Process().children():
        if child.pid in keep:
            continue
        kill(child.pid)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(child.pid, os.WNOHANG)
        swept.append(child.pid)
    return swept
