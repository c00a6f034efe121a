"""glibc's allocator, told to keep freed memory: a CPU training step frees and re-allocates the same large
tensors every step, and by default glibc returns each one to the kernel (mmap/munmap) and takes it back
with fresh page faults.

Measured with ``bench.train --data <celeba-10k>`` on the 2-core CPU (docs/benchmarks/README.md): system
time 3.75 s of 48.9 s CPU for our loop's timed steps with the default allocator, 0.01 s with these two
settings, and 12 % more img/s. Equivalent to ``MALLOC_MMAP_THRESHOLD_=268435456 MALLOC_TRIM_THRESHOLD_=
1073741824`` in the environment. No effect (and False) where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 256 << 20  # blocks below this come from the heap, not from a fresh mmap each time
TRIM_THRESHOLD = 1 << 30  # free heap kept before returning memory to the kernel


def keep_freed_memory() -> bool:
    """Apply both settings to this process (and processes it forks); True when glibc took them."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):  # not glibc (musl, macOS): nothing to tune
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
