"""Overload: four times the load that saturates polypserve, for a while.

wrk holds ``4 x saturating`` connections busy (closed loop) while probe clients measure
what a request sees: admitted ones must keep a bounded latency, the rest must be refused at once
(503 with Retry-After) rather than everything slowing down together.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.conftest import rss_mb
from tests.perf.load import run_wrk

SATURATING_CONNECTIONS = 8
# Probe clients beside wrk, each sending a request every PROBE_INTERVAL_S: enough samples
# that the admitted requests' p99 means something (most probes are refused, by design).
PROBES = 4
PROBE_INTERVAL_S = 0.02


class Probe(threading.Thread):
    """One request every ``interval`` s; records (status, latency ms, Retry-After)."""

    def __init__(self, url: str, body: bytes, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.body, self.interval = url, body, interval
        self.samples: list[tuple[int, float, str | None]] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stopping.is_set():
                begin = time.perf_counter()
                try:
                    response = client.post(
                        self.url, content=self.body, headers={"content-type": "image/jpeg"}
                    )
                    status, retry = response.status_code, response.headers.get("retry-after")
                except httpx.HTTPError:
                    status, retry = 0, None
                self.samples.append((status, (time.perf_counter() - begin) * 1000, retry))
                time.sleep(self.interval)


def overload(url: str, body_path: Path, seconds: float, server_pid: int) -> dict[str, Any]:
    unloaded = run_wrk(url, body_path, "image/jpeg", SATURATING_CONNECTIONS, min(seconds, 5))
    baseline_rss = rss_mb(server_pid)
    probes = [Probe(url, body_path.read_bytes(), PROBE_INTERVAL_S) for _ in range(PROBES)]
    for probe in probes:
        probe.start()
    loaded = run_wrk(url, body_path, "image/jpeg", 4 * SATURATING_CONNECTIONS, seconds)
    for probe in probes:
        probe.stopping.set()
        probe.join()
    samples = [sample for probe in probes for sample in probe.samples]
    admitted = np.array([ms for status, ms, _ in samples if status == 200])
    refused = np.array([ms for status, ms, _ in samples if status == 503])

    def p(values: np.ndarray, q: float) -> float | None:
        return round(float(np.percentile(values, q)), 1) if values.size else None

    return {
        "capacity_per_s": round(unloaded.throughput, 1),
        "unloaded_p99_ms": round(unloaded.p99_ms, 1),
        "overloaded_statuses": loaded.statuses,
        "socket_errors": loaded.socket_errors,
        "served_per_s": round(loaded.throughput, 1),
        "probe_admitted": int(admitted.size),
        "probe_admitted_p99_ms": p(admitted, 99),
        "admitted_p99_over_unloaded": (
            round(float(np.percentile(admitted, 99)) / unloaded.p99_ms, 2)
            if admitted.size
            else None
        ),
        "probe_refused": int(refused.size),
        "probe_refused_p50_ms": p(refused, 50),
        "refusals_with_retry_after": all(r is not None for s, _, r in samples if s == 503),
        "probe_failures": [s for s, _, _ in samples if s not in (200, 503)],
        "rss_growth_mb": round(rss_mb(server_pid) - baseline_rss, 1),
    }
