"""Python's cyclic garbage collector paused around a simulation.

A simulation of 100,000 requests allocates millions of short-lived tuples and keeps hundreds
of thousands of records alive until it ends; every gen-2 collection on the way walks all of
them (and, in a Dask worker, the worker's own large heap besides), finding nothing to free:
the simulator makes no reference cycles it needs collected. Measured on 9 tasks of a search
(bench/README.md, 2026-12-07): 20.7-22.8 s with the collector, 16.6 s without it in one
process; 25-26 s vs 19.0 s in a Dask worker. Reference counting still frees everything as
usual; the collector runs again, on its normal schedule, as soon as the block ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def paused_gc() -> Iterator[None]:
    """Disable the cyclic collector inside the block; nested blocks leave it to the outer."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
