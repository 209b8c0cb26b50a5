"""Live traffic first: what background work (video jobs) yields to, and how it yields.

Live work is every inference request in flight (counted by the in-flight middleware) and every
stream frame between its arrival and its answer (counted by its session). A background job
checks before each frame's preparation and inference and waits while any live work is in
flight: on a GPU that keeps the job's runs from queueing in front of a live frame. On the CPU
the job's threads also run at a lower scheduling priority (``lower_thread_priority``), so what
the job does between its checks (decoding, drawing, encoding) takes only cores that live work
leaves idle.

The counters are changed on the event loop only and read from the job's threads: a read of an
int needs no lock, and a stale read costs at most one poll.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator

logger = logging.getLogger(__name__)

# How often a waiting job looks again: far below a frame's time, far above the cost of a look.
POLL_S = 0.002
# Niceness of background threads (0 normal, 19 lowest): the scheduler gives a thread at 10 about
# a tenth of the CPU a thread at 0 competing for the same core gets. Not the lowest, so that a
# job thread holding the GIL, which a live thread may be waiting for, is never starved for long.
BACKGROUND_NICENESS = 10


class LiveWork:
    def __init__(self) -> None:
        self.in_flight = 0

    def add(self, count: int) -> None:
        self.in_flight += count

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def wait_until_quiet(self, stop: threading.Event) -> None:
        """Block (a background thread) while live work is in flight, or until ``stop``."""
        while self.in_flight > 0 and not stop.is_set():
            time.sleep(POLL_S)


def lower_thread_priority(niceness: int = BACKGROUND_NICENESS) -> None:
    """Lower the calling thread's CPU priority, for good; threads it starts later inherit it
    (Linux keeps a niceness per thread). Elsewhere, or when refused, it stays as it was."""
    try:
        thread = threading.get_native_id()
        # Never raise it: a process started at a lower priority keeps its own.
        os.setpriority(
            os.PRIO_PROCESS, thread, max(niceness, os.getpriority(os.PRIO_PROCESS, thread))
        )
    except (AttributeError, OSError) as exc:  # not Linux, or a sandbox that forbids it
        logger.info("background thread keeps its priority: %s", exc)
