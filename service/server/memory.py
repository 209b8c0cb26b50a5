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
import os
import sys

# mallopt parameters (malloc.h) and glibc's largest dynamic mmap threshold on 64-bit systems.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
MMAP_THRESHOLD_MAX = 32 * 1024 * 1024


def keep_freed_memory(keep_bytes: int) -> bool:
    """Blocks under 32 MiB from the heap, up to ``keep_bytes`` freed kept, and two malloc
    arenas per core; True if applied.

    glibc gives threads up to eight arenas per core, and each decode thread then strands its
    own freed frames: segmentations of 8 images of 5 M pixels from 4 clients left 137 MB
    resident above the idle figure, 56 MB with two arenas per core (``python -m
    tests.perf.memory``). One per core was too few: threads waited on each other's arena and
    the 1080p segmenter at concurrency 1 fell from 17.0 to 11.4 frames/s (``python -m
    tests.perf.bench``); with two it served 17.6.
    """
    if keep_bytes <= 0 or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return (
        bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX))
        and bool(mallopt(M_TRIM_THRESHOLD, keep_bytes))
        and bool(mallopt(M_ARENA_MAX, 2 * (os.cpu_count() or 1)))
    )


def release_freed() -> bool:
    """Give the memory freed in every malloc arena back to the system (glibc's
    ``malloc_trim``): after a large request, resident memory returns near its baseline instead
    of staying at the peak. True if it was applied."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes, malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return bool(malloc_trim(0))
