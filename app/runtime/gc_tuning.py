"""The garbage collector, tuned for a server whose startup heap never becomes garbage.

Measured in-process at 64 requests in flight (``docs/benchmarks/README.md``): CPython's default
collector took about half of the event loop's CPU per n=1 request. Each request allocates hundreds of
container objects that live until its batch returns, so young collections run every few requests
and promote them; every tenth of those walks generation 1, and every hundredth walks the whole heap,
torch, pydantic and FastAPI included. After startup that heap is frozen (``gc.freeze``: never walked
again) and young collections run every ``GEN0_THRESHOLD`` allocations instead of 700. Reference
cycles are still collected, just in larger, rarer batches.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

GEN0_THRESHOLD = 50_000  # default 700: ~0.3 ms per n=1 request of event loop CPU back, for MBs of young objects


@contextmanager
def frozen_startup_heap() -> Iterator[None]:
    """Freeze everything alive now and collect young objects rarely; undone on exit (tests build many apps)."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, thresholds[1], thresholds[2])
    try:
        yield
    finally:
        gc.set_threshold(*thresholds)
        gc.unfreeze()
