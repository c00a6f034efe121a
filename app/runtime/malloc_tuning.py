"""glibc's malloc, tuned so each forward reuses the memory the last one freed instead of faulting in fresh pages.

A CPU forward of 64 rows allocates activations of up to 8 MB each, and frees them when it returns. By
default glibc serves such blocks with a fresh ``mmap`` (over its mmap threshold, which it raises only up
to the largest block freed so far) and hands the top of the heap back to the OS on free (over its trim
threshold). Either way the next forward's first write to those pages faults each one in again, zeroed:
70-130 minor page faults per image on a Zen 3 EPYC, about a sixth of the forward's time. Raising both
thresholds keeps freed memory in the process for the next batch: no faults in the steady state
(docs/benchmarks/README.md). Only where memory comes from changes, so no pixel can.

The cost is that the process keeps its peak heap: a few tens of MB per forward worker at the default
64-row pieces. Blocks over ``MMAP_THRESHOLD`` still get their own mapping and go back when freed.
Elsewhere than glibc (musl, macOS) nothing is changed.
"""

from __future__ import annotations

import ctypes
import logging
import platform

log = logging.getLogger("app.malloc")

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # <malloc.h>
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest on 64-bit (HEAP_MAX_SIZE / 2): blocks up to this reuse the heap
TRIM_THRESHOLD = 1024 * 1024 * 1024  # free heap kept before glibc gives any back to the OS


def keep_freed_memory() -> bool:
    """Set both thresholds process-wide (idempotent); False where the C library is not glibc or refuses."""
    if platform.libc_ver()[0] != "glibc":
        return False
    mallopt = ctypes.CDLL(None).mallopt  # the process's own glibc
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not done:
        log.warning("mallopt refused the thresholds: forwards keep faulting in fresh pages")
    return done
