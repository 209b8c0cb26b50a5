"""Live work first: the counter background jobs wait on, and their lower CPU priority."""

from __future__ import annotations

import os
import threading
import time

import pytest

from service.scheduling.priority import LiveWork, lower_thread_priority


def test_a_background_thread_waits_while_live_work_is_in_flight() -> None:
    live, stop, passed = LiveWork(), threading.Event(), threading.Event()
    live.add(1)

    def job() -> None:
        live.wait_until_quiet(stop)
        passed.set()

    thread = threading.Thread(target=job)
    thread.start()
    assert not passed.wait(0.05)
    with live.holding():  # a second request in and out: still one in flight
        pass
    assert not passed.wait(0.02)
    live.add(-1)
    assert passed.wait(1.0)
    thread.join()


def test_a_stop_ends_the_wait_even_under_live_work() -> None:
    live, stop = LiveWork(), threading.Event()
    live.add(1)
    threading.Timer(0.02, stop.set).start()
    started = time.monotonic()
    live.wait_until_quiet(stop)
    assert time.monotonic() - started < 1.0 and live.in_flight == 1


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="niceness is a POSIX notion")
def test_a_lowered_thread_and_the_threads_it_starts_run_at_the_lower_priority() -> None:
    seen: dict[str, int] = {}

    def niceness() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    def child() -> None:
        seen["child"] = niceness()

    def background() -> None:
        lower_thread_priority(5)
        seen["background"] = niceness()
        thread = threading.Thread(target=child)
        thread.start()
        thread.join()

    base = niceness()
    thread = threading.Thread(target=background)
    thread.start()
    thread.join()
    expected = max(base, 5)
    assert seen == {"background": expected, "child": expected} and niceness() == base
