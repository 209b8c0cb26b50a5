"""Soak: mixed traffic on every route plus two stream sessions, for a while.

    python -m tests.perf.soak --url http://127.0.0.1:8000 [--seconds 300]

Prints requests and errors per route and the server's resident-memory growth (when it runs on
this machine and its pid is given or found). Errors are 5xx answers and transport failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from typing import Any

import httpx
import numpy as np
from websockets.asyncio.client import connect

from service.stream.framing import build_frame_message
from tests.conftest import rss_mb
from tests.images import encode, solid_rgb

IMAGE = encode(solid_rgb(320, 240, (200, 40, 40)), "JPEG")


def _requests(models: dict[str, dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, httpx arguments) for every route the repository can serve."""
    image = {"content": IMAGE, "headers": {"content-type": "image/jpeg"}}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/v2/health/ready", {}),
        ("GET", "/v1/models", {}),
        ("GET", "/metrics", {}),
        (
            "POST",
            "/v1/detect",
            {"content": b"not an image", "headers": {"content-type": "image/jpeg"}},
        ),  # a 400, on purpose
    ]
    routes = {
        "classification": "/v1/classify",
        "detection": "/v1/detect",
        "segmentation": "/v1/segment",
    }
    for name, info in models.items():
        if info["task"] in routes:
            calls.append(("POST", f"{routes[info['task']]}?model={name}", image))
        elif info["task"] == "forecasting":
            length = info["limits"]["min_length"]
            series = {"values": np.sin(np.arange(length + 10) / 3).round(4).tolist()}
            calls.append(
                (
                    "POST",
                    "/v1/forecast",
                    {"json": {"model": name, "horizon": 1, "series": [series]}},
                )
            )
        spec = info["versions"][-1]["manifest"]["inputs"][0]
        shape = [1 if d is None else d for d in spec["shape"]]
        calls.append(
            (
                "POST",
                f"/v2/models/{name}/infer",
                {
                    "json": {
                        "inputs": [
                            {
                                "name": spec["name"],
                                "datatype": "FP32",
                                "shape": shape,
                                "data": [0.0] * int(np.prod(shape)),
                            }
                        ]
                    }
                },
            )
        )
    return calls


async def soak(url: str, seconds: float, pid: int | None = None) -> dict[str, Any]:
    counts: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        models = {m["name"]: m for m in (await client.get("/v1/models")).json()["models"]}
        calls = _requests(models)
        detector = next((n for n, m in models.items() if m["task"] == "detection"), None)
        baseline = rss_mb(pid) if pid else None

        async def http_worker(offset: int) -> None:
            index = offset
            while time.monotonic() < deadline:
                method, path, kwargs = calls[index % len(calls)]
                index += 1
                key = f"{method} {path.split('?')[0]}"
                try:
                    response = await client.request(method, path, **kwargs)
                    counts[key] += 1
                    errors[key] += response.status_code >= 500
                except httpx.HTTPError:
                    errors[key] += 1

        async def stream_worker() -> None:
            ws_url = url.replace("http", "ws") + f"/v1/stream?model={detector}"
            frame = 0
            while time.monotonic() < deadline:
                try:
                    async with connect(ws_url) as ws:
                        json.loads(await ws.recv())
                        while time.monotonic() < deadline:
                            await ws.send(build_frame_message(IMAGE, frame))
                            frame += 1
                            reply = json.loads(await ws.recv())
                            counts["WS /v1/stream"] += 1
                            errors["WS /v1/stream"] += reply["type"] != "result"
                            await asyncio.sleep(1 / 15)
                except OSError:
                    errors["WS /v1/stream"] += 1

        workers = [http_worker(i) for i in range(4)]
        if detector:
            workers += [stream_worker(), stream_worker()]
        await asyncio.gather(*workers)
        final = rss_mb(pid) if pid else None
    return {
        "seconds": seconds,
        "requests": dict(counts),
        "errors": {k: v for k, v in errors.items() if v},
        "rss_growth_mb": None if baseline is None or final is None else round(final - baseline, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--seconds", type=float, default=300.0)
    parser.add_argument("--pid", type=int, help="the server's pid, for its memory")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(soak(args.url, args.seconds, args.pid)), indent=2))


if __name__ == "__main__":
    main()
