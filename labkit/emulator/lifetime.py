"""Tying a child process's life to its parent's, so no process is ever left behind."""

from __future__ import annotations

import contextlib
import ctypes
import signal
from collections.abc import Callable

from labkit.emulator.platform_support import detect

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive ``sig`` when its parent dies (Linux;
    elsewhere it does nothing: the child watches its parent itself, see
    :mod:`labkit.emulator.platform_support`)."""

    if not detect().parent_death_signal:
        return lambda: None

    def preexec() -> None:
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)

    return preexec
