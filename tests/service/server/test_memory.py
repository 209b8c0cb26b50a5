from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from service.server.memory import keep_freed_memory

# The segmenter's post-processing of a 1080p frame (a probability plane resized to full size by
# Pillow, read back into numpy, thresholded), 20 times; prints the minor page faults that cost
# after keep_freed_memory(argv[1]).
FAULTS = """
import resource, sys
import numpy as np
from PIL import Image
from service.server.memory import keep_freed_memory
applied = keep_freed_memory(int(sys.argv[1]))
probs = np.random.default_rng(0).random((256, 256), dtype=np.float32)
def frame():
    full = np.asarray(Image.fromarray(probs, mode="F").resize((1920, 1080)))
    return int((full > 0.5).sum())
frame()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    frame()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(keep_bytes: int) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", FAULTS, str(keep_bytes)], capture_output=True, text=True, check=True
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_frames_are_reused_instead_of_page_faulted_in_again() -> None:
    applied, kept = faults(64 * 1024 * 1024)
    default_applied, default = faults(0)
    assert applied and not default_applied
    # each frame faults at least one 8 MB plane in again (pages of 4 KiB, or 64 KiB on some arm)
    assert default * resource.getpagesize() > 20 * 8_000_000
    assert kept < default / 100


def test_zero_leaves_the_allocator_alone() -> None:
    assert keep_freed_memory(0) is False
