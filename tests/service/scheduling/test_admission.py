from __future__ import annotations

from collections import deque
from contextlib import ExitStack

import pytest

from service.errors import OverloadedError
from service.scheduling.admission import SAMPLE_S, STALE_S, Admission


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def serve(admission: Admission, clock: Clock, requests: int, seconds_each: float) -> None:
    """``requests`` one after another, each taking ``seconds_each``."""
    for _ in range(requests):
        with admission.hold():
            clock.now += seconds_each


def keep_full(admission: Admission, clock: Clock, in_flight: int, per_second: float) -> None:
    """``in_flight`` requests in at all times, one finishing every 1/``per_second`` s, long
    enough for a throughput measurement."""
    places: deque[ExitStack] = deque()
    for _ in range(in_flight):
        places.append(ExitStack())
        places[-1].enter_context(admission.hold())
    for _ in range(int(SAMPLE_S * per_second) + 1):
        clock.now += 1 / per_second
        places.popleft().close()
        places.append(ExitStack())
        places[-1].enter_context(admission.hold())
    for place in places:
        place.close()


def test_places_refuse_at_once_with_retry_after_and_come_back() -> None:
    admission = Admission(max_requests=2)
    with admission.hold(), admission.hold():
        with pytest.raises(OverloadedError) as refused, admission.hold():
            pass
        assert admission.admitted == 2
    assert refused.value.status_code == 503 and refused.value.headers == {"Retry-After": "1"}
    assert "limit of 2 requests" in refused.value.message
    with admission.hold():
        assert admission.admitted == 1


def test_throughput_is_completions_per_busy_second_not_per_wall_second() -> None:
    clock = Clock()
    admission = Admission(max_requests=8, clock=clock)
    assert admission.throughput is None and admission.expected_latency_s() is None
    serve(admission, clock, 10, 0.05)  # 20 per busy second
    assert admission.throughput == pytest.approx(20.0)
    clock.now += 60.0  # idle: no request in, so no busy time
    serve(admission, clock, 10, 0.05)
    assert admission.throughput == pytest.approx(20.0)
    # two at a time, each 0.05 s: 40 completions per busy second, smoothed towards it
    for _ in range(10):
        with admission.hold(), admission.hold():
            clock.now += 0.05
    assert 20.0 < admission.throughput < 40.0
    assert admission.expected_latency_s() == pytest.approx(1 / admission.throughput)


def test_the_budget_refuses_what_would_wait_too_long_but_never_the_pipelines_width() -> None:
    clock = Clock()
    admission = Admission(max_requests=64, latency_budget_ms=105, min_admitted=2, clock=clock)
    keep_full(admission, clock, in_flight=2, per_second=100)
    assert admission.throughput == pytest.approx(100.0)
    with ExitStack() as places:
        for _ in range(10):  # the tenth expects 10 / 100 per s = 100 ms: in budget
            places.enter_context(admission.hold())
        with pytest.raises(OverloadedError) as refused, admission.hold():
            pass
    assert refused.value.headers == {"Retry-After": "1"}
    assert "about 110 ms, over its latency budget of 105 ms" in refused.value.message
    slow = Admission(max_requests=64, latency_budget_ms=1, min_admitted=2, clock=clock)
    keep_full(slow, clock, in_flight=2, per_second=100)
    # under the pipeline's width nothing queues, so nothing is refused; the third is
    with (
        slow.hold(),
        slow.hold(),
        pytest.raises(OverloadedError, match="latency budget"),
        slow.hold(),
    ):
        pass


def test_a_light_load_measures_no_throughput_so_its_bursts_are_not_refused() -> None:
    clock = Clock()
    admission = Admission(max_requests=64, latency_budget_ms=10, min_admitted=3, clock=clock)
    # one or two in at a time for a long while: each one's latency, not the capacity
    keep_full(admission, clock, in_flight=2, per_second=10)
    serve(admission, clock, 100, 0.05)
    assert admission.throughput is None
    with ExitStack() as places:
        for _ in range(12):
            places.enter_context(admission.hold())


def test_until_the_throughput_is_measured_the_budget_goes_by_the_ceiling() -> None:
    """An overload after a light load: nothing measured, but no more admitted than the model's
    inference alone could answer within the budget (at 50 a second, 5 in 100 ms)."""
    clock = Clock()
    admission = Admission(
        max_requests=64, latency_budget_ms=100, min_admitted=3, ceiling=lambda: 50.0, clock=clock
    )
    serve(admission, clock, 100, 0.05)  # a light load: one at a time
    assert admission.throughput is None
    with ExitStack() as places:
        for _ in range(5):
            places.enter_context(admission.hold())
        with pytest.raises(OverloadedError, match="about 120 ms, over its latency budget"):
            places.enter_context(admission.hold())
    # a measured throughput under the ceiling is what counts while it is fresh
    keep_full(admission, clock, in_flight=3, per_second=20)
    assert admission.throughput is not None and admission.throughput < 50
    assert admission.expected_latency_s() == pytest.approx(1 / admission.throughput)
    clock.now += STALE_S + 1
    assert admission.expected_latency_s() == pytest.approx(1 / 50)


def test_a_stale_measurement_is_forgotten_and_a_new_one_starts_afresh() -> None:
    clock = Clock()
    admission = Admission(max_requests=64, latency_budget_ms=50, min_admitted=1, clock=clock)
    keep_full(admission, clock, in_flight=1, per_second=20)  # e.g. during a storm of retries
    assert admission.expected_latency_s() == pytest.approx(1 / 20)
    clock.now += STALE_S + 1
    assert admission.expected_latency_s() is None
    with ExitStack() as places:  # nothing measured: only the places limit
        for _ in range(10):
            places.enter_context(admission.hold())
    keep_full(admission, clock, in_flight=1, per_second=200)
    assert admission.throughput > 150  # started afresh: smoothed with the stale 20 it is < 90


def test_without_a_budget_only_the_places_limit() -> None:
    clock = Clock()
    admission = Admission(max_requests=16, clock=clock)
    serve(admission, clock, 30, 0.01)
    with ExitStack() as places:
        for _ in range(16):  # 16 in at 100/s: 170 ms expected, but no budget to refuse it
            places.enter_context(admission.hold())
        with pytest.raises(OverloadedError, match="limit of 16"), admission.hold():
            pass


def test_a_closing_model_refuses_new_requests() -> None:
    admission = Admission(max_requests=4)
    admission.closing = True
    with pytest.raises(OverloadedError, match="shutting down"), admission.hold():
        pass
