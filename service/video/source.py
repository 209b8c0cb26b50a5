"""Recorded input, one frame at a time: what every source yields, its limits, a folder of images.

A source is opened first (its header read and checked against the limits, before any frame is
decoded) and then iterated; no source ever holds more than the frame it is yielding. Video
files are in ``service.video.decode``; ``open_source`` picks the kind from the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Literal, Protocol

import av
import numpy as np

from service.dataplane.imaging import SUPPORTED_FORMATS, load_rgb, open_image
from service.errors import InvalidInputError, PayloadTooLargeError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
DEFAULT_FOLDER_FPS = 30


@dataclass(frozen=True)
class VideoLimits:
    max_pixels: int
    max_duration_s: float

    def check_size(self, name: str, width: int, height: int) -> None:
        if width * height > self.max_pixels:
            raise PayloadTooLargeError(
                f"{name} is {width}x{height}, over the limit of {self.max_pixels} pixels a frame "
                "(POLYPSERVE_MAX_VIDEO_PIXELS)",
                limit=self.max_pixels,
            )

    def check_duration(self, name: str, seconds: float) -> None:
        if seconds > self.max_duration_s:
            raise PayloadTooLargeError(
                f"{name} lasts {seconds:g} s, over the limit of {self.max_duration_s:g} s "
                "(POLYPSERVE_MAX_VIDEO_DURATION_S)",
                limit=self.max_duration_s,
            )


@dataclass(frozen=True)
class InputInfo:
    """What the header says. ``frames`` and ``duration_s`` are None when it does not say."""

    path: str
    kind: Literal["video", "images"]
    container: str
    codec: str
    width: int
    height: int
    rate: Fraction  # frames per second, exact: the annotated video's rate
    duration_s: float | None
    frames: int | None


@dataclass(frozen=True)
class SourceFrame:
    index: int
    time_s: float  # from the first frame
    pixels: np.ndarray | None = None  # (height, width, 3) uint8 RGB, decoded (image folders)
    # The decoder's own picture (video files), re-encoded without a colour round trip.
    picture: av.VideoFrame | None = None
    # The image file's bytes (image folders): exactly what /v1/stream would be sent.
    data: bytes | None = None

    @property
    def rgb(self) -> np.ndarray:
        """(height, width, 3) uint8, upright, full size. A video frame's is converted from its
        picture when asked (a best view, a frame sent to a service): the analysis itself never
        needs it, and frames waiting between stages stay a third of the size."""
        if self.pixels is not None:
            return self.pixels
        assert self.picture is not None, "a frame has pixels or a picture"
        return self.picture.to_ndarray(format="rgb24")


class FrameSource(Protocol):
    info: InputInfo

    def frames(self) -> Iterator[SourceFrame]: ...

    def close(self) -> None: ...


def open_source(
    path: Path, limits: VideoLimits, fps: float | None = None, formats: str | None = None
) -> FrameSource:
    """A video file or a folder of images; ``fps`` overrides the file's rate (a folder's
    default is 30); ``formats`` lists the FFmpeg demuxers a video file may be read with."""
    if path.is_dir():
        return ImageFolder(path, limits, fps or DEFAULT_FOLDER_FPS)
    if not path.is_file():
        raise InvalidInputError(f"{path} is neither a video file nor a folder of images")
    from service.video.decode import VideoFile

    return VideoFile(path, limits, fps, formats)


def natural_key(name: str) -> list[str | int]:
    """Name order with numbers compared as numbers: ``2.png`` before ``10.png``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


class ImageFolder:
    """The folder's JPEG, PNG, WebP and BMP files in natural name order, all of one size."""

    def __init__(self, path: Path, limits: VideoLimits, fps: float) -> None:
        self.files = sorted(
            (p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
            key=lambda p: natural_key(p.name),
        )
        if not self.files:
            raise InvalidInputError(f"{path} holds no JPEG, PNG, WebP or BMP image")
        self.limits = limits
        rate = Fraction(fps).limit_denominator(1001)
        limits.check_duration(str(path), len(self.files) / fps)
        first = open_image(self.files[0].read_bytes(), max_pixels=2**62)
        limits.check_size(self.files[0].name, first.width, first.height)
        codec = SUPPORTED_FORMATS[first.image.format or ""].split("/")[1]  # of the first
        self.info = InputInfo(
            str(path), "images", "images", codec, first.width, first.height, rate,
            round(len(self.files) / fps, 3), len(self.files),
        )  # fmt: skip

    def frames(self) -> Iterator[SourceFrame]:
        info = self.info
        for index, file in enumerate(self.files):
            data = file.read_bytes()
            opened = open_image(data, max_pixels=self.limits.max_pixels)
            if (opened.width, opened.height) != (info.width, info.height):
                raise InvalidInputError(
                    f"{file.name} is {opened.width}x{opened.height}; the folder's first image "
                    f"is {info.width}x{info.height} and a video has one size"
                )
            rgb = load_rgb(opened).rgb
            yield SourceFrame(index, index / float(info.rate), rgb, data=data)

    def close(self) -> None:
        pass
