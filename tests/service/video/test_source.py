"""Frame sources: a video decoded frame by frame, a folder of images, the limits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from service.dataplane.imaging import load_rgb, open_image
from service.errors import InvalidInputError, PayloadTooLargeError
from service.video.decode import scaled_rgb
from service.video.source import VideoLimits, natural_key, open_source
from tests.images import encode
from tests.service.video.conftest import decode_video, gradient, holohub_frames, write_video

LIMITS = VideoLimits(max_pixels=3840 * 2160, max_duration_s=3600)


def test_a_video_decodes_frame_by_frame_as_pyav_decodes_it(cvc_video: Path) -> None:
    source = open_source(cvc_video, LIMITS)
    info = source.info
    assert (info.kind, info.container, info.codec) == ("video", "mov", "h264")
    assert (info.width, info.height, info.rate, info.frames) == (384, 288, 30, 25)
    assert info.duration_s == pytest.approx(25 / 30, abs=0.01)
    _, expected = decode_video(cvc_video)
    frames = list(source.frames())
    source.close()
    assert [f.index for f in frames] == list(range(25))
    assert [f.time_s for f in frames] == pytest.approx([i / 30 for i in range(25)], abs=1e-3)
    for frame, pixels in zip(frames, expected, strict=True):
        assert np.array_equal(frame.rgb, pixels)
        assert frame.picture is not None and frame.picture.format.name == "yuv420p"
        assert frame.data is None and frame.pixels is None  # RGB only when asked for


@pytest.mark.parametrize("size", [(256, 256), (320, 180), (640, 480)])
def test_a_picture_is_scaled_as_the_data_plane_resizes_its_rgb(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """FFmpeg's resize of the decoder's picture against Pillow's of its full-size RGB (what
    /v1/stream does with the same pixels sent as a PNG), on real 1080p frames: a tenth of a
    grey level apart on average and one at most but for a few edge pixels, for a downscale of
    7.5, one of 6 and a stretch."""
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in holohub_frames()[:3]]
    video = write_video(tmp_path / "hd.mp4", frames, 30)
    for frame in open_source(video, LIMITS).frames():
        assert frame.picture is not None
        scaled = scaled_rgb(frame.picture, *size)
        expected = load_rgb(open_image(encode(frame.rgb, "PNG"), max_pixels=10**8), size).rgb
        assert scaled.shape == expected.shape == (size[1], size[0], 3)
        difference = np.abs(scaled.astype(int) - expected)
        assert difference.mean() < 0.1 and np.percentile(difference, 99.9) <= 1
        assert difference.max() <= 8


def test_a_folder_is_read_in_natural_name_order(tmp_path: Path) -> None:
    for name, red in (("10.png", 30), ("2.png", 20), ("1.png", 10)):
        (tmp_path / name).write_bytes(encode(np.full((8, 6, 3), red, np.uint8), "PNG"))
    (tmp_path / "notes.txt").write_text("not a frame")
    source = open_source(tmp_path, LIMITS, fps=10)
    assert (source.info.kind, source.info.codec, source.info.frames) == ("images", "png", 3)
    assert (source.info.width, source.info.height, source.info.rate) == (6, 8, 10)
    frames = list(source.frames())
    assert [int(f.rgb[0, 0, 0]) for f in frames] == [10, 20, 30]
    assert [f.time_s for f in frames] == [0.0, 0.1, 0.2]
    assert frames[2].data == (tmp_path / "10.png").read_bytes()
    assert sorted(["b10", "b9", "a"], key=natural_key) == ["a", "b9", "b10"]


def test_a_folder_defaults_to_30_fps_and_refuses_an_image_of_another_size(tmp_path: Path) -> None:
    (tmp_path / "1.jpg").write_bytes(encode(gradient(32, 24), "JPEG"))
    (tmp_path / "2.jpg").write_bytes(encode(gradient(40, 24), "JPEG"))
    source = open_source(tmp_path, LIMITS)
    assert source.info.rate == 30 and source.info.codec == "jpeg"
    frames = source.frames()
    next(frames)
    with pytest.raises(
        InvalidInputError, match=r"2\.jpg is 40x24; the folder's first image is 32x24"
    ):
        next(frames)


def test_frame_size_and_duration_over_the_limits_are_refused_before_decoding(
    cvc_video: Path,
) -> None:
    with pytest.raises(PayloadTooLargeError, match="is 384x288, over the limit of 100000 pixels"):
        open_source(cvc_video, VideoLimits(max_pixels=100_000, max_duration_s=3600))
    with pytest.raises(PayloadTooLargeError, match=r"lasts 0.83\d* s, over the limit of 0.5 s"):
        open_source(cvc_video, VideoLimits(max_pixels=10**7, max_duration_s=0.5))


def test_a_duration_the_header_does_not_state_is_checked_as_frames_arrive(tmp_path: Path) -> None:
    raw = write_video(
        tmp_path / "raw.h264", [gradient(64, 48, i) for i in range(30)], container="h264"
    )
    source = open_source(raw, VideoLimits(max_pixels=10**7, max_duration_s=0.5))
    assert source.info.duration_s is None and source.info.rate == 30
    with pytest.raises(PayloadTooLargeError, match=r"raw.h264 \(at frame 16\) lasts 0.533"):
        list(source.frames())


def test_a_missing_path_and_an_empty_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="is neither a video file nor a folder"):
        open_source(tmp_path / "nothing.mp4", LIMITS)
    with pytest.raises(InvalidInputError, match="holds no JPEG, PNG, WebP or BMP image"):
        open_source(tmp_path, LIMITS)
