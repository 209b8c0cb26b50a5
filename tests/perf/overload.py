"""Overload: requests arriving at four times the rate polypserve can serve, for a while.

The capacity and the saturated latency come from wrk at the saturating concurrency. Then an
open-loop generator (``tests.perf.open_loop``) sends Poisson arrivals, first at a quarter of the
capacity (light load), then at four times it. Admitted requests must keep a bounded latency; the
rest must be refused at once (503 with Retry-After) rather than everything slowing down together.
Arrivals, not connections, define the load: wrk's closed loop would answer each quick refusal
with an instant retry, a storm whose rate only measures how fast refusals are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import rss_mb
from tests.perf.load import LoadResult, run_wrk
from tests.perf.open_loop import open_loop

SATURATING_CONNECTIONS = 8
LIGHT, OVERLOAD = 0.25, 4.0  # arrival rates, as fractions of the measured capacity


def saturate(url: str, body_path: Path, seconds: float) -> LoadResult:
    """Capacity and latency at the saturating concurrency (wrk, closed loop)."""
    return run_wrk(url, body_path, "image/jpeg", SATURATING_CONNECTIONS, seconds)


def overload(
    url: str,
    body_path: Path,
    seconds: float,
    server_pid: int,
    saturated: LoadResult | None = None,
) -> dict[str, Any]:
    """``saturated``: the reference, when it was measured on a server without a latency budget
    (a budget refuses some of wrk's closed loop, so it cannot measure the capacity)."""
    saturated = saturated or saturate(url, body_path, min(seconds, 5))
    capacity = saturated.throughput
    body = body_path.read_bytes()
    light = open_loop(url, body, "image/jpeg", LIGHT * capacity, seconds, seed=1)
    baseline_rss = rss_mb(server_pid)
    loaded = open_loop(url, body, "image/jpeg", OVERLOAD * capacity, seconds, seed=2)
    admitted_p99 = loaded.percentile(200, 99)
    statuses = loaded.statuses()

    def ratio(reference: float | None) -> float | None:
        return round(admitted_p99 / reference, 2) if admitted_p99 and reference else None

    return {
        "capacity_per_s": round(capacity, 1),
        "saturated_p99_ms": round(saturated.p99_ms, 1),
        "light_rate_per_s": round(light.rate, 1),
        "light_p50_ms": light.percentile(200, 50),
        "light_p99_ms": light.percentile(200, 99),
        "light_statuses": sorted(light.statuses()),
        "overload_rate_per_s": round(loaded.rate, 1),
        "overloaded_statuses": statuses,
        "served_per_s": round(statuses.get("200", 0) / seconds, 1),
        "admitted_p50_ms": loaded.percentile(200, 50),
        "admitted_p99_ms": admitted_p99,
        "admitted_p99_over_saturated": ratio(saturated.p99_ms),
        "admitted_p99_over_light": ratio(light.percentile(200, 99)),
        "refused_p50_ms": loaded.percentile(503, 50),
        "refused_p99_ms": loaded.percentile(503, 99),
        "refusals_with_retry_after": all(retry for s, _, retry in loaded.samples if s == 503),
        "connections": loaded.connections,
        "rss_growth_mb": round(rss_mb(server_pid) - baseline_rss, 1),
    }
