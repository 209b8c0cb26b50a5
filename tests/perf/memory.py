"""Resident memory under hostile but legal load: ``python -m tests.perf.memory``.

Starts ``polypserve serve`` on the shipped models with default settings and, for each mix of
requests that the documented limits allow, runs it from 4 concurrent clients while sampling the
process's RSS every 10 ms. Prints the fresh server's idle RSS (the baseline of every mix), the
peak and the settled RSS (2 s after the mix) above it, the slowest request against its deadline,
and whether the targets hold: peak under 1 GB above the baseline, settled within 100 MB of it,
no request past its deadline + 1 s.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
from PIL import Image

from tests.conftest import REPO_ROOT, rss_mb
from tests.perf.servers import Server, polypserve_repository

CLIENTS = 4
DEADLINE_S = 10.0  # POLYPSERVE_REQUEST_TIMEOUT_MS's default
PEAK_LIMIT_MB, SETTLE_LIMIT_MB = 1024, 100


def flat_png(width: int, height: int) -> bytes:
    """A flat-colour PNG: a few hundred kilobytes on the wire, ``width*height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


Send = Callable[[httpx.Client], httpx.Response]


def mixes() -> dict[str, Send]:
    big = flat_png(6300, 6300)  # 39.7 M pixels, under the 40 M per-image limit
    five = flat_png(2500, 2000)  # 8 of them: 40 M pixels in one request

    def series(length: int) -> bytes:
        values = np.sin(np.arange(length) / 5.0).round(4).tolist()
        return json.dumps({"horizon": 12, "series": [{"values": values}] * 256}).encode()

    wide, at_limit = series(3072), series(256)  # 786 432 values; 65 536, the default limit
    png = {"content-type": "image/png"}

    def detect_big(c: httpx.Client) -> httpx.Response:
        return c.post("/v1/detect", content=big, headers=png)

    def segment_eight_big(c: httpx.Client) -> httpx.Response:
        return c.post("/v1/segment", files=[("image", (f"{i}.png", big)) for i in range(8)])

    def segment_eight(c: httpx.Client) -> httpx.Response:
        return c.post("/v1/segment", files=[("image", (f"{i}.png", five)) for i in range(8)])

    def forecast(body: bytes) -> Send:
        return lambda c: c.post(
            "/v1/forecast", content=body, headers={"content-type": "application/json"}
        )

    # just under the JSON body limit: 4 M numbers, parsed before the shape is checked
    numbers = (
        b'{"inputs": [{"name": "images", "shape": [1], "datatype": "FP32", "data": ['
        + (b"0," * 4_190_000)
        + b"0]}]}"
    )

    def v2_json_numbers(c: httpx.Client) -> httpx.Response:
        return c.post("/v2/models/polyp-classifier/infer", content=numbers)

    sends = [
        detect_big,
        segment_eight_big,
        segment_eight,
        forecast(wide),
        forecast(at_limit),
        v2_json_numbers,
    ]
    return {
        "detect 6300x6300 PNG": detect_big,
        "segment 8 x 6300x6300 PNG": segment_eight_big,
        "segment 8 x 2500x2000 PNG": segment_eight,
        "forecast 256 x 3072": forecast(wide),
        "forecast 256 x 256": forecast(at_limit),
        "v2 JSON, 4 M numbers": v2_json_numbers,
        "all of them": lambda c: sends[int(time.monotonic() * 1000) % len(sends)](c),
    }


def run_mix(
    server: Server, send: Send, requests_per_client: int, baseline: float
) -> dict[str, object]:
    pid = server.process.pid
    peak, stop = rss_mb(pid), threading.Event()

    def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            time.sleep(0.01)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    statuses: dict[int, int] = {}
    slowest = 0.0

    def client() -> None:
        nonlocal slowest
        with httpx.Client(base_url=server.url, timeout=120) as c:
            for _ in range(requests_per_client):
                start = time.monotonic()
                status = send(c).status_code
                slowest = max(slowest, time.monotonic() - start)
                statuses[status] = statuses.get(status, 0) + 1

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(client) for _ in range(CLIENTS)]:
            future.result()
    time.sleep(2.0)
    stop.set()
    sampler.join()
    settled = rss_mb(pid) - baseline
    return {
        "baseline_mb": round(baseline),
        "peak_mb": round(peak - baseline),
        "settled_mb": round(settled),
        "slowest_s": round(slowest, 2),
        "statuses": statuses,
        "ok": peak - baseline < PEAK_LIMIT_MB
        and abs(settled) < SETTLE_LIMIT_MB
        and slowest < DEADLINE_S + 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3, help="per client and mix")
    parser.add_argument("--mix", action="append", help="only these mixes (by name)")
    args = parser.parse_args()
    server = polypserve_repository(REPO_ROOT / "models")
    try:
        time.sleep(1.0)
        baseline = rss_mb(server.process.pid)  # idle, before any request
        print(f"{'mix':28} {'baseline':>9} {'peak':>7} {'settled':>8} {'slowest':>8}  statuses")
        failed = False
        for name, send in mixes().items():
            if args.mix and name not in args.mix:
                continue
            r = run_mix(server, send, args.requests, baseline)
            failed |= not r["ok"]
            print(
                f"{name:28} {r['baseline_mb']:>7}MB {r['peak_mb']:>+5}MB {r['settled_mb']:>+6}MB "
                f"{r['slowest_s']:>7}s  {r['statuses']}  {'ok' if r['ok'] else 'OVER TARGET'}",
                flush=True,
            )
    finally:
        server.stop()
    print(
        f"targets (4 clients): peak < +{PEAK_LIMIT_MB} MB, settled within {SETTLE_LIMIT_MB} MB, "
        f"slowest < {DEADLINE_S + 1:g} s: {'met' if not failed else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
