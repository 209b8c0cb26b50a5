"""The analysis loop: decode, detect, draw, encode, as three stages in three threads.

    decode + prepare ──► [4 frames] ──► infer + track ──► [4 frames] ──► draw + encode

Each handoff holds a few frames, so memory stays flat whatever the length. FFmpeg, Pillow's
resize and ONNX Runtime release the GIL, so the stages overlap on two cores. Frames are analysed
in order, one at a time (the tracker needs them so); a failure in any stage stops the others
and is raised here, and a half-written annotated video is removed. Each stage calls ``pause``
before each frame's work: a background analysis waits there for more urgent work to pass, and
raises there to stop.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from service.video.draw import draw_tracks
from service.video.encode import VideoWriter
from service.video.report import ReportBuilder
from service.video.source import FrameSource, SourceFrame
from service.video.thumbnails import BestViews

T = TypeVar("T")
HANDOFF_FRAMES = 4


class Analyzer(Protocol):
    """In process (``service.video.detector``) or through a service (``service.video.remote``)."""

    model_info: dict[str, Any]
    smoothing: dict[str, Any]
    processing: dict[str, Any]  # how: in process (and on which providers) or where

    def prepare(self, frame: SourceFrame) -> Any: ...
    def analyze(self, frame: SourceFrame, prepared: Any) -> dict[str, Any]: ...
    def track_summaries(self) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


class CancelledError(Exception):
    """The other side of a handoff gave up."""


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


class Handoff(Generic[T]):
    """A bounded queue between two threads: the producer ends it (``close``, or ``fail`` with
    its error), the consumer or an error path gives up on it (``cancel``)."""

    def __init__(self, size: int = HANDOFF_FRAMES) -> None:
        self._queue: queue.Queue[T | _End] = queue.Queue(size)
        self._cancelled = threading.Event()

    def put(self, item: T | _End) -> None:
        while not self._cancelled.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise CancelledError

    def close(self, error: BaseException | None = None) -> None:
        self.put(_End(error))

    def cancel(self) -> None:
        self._cancelled.set()
        while True:  # a put already waiting may take the room freed here, once
            while not self._queue.empty():
                self._queue.get_nowait()
            try:
                self._queue.put_nowait(_End(CancelledError()))  # wakes a consumer in get
                return
            except queue.Full:
                continue

    def __iter__(self) -> Iterator[T]:
        while not isinstance(item := self._queue.get(), _End):
            yield item
        if item.error is not None:
            raise item.error


def run_analysis(
    source: FrameSource,
    analyzer: Analyzer,
    video: Path | None,
    thumbnails: Path | None,
    on_frame: Callable[[dict[str, Any]], None] = lambda result: None,
    pause: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """Analyse every frame of ``source``; write the annotated ``video`` and the best-view
    ``thumbnails`` when given; return the report. ``pause`` is called (from every stage's
    thread) before each frame is decoded, inferred and encoded."""
    report = ReportBuilder(source.info)
    views = BestViews() if thumbnails is not None else None
    started = time.perf_counter()
    writer = VideoWriter(video, source.info) if video is not None else None
    try:
        with writer or contextlib.nullcontext():
            _analyze_frames(source, analyzer, writer, report, views, on_frame, pause)
    except BaseException:
        if video is not None:
            video.unlink(missing_ok=True)
        raise
    output = None
    if writer is not None:
        output = {"path": str(video), "codec": "h264", "width": writer.width,
                  "height": writer.height, "fps": round(float(writer.rate), 3),
                  "frames": writer.frames}  # fmt: skip
    summaries = analyzer.track_summaries()
    seconds = time.perf_counter() - started
    fps = report.frames / seconds if seconds > 0 else 0.0
    speed = {
        "seconds": round(seconds, 3),
        "fps": round(fps, 2),
        "realtime_factor": round(fps / float(source.info.rate), 3),
    }
    return report.build(
        summaries,
        analyzer.model_info,
        analyzer.smoothing,
        {**analyzer.processing, **speed},
        output,
        views.write(thumbnails) if views is not None and thumbnails is not None else None,
    )


def _analyze_frames(
    source: FrameSource,
    analyzer: Analyzer,
    writer: VideoWriter | None,
    report: ReportBuilder,
    views: BestViews | None,
    on_frame: Callable[[dict[str, Any]], None],
    pause: Callable[[], None],
) -> None:
    decoded: Handoff[tuple[SourceFrame, Any]] = Handoff()
    annotated: Handoff[tuple[SourceFrame, list[dict[str, Any]]]] = Handoff()
    with ThreadPoolExecutor(2, thread_name_prefix="video") as pool:
        pool.submit(_prepare_all, source, analyzer, decoded, pause)
        encoding = pool.submit(_encode_all, writer, annotated, pause) if writer else None
        try:
            for frame, prepared in decoded:
                pause()
                result = analyzer.analyze(frame, prepared)
                for track_id in report.add(result):
                    if views is not None:
                        shown = next(t for t in result["tracks"] if t["track_id"] == track_id)
                        views.keep(track_id, frame.rgb, shown["box"])
                if encoding is not None:
                    annotated.put((frame, result["tracks"]))
                on_frame(result)
            if encoding is not None:
                annotated.close()
                encoding.result()
        except BaseException:
            decoded.cancel()
            annotated.cancel()
            failure = encoding.exception() if encoding is not None else None
            if failure is not None and not isinstance(failure, CancelledError):
                raise failure from None  # the encoder's error is the cause
            raise


def _prepare_all(
    source: FrameSource, analyzer: Analyzer, out: Handoff[Any], pause: Callable[[], None]
) -> None:
    try:
        frames = source.frames()
        while True:
            pause()  # before the frame is decoded, not only before it is prepared
            frame = next(frames, None)
            if frame is None:
                break
            out.put((frame, analyzer.prepare(frame)))
    except CancelledError:
        return
    except BaseException as exc:
        with contextlib.suppress(CancelledError):
            out.close(exc)
        return
    with contextlib.suppress(CancelledError):
        out.close()


def _encode_all(writer: VideoWriter, frames: Handoff[Any], pause: Callable[[], None]) -> None:
    try:
        for frame, tracks in frames:
            pause()
            picture = writer.picture(frame)
            if tracks:
                planes = picture.to_ndarray()
                draw_tracks(planes, writer.width, writer.height, tracks)
                picture = writer.repaint(picture, planes)
            writer.write(picture)
    except BaseException:
        frames.cancel()  # the analysis stage's next put stops waiting
        raise
