"""Fixtures for recorded-video tests: short H.264 videos made at test time from real
CVC-ClinicDB frames (never committed), the shipped detector alone in a repository, and a live
uvicorn serving it."""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
from collections.abc import Iterable, Iterator
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATA_ROOT, REPO_ROOT, LiveServer

CVC = DATA_ROOT / "cvc-clinicdb"
# A sequence of the tuning half (1-14) with a polyp in view: the detector shows tracks on it.
SEQUENCE = "1"
DETECTOR = REPO_ROOT / "models" / "polyp-detector"
HOLOHUB = "video/holohub-colonoscopy-testframes"


def require_data() -> None:
    if not (CVC / "sequences.csv").is_file():
        if os.environ.get("CI"):
            pytest.fail(f"the CVC-ClinicDB data set is missing at {CVC}")
        pytest.skip(f"no CVC-ClinicDB data at {CVC}")
    if not DETECTOR.is_dir():
        pytest.skip("the shipped detector is not in models/")


def holohub_frames() -> list[Path]:
    """The 10 real 1920x1080 colonoscopy frames of the HoloHub test set."""
    frames = sorted((DATA_ROOT / HOLOHUB).glob("*.png"))
    if not frames:
        if os.environ.get("CI"):
            pytest.fail(f"the HoloHub frames are missing at {DATA_ROOT / HOLOHUB}")
        pytest.skip(f"no HoloHub frames at {DATA_ROOT / HOLOHUB}")
    return frames


def sequence_frames(sequence: str = SEQUENCE) -> list[Path]:
    require_data()
    with (CVC / "sequences.csv").open() as file:
        frames = [row["frame"] for row in csv.DictReader(file) if row["sequence"] == sequence]
    return [CVC / "images" / f"{frame}.png" for frame in frames]


def write_video(
    path: Path,
    frames: Iterable[np.ndarray],
    rate: int = 30,
    codec: str = "libx264",
    container: str | None = None,
    options: dict[str, str] | None = None,
    codec_options: dict[str, str] | None = None,
) -> Path:
    """Encode (h, w, 3) uint8 frames, one at a time; with no frame, a file with a video stream
    and none. ``options`` go to the muxer, ``codec_options`` to the encoder."""
    frames = iter(frames)
    first = next(frames, None)
    height, width = first.shape[:2] if first is not None else (48, 64)
    with av.open(str(path), "w", format=container, options=options or {}) as output:
        stream = output.add_stream(codec, rate=Fraction(rate), options=codec_options or {})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        output.start_encoding()
        for pixels in itertools.chain([first] if first is not None else [], frames):
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                output.mux(packet)
        for packet in stream.encode(None):
            output.mux(packet)
    return path


def decode_video(path: Path) -> tuple[av.video.stream.VideoStream, list[np.ndarray]]:
    """The first video stream's description and every frame as RGB."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream, [f.to_ndarray(format="rgb24") for f in container.decode(stream)]


def gradient(width: int, height: int, shift: int = 0) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([(x + shift) % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)


@pytest.fixture(scope="session")
def cvc_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sequence's frames (384x288) as a 30 fps H.264 MP4."""
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in sequence_frames()]
    return write_video(tmp_path_factory.mktemp("video") / "sequence.mp4", frames)


@pytest.fixture(scope="session")
def detector_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding the shipped detector only: quick to load."""
    require_data()
    root = tmp_path_factory.mktemp("models")
    (root / DETECTOR.name).symlink_to(DETECTOR, target_is_directory=True)
    return root


@contextlib.contextmanager
def serving(repo: Path) -> Iterator[LiveServer]:
    """A live uvicorn serving the repository ``repo``, stopped after."""
    server = LiveServer(repo)
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def detector_server(detector_repo: Path) -> Iterator[LiveServer]:
    with serving(detector_repo) as server:
        yield server
