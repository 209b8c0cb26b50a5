"""Admission control for one model, decided before a request's body is read.

A request holds one of ``max_requests`` places until it is answered. With a latency budget it
is also refused when the latency it can expect, the requests admitted before it plus itself
divided by the model's throughput (Little's law), is over the budget: under overload the
admitted requests keep a bounded latency and the rest are told 503 at once, instead of every
request waiting behind a full queue. A frame answered late is of no use to a live video.

The budget never refuses while fewer than ``min_admitted`` requests are in, the pipeline's width
(decoding threads plus inference instances): those do not queue. The throughput is measured:
completions per second of the time with at least that many in, smoothed, which is the capacity
as it stands (frame size, batch sizes, whatever else shares the CPU). Time with fewer in would
measure one request's latency instead, and the bursts of a light load would be refused. Until
the first measurement, and once the last one is STALE_S old (a capacity measured during a storm
of retries, or before the load changed, must not refuse what follows), the budget goes by the
model's ``ceiling``: the requests a second its inference alone could complete, which no
pipeline beats. Without it, an overload that begins after a light load would fill every place
before its first measurement, and those requests would wait for all the others.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from service.errors import OverloadedError

# Seconds of a full pipeline per throughput measurement, and the weight of each new one.
SAMPLE_S = 0.25
SMOOTHING = 0.3
STALE_S = 5.0


class Admission:
    def __init__(
        self,
        max_requests: int,
        latency_budget_ms: float = 0.0,
        min_admitted: int = 1,
        ceiling: Callable[[], float | None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_requests = max_requests
        self.latency_budget_s = latency_budget_ms / 1000.0  # 0: no budget
        self.min_admitted = min_admitted
        self._ceiling = ceiling
        self._clock = clock
        self.admitted = 0
        self.closing = False
        self.throughput: float | None = None  # completions per second of a full pipeline
        self._measured_at = 0.0
        self._full_s = 0.0
        self._completions = 0
        self._last_event = clock()

    def expected_latency_s(self) -> float | None:
        """What a request admitted now can expect to wait for its answer, if anything is known:
        by the measured throughput, else at least what the model's ceiling gives."""
        throughput = self._fresh_throughput(self._clock()) or self._ceiling()
        return (self.admitted + 1) / throughput if throughput else None

    def _fresh_throughput(self, now: float) -> float | None:
        """The measured throughput, unless none was measured for STALE_S."""
        if not self.throughput or now - self._measured_at > STALE_S:
            return None
        return self.throughput

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """One place for the duration of the block, or OverloadedError (503) at once."""
        if self.closing:
            raise OverloadedError("the model is shutting down", retry_after_s=1)
        if self.admitted >= self.max_requests:
            raise OverloadedError(
                f"the model is at its limit of {self.max_requests} requests", retry_after_s=1
            )
        if self.latency_budget_s and self.admitted >= self.min_admitted:
            # estimated only where a budget can refuse: without one (the default) no request
            # pays for reading the throughput or the ceiling
            expected = self.expected_latency_s()
            if expected is not None and expected > self.latency_budget_s:
                raise OverloadedError(
                    f"the model is busy: a request now would wait about {expected * 1000:.0f} "
                    f"ms, over its latency budget of {self.latency_budget_s * 1000:g} ms",
                    retry_after_s=1,
                )
        self._account()
        self.admitted += 1
        try:
            yield
        finally:
            now = self._account()
            if self.admitted >= self.min_admitted:
                self._completions += 1
            self.admitted -= 1
            self._measure(now)

    def _account(self) -> float:
        """Count the time since the last event if the pipeline was full; returns now."""
        now = self._clock()
        if self.admitted >= self.min_admitted:
            self._full_s += now - self._last_event
        self._last_event = now
        return now

    def _measure(self, now: float) -> None:
        if self._full_s < SAMPLE_S:
            return
        sample = self._completions / self._full_s
        previous = self._fresh_throughput(now)
        self.throughput = sample if previous is None else previous + SMOOTHING * (sample - previous)
        self._full_s, self._completions = 0.0, 0
        self._measured_at = now
