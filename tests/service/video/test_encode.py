"""The annotated video's writer: H.264 in MP4 at the input's size, rate and colours."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from service.video.encode import VideoWriter
from service.video.source import InputInfo, SourceFrame
from tests.service.video.conftest import decode_video, gradient


def _info(width: int, height: int, rate: Fraction) -> InputInfo:
    return InputInfo("in", "images", "images", "png", width, height, rate, None, None)


def test_the_bundled_ffmpeg_encodes_h264_with_libx264() -> None:
    assert "libx264" in av.codecs_available
    assert av.Codec("libx264", "w").name == "libx264"


def test_frames_are_written_as_h264_at_the_input_rate_and_an_odd_size_is_padded(
    tmp_path: Path,
) -> None:
    frames = [gradient(65, 49, shift=8 * i) for i in range(12)]
    with VideoWriter(tmp_path / "out.mp4", _info(65, 49, Fraction(30000, 1001))) as writer:
        for index, rgb in enumerate(frames):
            writer.write(writer.picture(SourceFrame(index, index / 30, rgb)))
    stream, decoded = decode_video(tmp_path / "out.mp4")
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.codec_context.width, stream.codec_context.height) == (66, 50)
    assert stream.average_rate == Fraction(30000, 1001) and len(decoded) == 12
    for rgb, pixels in zip(frames, decoded, strict=True):
        difference = np.abs(pixels[:49, :65].astype(int) - rgb).mean()
        assert difference < 6, difference
        assert pixels[49:, :].mean() < 20 and pixels[:, 65:].mean() < 20  # black padding


def test_a_decoded_picture_is_encoded_as_it_is_with_its_colour_description(
    tmp_path: Path,
) -> None:
    picture = av.VideoFrame.from_ndarray(gradient(64, 48), format="rgb24").reformat(
        format="yuv420p"
    )
    picture.colorspace, picture.color_primaries, picture.color_trc = 1, 1, 1  # BT.709
    with VideoWriter(tmp_path / "out.mp4", _info(64, 48, Fraction(25))) as writer:
        frame = SourceFrame(0, 0.0, np.zeros((48, 64, 3), np.uint8), picture)
        assert writer.picture(frame) is picture  # no conversion
        painted = writer.repaint(picture, picture.to_ndarray())
        assert painted is not picture and painted.colorspace == 1
        writer.write(painted)
    stream, decoded = decode_video(tmp_path / "out.mp4")
    assert stream.codec_context.colorspace == 1 and stream.codec_context.color_primaries == 1
    assert len(decoded) == 1  # of the picture, not of the frame's (black) rgb:
    assert np.abs(decoded[0].astype(int) - gradient(64, 48)).mean() < 6


def test_a_picture_in_another_pixel_format_is_converted_for_the_encoder(tmp_path: Path) -> None:
    """A 4:4:4 recording is analysed from its own pictures; the encoder gets 4:2:0 ones."""
    picture = av.VideoFrame.from_ndarray(gradient(64, 48), format="rgb24").reformat(
        format="yuv444p"
    )
    with VideoWriter(tmp_path / "out.mp4", _info(64, 48, Fraction(25))) as writer:
        converted = writer.picture(SourceFrame(0, 0.0, picture=picture))
        assert converted.format.name == "yuv420p" and picture.format.name == "yuv444p"
        writer.write(converted)
    _, decoded = decode_video(tmp_path / "out.mp4")
    assert np.abs(decoded[0].astype(int) - gradient(64, 48)).mean() < 6
