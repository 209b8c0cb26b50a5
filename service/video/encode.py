"""The annotated video: H.264 (libx264, bundled with PyAV) in MP4, yuv420p, at the input's size
and constant frame rate, one frame in, packets out, nothing held."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from types import TracebackType

import av
import numpy as np
from av.video.stream import VideoStream

from service.errors import PolypServeError
from service.video.source import InputInfo, SourceFrame

CODEC = "libx264"
PIXEL_FORMAT = "yuv420p"  # what every H.264 player decodes
# On the 2 busy development cores, libx264 took 28 ms a 1080p frame at "veryfast" (more than the
# 22 ms a frame that 45 fps leaves for everything) and 6 ms at "ultrafast", whose files are about
# twice as large at the same quality.
PRESET = "ultrafast"
CRF = "23"
# One thread: the encoder already has a pipeline stage of its own, beside decoding and
# inference, and x264's own threads cost 15 to 45 % more CPU for the same file (16 to 18 ms a
# 1080p frame against 12 to 16 ms, in alternating runs).
THREADS = "1"


class VideoWriter:
    def __init__(self, path: Path, info: InputInfo) -> None:
        if CODEC not in av.codecs_available:  # a PyAV built on an FFmpeg without it
            raise PolypServeError(f"this PyAV's FFmpeg {av.ffmpeg_version_info} has no {CODEC}")
        # 4:2:0 needs even sides: an odd one gets a black row or column at its end.
        self.width, self.height = info.width + info.width % 2, info.height + info.height % 2
        self.rate = info.rate
        self._container = av.open(str(path), "w", format="mp4")
        stream = self._container.add_stream(CODEC, rate=info.rate)
        assert isinstance(stream, VideoStream)
        self._stream = stream
        self._stream.width, self._stream.height = self.width, self.height
        self._stream.pix_fmt = PIXEL_FORMAT
        self._stream.options = {"preset": PRESET, "crf": CRF, "threads": THREADS}
        self.frames = 0

    def picture(self, frame: SourceFrame) -> av.VideoFrame:
        """The frame as the encoder takes it: the decoder's own picture when it fits (converted
        when its pixel format is another), else converted from RGB (image folders, odd sizes)."""
        picture = frame.picture
        if picture is not None and (picture.width, picture.height) == (self.width, self.height):
            if picture.format.name == PIXEL_FORMAT:
                return picture
            return picture.reformat(format=PIXEL_FORMAT)
        rgb = frame.rgb
        if rgb.shape[:2] != (self.height, self.width):
            pad = ((0, self.height - rgb.shape[0]), (0, self.width - rgb.shape[1]), (0, 0))
            rgb = np.pad(rgb, pad)
        return av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format=PIXEL_FORMAT)

    @staticmethod
    def repaint(picture: av.VideoFrame, planes: np.ndarray) -> av.VideoFrame:
        """A new picture of ``planes`` (``picture.to_ndarray()`` drawn on), with the colour
        description of ``picture``: the decoder may still hold the original's memory."""
        painted = av.VideoFrame.from_ndarray(planes, format=PIXEL_FORMAT)
        painted.colorspace, painted.color_range = picture.colorspace, picture.color_range
        painted.color_primaries, painted.color_trc = picture.color_primaries, picture.color_trc
        return painted

    def write(self, picture: av.VideoFrame) -> None:
        if self.frames == 0:
            # The colour description of the input's pictures, so players show them as they were.
            context = self._stream.codec_context
            context.colorspace, context.color_range = picture.colorspace, picture.color_range
            context.color_primaries, context.color_trc = picture.color_primaries, picture.color_trc
        picture.pts, picture.time_base = self.frames, Fraction(1) / self.rate
        for packet in self._stream.encode(picture):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        try:
            if self.frames:
                for packet in self._stream.encode(None):
                    self._container.mux(packet)
        finally:
            self._container.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
