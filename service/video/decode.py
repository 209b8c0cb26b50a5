"""A video file, decoded frame by frame with PyAV (the FFmpeg its wheel bundles).

The header is read and checked at open: a file FFmpeg cannot read, one without a video stream
or with a codec it has no decoder for, a frame size or a duration over the limits, each is a
clear error before any frame is decoded. Decoding errors later on (a file cut short behind a
valid header) and timestamps past the duration limit (a header may say nothing) stop the
iteration with an error naming the frame, and so does a file whose index lists more frames than
it holds.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av
import av.error
import numpy as np
from av.video.reformatter import VideoReformatter

from service.errors import InvalidInputError, UnsupportedMediaTypeError
from service.video.source import InputInfo, SourceFrame, VideoLimits


class _Scalers(threading.local):
    """FFmpeg's scaler contexts, one pair a thread, kept for its next frames: a scaler's
    filters are computed once (1.7 ms of the 8 a 1080p frame took when each call made its own)."""

    def __init__(self) -> None:
        self.to_planar, self.to_size = VideoReformatter(), VideoReformatter()


_scalers = _Scalers()


def scaled_rgb(picture: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """The picture as (height, width, 3) RGB, resized by FFmpeg's bilinear scaler.

    Converted to planar RGB at full size first, so the result is what Pillow's bilinear resize
    of the full-size RGB frame gives (the data plane's path for an image) within a tenth of a
    grey level on average (a few levels at most, on edges), at a third of its cost on a 1080p
    frame. Scaled straight from 4:2:0 it would be cheaper still, but its chroma differs by up
    to 27 levels at edges and moved the detector's boxes by several pixels.
    """
    planar = _scalers.to_planar.reformat(picture, format="gbrp")
    scaled = _scalers.to_size.reformat(
        planar, width=width, height=height, format="gbrp", interpolation="BILINEAR"
    )
    return scaled.to_ndarray()  # planar G, B, R to packed RGB: a copy of the small picture


def _head(path: Path) -> bytes:
    with path.open("rb") as file:
        return file.read(8)


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc)


class VideoFile:
    """``formats``: the FFmpeg demuxers the file may be read with (all when None). A file from
    elsewhere needs the list: FFmpeg's playlist demuxers (HLS, concat) open the files a
    playlist names, so an upload could make it read the server's own."""

    def __init__(
        self, path: Path, limits: VideoLimits, fps: float | None, formats: str | None = None
    ) -> None:
        self.name = path.name
        self.limits = limits
        try:
            options = {"format_whitelist": formats} if formats else {}
            self._container = av.open(str(path), container_options=options)
        except (av.error.FFmpegError, OSError) as exc:
            if _head(path)[4:8] == b"ftyp":
                raise InvalidInputError(
                    f"{path.name} looks like an MP4 but cannot be read, truncated or corrupt "
                    f"({_reason(exc)})"
                ) from None
            reason = _reason(exc)
            if formats and getattr(exc, "errno", None) == errno.EINVAL:
                reason = f"its format is none of {formats.replace(',', ', ')}"
            raise InvalidInputError(
                f"{path.name} is not a video FFmpeg can read ({reason})"
            ) from None
        try:
            self.info = self._check(path, fps)
        except Exception:
            self._container.close()
            raise
        self.rate_override = fps is not None

    def _check(self, path: Path, fps: float | None) -> InputInfo:
        streams = self._container.streams.video
        if not streams:
            raise InvalidInputError(f"{self.name} has no video stream")
        self.stream = stream = streams[0]
        context = stream.codec_context
        if context is None:
            raise UnsupportedMediaTypeError(
                f"{self.name}: its video codec is not supported (no decoder for it in the "
                f"FFmpeg {av.ffmpeg_version_info} that PyAV bundles)"
            )
        if context.width <= 0 or context.height <= 0:
            raise InvalidInputError(f"{self.name}: the video stream has no frame size")
        self.limits.check_size(self.name, context.width, context.height)
        # FFmpeg's guess (as its own command line takes it): a raw H.264 stream's average
        # rate is a default of 25 where the guess reads the stream's timing.
        rate = (
            Fraction(fps).limit_denominator(1001)
            if fps
            else stream.guessed_rate or stream.average_rate
        )
        if not rate or rate <= 0:
            raise InvalidInputError(f"{self.name} says no frame rate; give one with --fps")
        duration_s: float | None = None
        if stream.duration is not None and stream.time_base is not None:
            duration_s = float(stream.duration * stream.time_base)
        elif self._container.duration is not None:
            duration_s = self._container.duration / av.time_base
        if duration_s is not None:
            self.limits.check_duration(self.name, duration_s)
        frames = stream.frames or (round(duration_s * rate) if duration_s else None)
        return InputInfo(
            str(path), "video", self._container.format.name.split(",")[0], context.name,
            context.width, context.height, Fraction(rate), duration_s, frames,
        )  # fmt: skip

    def frames(self) -> Iterator[SourceFrame]:
        self.stream.codec_context.thread_type = "AUTO"  # frame and slice threads
        info, index, first_time = self.info, 0, None
        try:
            for frame in self._container.decode(self.stream):
                time_s = index / float(info.rate)
                if not self.rate_override and frame.time is not None:
                    first_time = frame.time if first_time is None else first_time
                    time_s = frame.time - first_time
                self.limits.check_duration(f"{self.name} (at frame {index})", time_s)
                if (frame.width, frame.height) != (info.width, info.height):
                    raise InvalidInputError(
                        f"{self.name}: the frame size changes at frame {index} "
                        f"({info.width}x{info.height} to {frame.width}x{frame.height})"
                    )
                yield SourceFrame(index, time_s, picture=frame)
                index += 1
        except av.error.FFmpegError as exc:
            raise InvalidInputError(
                f"{self.name} is corrupt or truncated at frame {index} ({_reason(exc)})"
            ) from None
        if index == 0:
            raise InvalidInputError(f"{self.name} has no frames")
        # Frame threads end a file cut short behind its index quietly: the index tells.
        if self.stream.frames and index < self.stream.frames:
            raise InvalidInputError(
                f"{self.name} is corrupt or truncated at frame {index} (its index lists "
                f"{self.stream.frames})"
            )

    def close(self) -> None:
        self._container.close()
