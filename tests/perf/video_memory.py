"""Resident memory of a long recorded-video analysis: an hour of 1080p, simulated by looping.

    python -m tests.perf.video_memory [--minutes 60] [--models-dir models]

Makes a 10 s 1920x1080 H.264 MP4 from the real HoloHub frames, loads the detector, takes the
idle resident set (after one warm-up frame), then analyses the file looped for --minutes of
video in process, the annotated H.264 video included (as ``polypserve analyze --out`` does),
sampling RSS every second. Prints idle, peak and final RSS, RSS at each quarter of the run, and
the peak over idle against the target: within 300 MB of idle.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from service.config import Settings
from service.stream.params import StreamParams
from service.video.detector import LocalAnalyzer, load_detector
from service.video.pipeline import run_analysis
from service.video.source import FrameSource, InputInfo, SourceFrame, open_source
from tests.conftest import rss_mb
from tests.perf.video_bench import LIMITS, RATE, ping_pong, source_frames
from tests.service.video.conftest import write_video

TARGET_MB = 300
CLIP_FRAMES = 300  # 10 s at 30 fps


class Looped:
    """``path`` decoded again and again until ``frames`` frames, indices and times running on."""

    def __init__(self, path: Path, frames: int) -> None:
        self.path, self.total = path, frames
        first = open_source(path, LIMITS)
        self.info: InputInfo = dataclasses.replace(
            first.info, frames=frames, duration_s=frames / float(first.info.rate)
        )
        first.close()

    def frames(self) -> Iterator[SourceFrame]:
        index = 0
        while index < self.total:
            source = open_source(self.path, LIMITS)
            try:
                for frame in source.frames():
                    if index >= self.total:
                        return
                    time_s = index / float(self.info.rate)
                    yield dataclasses.replace(frame, index=index, time_s=time_s)
                    index += 1
            finally:
                source.close()

    def close(self) -> None:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--data-root", type=Path, default=Path("../shared/data"))
    parser.add_argument("--minutes", type=float, default=60.0)
    args = parser.parse_args()
    model = load_detector(Settings(models_dir=args.models_dir), None, None)
    frames = source_frames(args.data_root)
    with tempfile.TemporaryDirectory() as folder:
        clip = write_video(
            Path(folder) / "clip.mp4", (frames[i] for i in ping_pong(CLIP_FRAMES, len(frames))),
            RATE, codec_options={"preset": "veryfast"},
        )  # fmt: skip
        warm = LocalAnalyzer(model, StreamParams(), 10**8)
        opening = open_source(clip, LIMITS)
        first = next(opening.frames())
        warm.analyze(first, warm.prepare(first))
        opening.close()
        idle = rss_mb(os.getpid())
        total = int(args.minutes * 60 * RATE)
        source: FrameSource = Looped(clip, total)
        samples: list[tuple[int, float]] = []  # (frames done, RSS MB)
        done = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(1.0):
                samples.append((done[0], rss_mb(os.getpid())))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            report = run_analysis(
                source, LocalAnalyzer(model, StreamParams(), 10**8),
                Path(folder) / "annotated.mp4", None,
                on_frame=lambda result: done.__setitem__(0, done[0] + 1),
            )  # fmt: skip
        finally:
            stop.set()
            sampler.join()
    peak = max(rss for _, rss in samples) if samples else idle
    speed = report["processing"]
    print(f"{total} frames ({args.minutes:g} min of 1080p at {RATE} fps) in "
          f"{speed['seconds']:.0f} s ({speed['fps']:.1f} fps)")  # fmt: skip
    print(f"idle RSS {idle:.0f} MB; peak {peak:.0f} MB; final "
          f"{samples[-1][1] if samples else idle:.0f} MB")  # fmt: skip
    for quarter in (0.25, 0.5, 0.75, 1.0):
        at = next((rss for n, rss in samples if n >= quarter * total), peak)
        print(f"  at {quarter:.0%} of the frames: {at:.0f} MB")
    over = peak - idle
    verdict = "met" if over <= TARGET_MB else "missed"
    print(f"peak over idle: {over:.0f} MB (target within {TARGET_MB} MB: {verdict})")


if __name__ == "__main__":
    main()
