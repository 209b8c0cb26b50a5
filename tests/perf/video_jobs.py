"""Live traffic first: the stream's latency with a video job running against it without one.

    python -m tests.perf.video_jobs [--models-dir models] [--data-root ../shared/data]
                                    [--seconds 20] [--frames 150]

One polypserve process serving the shipped detector. The stream gets 1920x1080 JPEG frames at
30 fps (the HoloHub frames; else real CVC-ClinicDB frames scaled to 1080p; else gradients) for
--seconds, first alone, then while video jobs run back to back on a 1080p H.264 recording of the
same frames (--frames long, each job resubmitted when it ends). Prints each phase's latency
percentiles, the p99 with jobs over the p99 without (target: at most 1.5), and how many frames
the jobs analysed meanwhile: live traffic comes first, but the jobs must still move.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from tests.perf import servers
from tests.perf.stream_bench import offer
from tests.perf.video_bench import ping_pong
from tests.service.video.conftest import gradient, write_video

# ---- configuration --------------------------------------------------------------------------
SECONDS = 20.0
FRAMES = 150  # 5 s of 1080p video a job
FPS = 30.0
SIZE = (1920, 1080)
TARGET_RATIO = 1.5
POLL_S = 0.25
# ---------------------------------------------------------------------------------------------


def source_frames(data_root: Path) -> list[np.ndarray]:
    holohub = sorted((data_root / "video" / "holohub-colonoscopy-testframes").glob("*.png"))
    cvc = sorted((data_root / "cvc-clinicdb" / "images").glob("*.png"), key=lambda p: int(p.stem))
    paths = holohub or cvc[:25]
    if not paths:
        print(f"no frames under {data_root}: gradients instead", flush=True)
        return [gradient(*SIZE, shift=16 * i) for i in range(10)]
    print(f"{len(paths)} frames from {paths[0].parent}, at {SIZE[0]}x{SIZE[1]}", flush=True)
    return [np.asarray(Image.open(p).convert("RGB").resize(SIZE)) for p in paths]


def jpeg(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


class JobKeeper(threading.Thread):
    """Keeps one video job running: submits the recording again whenever the last one ends."""

    def __init__(self, url: str, video: bytes) -> None:
        super().__init__(daemon=True)
        self.url, self.video = url, video
        self.stopping = threading.Event()
        self.frames_done, self.jobs_done, self.errors = 0, 0, []  # type: ignore[var-annotated]

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self.stopping.is_set():
                created = client.post(
                    "/v1/videos", content=self.video, headers={"content-type": "video/mp4"}
                )
                if created.status_code != 202:
                    self.errors.append(created.text)
                    return
                location, counted = created.headers["location"], 0
                while True:
                    job = client.get(location).json()
                    self.frames_done += job["progress"]["frames_done"] - counted
                    counted = job["progress"]["frames_done"]
                    if job["state"] in ("done", "failed") or self.stopping.is_set():
                        break
                    time.sleep(POLL_S)
                if job["state"] == "failed":
                    self.errors.append(job["error"])
                self.jobs_done += job["state"] == "done"
                client.delete(location)


async def measure(url: str, frames: list[bytes], video: bytes, seconds: float) -> dict[str, Any]:
    stream_url = url.replace("http", "ws") + "/v1/stream"
    alone = await offer(stream_url, frames, FPS, seconds)
    print("stream alone:", json.dumps(alone), flush=True)
    keeper = JobKeeper(url, video)
    keeper.start()
    try:
        with_jobs = await offer(stream_url, frames, FPS, seconds)
    finally:
        keeper.stopping.set()
        keeper.join(30)
    print("stream with a video job running:", json.dumps(with_jobs), flush=True)
    ratio = with_jobs["latency_ms"]["p99"] / alone["latency_ms"]["p99"]
    job_fps = keeper.frames_done / seconds
    print(
        f"jobs meanwhile: {keeper.frames_done} frames analysed ({job_fps:.1f} fps), "
        f"{keeper.jobs_done} jobs done, errors: {keeper.errors or 'none'}"
    )
    verdict = "within" if ratio <= TARGET_RATIO else "OVER"
    print(f"p99 with a job / p99 alone: {ratio:.2f} ({verdict} the target of {TARGET_RATIO})")
    return {"alone": alone, "with_job": with_jobs, "p99_ratio": round(ratio, 2),
            "job_frames": keeper.frames_done, "job_fps": round(job_fps, 1)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--frames", type=int, default=FRAMES)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    pictures = source_frames(args.data_root)
    with tempfile.TemporaryDirectory() as folder:
        order = ping_pong(args.frames, len(pictures))
        path = write_video(Path(folder) / "job.mp4", (pictures[i] for i in order), int(FPS))
        video = path.read_bytes()
        server = servers.polypserve(
            args.models_dir / "polyp-detector", video_jobs_dir=str(Path(folder) / "jobs")
        )
        try:
            results = asyncio.run(
                measure(server.url, [jpeg(p) for p in pictures], video, args.seconds)
            )
        finally:
            server.stop()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
