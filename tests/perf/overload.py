"""Overload: requests offered open-loop at 4x polypserve's measured capacity.

Admitted requests must keep a bounded latency and the rest must be refused quickly (503 with
Retry-After), rather than every request slowing down together.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tests.perf import servers
from tests.perf.load import run_wrk


async def open_loop(url: str, body: bytes, rate: float, seconds: float) -> list[tuple[int, float]]:
    """Send at ``rate`` per second regardless of answers; (status, latency ms) per request."""
    results: list[tuple[int, float]] = []
    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as client:

        async def one() -> None:
            begin = time.perf_counter()
            try:
                response = await client.post(
                    url, content=body, headers={"content-type": "image/jpeg"}
                )
                status = response.status_code
            except httpx.HTTPError:
                status = 0
            results.append((status, (time.perf_counter() - begin) * 1000.0))

        tasks = []
        start = time.perf_counter()
        count = int(rate * seconds)
        for index in range(count):
            delay = start + index / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return results


def overload(
    model_dir: Path, body_path: Path, seconds: float, factor: float = 4.0
) -> dict[str, Any]:
    server = servers.polypserve(model_dir)
    try:
        url = server.url + "/v1/detect"
        unloaded = run_wrk(url, body_path, "image/jpeg", 8, seconds)
        rate = unloaded.throughput * factor
        results = asyncio.run(open_loop(url, body_path.read_bytes(), rate, seconds))
    finally:
        server.stop()
    admitted = np.array([ms for status, ms in results if status == 200])
    refused = np.array([ms for status, ms in results if status == 503])
    others = [status for status, _ in results if status not in (200, 503)]
    admitted_p99 = float(np.percentile(admitted, 99)) if admitted.size else float("nan")
    return {
        "capacity_per_s": round(unloaded.throughput, 1),
        "unloaded_p99_ms": round(unloaded.p99_ms, 1),
        "offered_per_s": round(rate, 1),
        "admitted": int(admitted.size),
        "admitted_p99_ms": round(admitted_p99, 1),
        "admitted_p99_over_unloaded": round(admitted_p99 / unloaded.p99_ms, 2),
        "refused_503": int(refused.size),
        "refused_p50_ms": round(float(np.median(refused)), 1) if refused.size else None,
        "other_failures": len(others),
    }
