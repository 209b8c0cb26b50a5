"""Stream benchmark: real sequences over a real WebSocket against a live uvicorn.

    python -m tests.perf.stream_bench [--models-dir models] [--data-root ../shared/data]

The 1920x1080 HoloHub frames (as JPEG) offered at 30 fps, then as fast as the client can send;
then 4 sessions at 15 fps each: processed fps, latency p50/p95/p99/max, drops.

How well the smoothing serves is measured by ``python -m tests.perf.smoothing``.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from websockets.asyncio.client import connect

from service.stream.framing import build_frame_message
from tests.perf import servers

# ---- configuration --------------------------------------------------------------------------
SECONDS = 20.0
# A real-time sender keeps at most about two frames in its own socket (the viewer checks the
# WebSocket's bufferedAmount the same way): a deep kernel send queue would only age its frames.
CLIENT_SEND_BUFFER = 256 * 1024
# ---------------------------------------------------------------------------------------------


def jpeg(path: Path, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    Image.open(path).convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    p50, p95, p99 = np.percentile(values, [50, 95, 99])
    return {
        "p50": round(float(p50), 1),
        "p95": round(float(p95), 1),
        "p99": round(float(p99), 1),
        "max": round(max(values), 1),
    }


async def offer(url: str, frames: list[bytes], fps: float | None, seconds: float) -> dict[str, Any]:
    """Send frames at ``fps`` (None: as fast as possible) for ``seconds``; measure results."""
    latencies: list[float] = []
    stages: dict[str, list[float]] = {}  # the server's own timing of each result, by stage
    dropped_reported = 0
    async with connect(url, max_size=None) as ws:
        json.loads(await ws.recv())
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, CLIENT_SEND_BUFFER)
        sent = 0
        done = asyncio.Event()

        async def receive() -> None:
            nonlocal dropped_reported
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "result":
                    latencies.append((time.perf_counter() - message["timestamp"]) * 1000)
                    dropped_reported += message["dropped"]
                    for stage, ms in message["timing_ms"].items():
                        stages.setdefault(stage, []).append(ms)
                elif message["type"] == "report":
                    done.set()
                    message_report.update(message)
                    return

        message_report: dict[str, Any] = {}
        receiver = asyncio.create_task(receive())
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            if fps is not None:
                await asyncio.sleep(max(0.0, start + sent / fps - time.perf_counter()))
            await ws.send(
                build_frame_message(frames[sent % len(frames)], sent, time.perf_counter())
            )
            sent += 1
            if fps is None:
                await asyncio.sleep(0)  # let the receiver run; the socket applies backpressure
        await asyncio.sleep(0.5)
        await ws.send(json.dumps({"type": "report"}))
        await asyncio.wait_for(done.wait(), 30)
        receiver.cancel()
    elapsed = time.perf_counter() - start
    frames_report = message_report["frames"]
    return {
        "offered_fps": round(sent / seconds, 1),
        "processed_fps": round(len(latencies) / elapsed, 1),
        "latency_ms": percentiles(latencies),
        "server_stage_median_ms": {k: round(float(np.median(v)), 1) for k, v in stages.items()},
        "sent": sent,
        "processed": frames_report["processed"],
        "dropped": frames_report["dropped"],
        "dropped_in_results": dropped_reported,
        "drops_exact": frames_report["received"]
        == frames_report["processed"] + frames_report["dropped"] + frames_report["errors"],
    }


async def run(url: str, data_root: Path, seconds: float) -> dict[str, Any]:
    video = sorted((data_root / "video" / "holohub-colonoscopy-testframes").glob("*.png"))
    frames = [jpeg(path) for path in video]
    results: dict[str, Any] = {}
    results["1080p_30fps"] = await offer(url, frames, 30.0, seconds)
    print("1080p at 30 fps:", json.dumps(results["1080p_30fps"]), flush=True)
    results["1080p_max_rate"] = await offer(url, frames, None, seconds)
    print("1080p as fast as possible:", json.dumps(results["1080p_max_rate"]), flush=True)
    sessions = await asyncio.gather(*(offer(url, frames, 15.0, seconds) for _ in range(4)))
    results["4_sessions_15fps"] = sessions
    for index, session in enumerate(sessions):
        print(f"session {index} of 4 at 15 fps:", json.dumps(session), flush=True)
    p99_30, p99_max = (results[k]["latency_ms"]["p99"] for k in ("1080p_30fps", "1080p_max_rate"))
    results["max_rate_p99_over_30fps_p99"] = round(p99_max / p99_30, 2)
    print("p99 as fast as possible / p99 at 30 fps:", results["max_rate_p99_over_30fps_p99"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    server = servers.polypserve(args.models_dir / "polyp-detector")
    try:
        results = asyncio.run(
            run(server.url.replace("http", "ws") + "/v1/stream", args.data_root, args.seconds)
        )
    finally:
        server.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
