"""The C allocator's settings for a serving process (glibc's malloc; elsewhere nothing).

Post-processing a full-HD frame allocates arrays of several megabytes (a 1080p float32 plane is
8 MB). By default glibc serves each from a fresh ``mmap`` and gives it back on ``free``, or trims
the heap after it, so every request page-faults the same memory in again: for the segmenter at
1080p that was about a quarter of a frame's time. Serving large blocks from the heap and keeping
up to ``keep_bytes`` freed at its top lets the next request reuse them; the price is resident
memory that does not shrink below what requests recently needed.
"""

from __future__ import annotations

import ctypes
import sys

# mallopt parameters (malloc.h) and glibc's largest dynamic mmap threshold on 64-bit systems.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def keep_freed_memory(keep_bytes: int) -> bool:
    """Blocks under 32 MiB from the heap, up to ``keep_bytes`` freed kept; True if applied."""
    if keep_bytes <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)) and bool(
        mallopt(M_TRIM_THRESHOLD, keep_bytes)
    )
