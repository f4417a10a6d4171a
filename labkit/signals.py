"""SIGTERM handled like Ctrl-C, and moments when neither may cut in.

A run stopped by Ctrl-C keeps what it measured (the load generator drains, the cell is
saved and marked incomplete). ``kill`` (SIGTERM), what a batch system or ``timeout`` sends,
takes the same path here: inside :func:`terminate_as_interrupt` it raises
:class:`Terminated`, a ``KeyboardInterrupt``, in the main thread. While a cell's files are
written, :func:`deferred` holds both signals and raises the first one afterwards, so a second
Ctrl-C cannot leave half a cell on disk.

Signal handlers belong to the main thread; elsewhere both context managers do nothing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: stop as for Ctrl-C; the command exits with 143 (128 + 15)."""


def stopped_by(error: BaseException) -> str:
    """How a record says what stopped a run: ``SIGTERM`` or ``KeyboardInterrupt``."""
    return "SIGTERM" if isinstance(error, Terminated) else type(error).__name__


def raise_stop(stopped: str | None, kept_in: object = None) -> None:
    """Raise again the interrupt ``stopped`` names (after its records were saved), saying
    where they were kept (``kept_in``), so the command can tell whoever pressed Ctrl-C."""
    where = (f"records kept, marked incomplete, in {kept_in}",) if kept_in is not None else ()
    if stopped == "SIGTERM":
        raise Terminated(*where)
    if stopped == "KeyboardInterrupt":
        raise KeyboardInterrupt(*where)


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise Terminated


@contextmanager
def terminate_as_interrupt() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread."""
    if not _in_main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM while inside; raise the first that came once outside."""
    if not _in_main_thread():
        yield
        return
    held: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        held.append(signum)

    previous = {sig: signal.signal(sig, hold) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if held:
        raise Terminated if held[0] == signal.SIGTERM else KeyboardInterrupt
