from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.dataplane.imaging import (
    decode_image,
    encode_mask_png,
    load_rgb,
    open_image,
    resize_plane,
)
from service.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from tests.contract.test_errors import png_declaring
from tests.images import encode, solid_rgb

LIMIT = 10_000_000


def _save(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
def test_supported_formats_decode_to_rgb(fmt: str) -> None:
    decoded = decode_image(encode(solid_rgb(30, 20, (200, 10, 10)), fmt), max_pixels=LIMIT)
    assert decoded.rgb.shape == (20, 30, 3) and decoded.rgb.dtype == np.uint8
    assert (decoded.width, decoded.height) == (30, 20)
    assert abs(int(decoded.rgb[10, 15, 0]) - 200) < 8


def test_modes_become_rgb() -> None:
    grey16 = Image.fromarray(np.full((4, 5), 65535, np.uint16))
    assert decode_image(_save(grey16, "PNG"), max_pixels=LIMIT).rgb[0, 0].tolist() == [255] * 3
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red -> black
    assert decode_image(_save(rgba, "PNG"), max_pixels=LIMIT).rgb[0, 0].tolist() == [0, 0, 0]
    palette = Image.new("P", (4, 4), 3)
    palette.putpalette([0, 0, 0] * 3 + [10, 20, 30] + [0, 0, 0] * 252)
    assert decode_image(_save(palette, "PNG"), max_pixels=LIMIT).rgb[0, 0].tolist() == [10, 20, 30]
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))
    red = decode_image(_save(cmyk, "JPEG"), max_pixels=LIMIT).rgb[0, 0]
    assert red[0] > 200 and red[1] < 60
    grey = Image.new("L", (4, 4), 77)
    assert decode_image(_save(grey, "PNG"), max_pixels=LIMIT).rgb[0, 0].tolist() == [77] * 3


def test_exif_orientation_makes_the_image_upright() -> None:
    stored = np.zeros((40, 20, 3), np.uint8)  # 20 wide, 40 high
    stored[:20] = (255, 0, 0)  # top half red
    image = Image.fromarray(stored)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    decoded = decode_image(_save(image, "JPEG", exif=exif.tobytes()), max_pixels=LIMIT)
    assert (decoded.width, decoded.height) == (40, 20)
    assert decoded.rgb.shape == (20, 40, 3)
    assert decoded.rgb[10, 35, 0] > 200 and decoded.rgb[10, 5, 0] < 60  # red now on the right


def test_pixel_limit_is_checked_before_decoding() -> None:
    with pytest.raises(PayloadTooLargeError, match="50000x50000"):
        open_image(png_declaring(50_000, 50_000), max_pixels=LIMIT)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"garbage",
        encode(solid_rgb(50, 50, (1, 2, 3)), "PNG")[:60],
        encode(solid_rgb(50, 50, (1, 2, 3)), "JPEG")[:200],
    ],
)
def test_undecodable_input_is_invalid_input(data: bytes) -> None:
    with pytest.raises(InvalidInputError):
        decode_image(data, max_pixels=LIMIT)


def test_unsupported_formats_are_refused() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        decode_image(encode(solid_rgb(4, 4, (0, 0, 0)), "GIF"), max_pixels=LIMIT)


def test_decoding_to_a_size_keeps_the_original_size_and_drafts_jpegs() -> None:
    opened = open_image(encode(solid_rgb(1920, 1080, (9, 9, 9)), "JPEG"), max_pixels=LIMIT)
    opened.image.draft("RGB", (320, 180))
    assert opened.image.size[0] < 1920  # the DCT-domain reduction load_rgb relies on
    decoded = load_rgb(
        open_image(encode(solid_rgb(1920, 1080, (9, 9, 9)), "JPEG"), max_pixels=LIMIT), (320, 180)
    )
    assert (decoded.width, decoded.height) == (1920, 1080)
    assert decoded.rgb.shape == (180, 320, 3)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_resizing_on_the_decoded_image_equals_resizing_its_pixels(mode: str) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    blob = _save(Image.fromarray(pixels).convert(mode), "PNG")
    full = decode_image(blob, max_pixels=LIMIT).rgb
    expected = np.asarray(Image.fromarray(full).resize((64, 48), Image.Resampling.BILINEAR))
    resized = load_rgb(open_image(blob, max_pixels=LIMIT), (64, 48)).rgb
    assert np.array_equal(resized, expected)


def test_mask_png_and_plane_resize() -> None:
    mask = np.zeros((3, 4), np.int64)
    mask[1, 2] = 1
    image = Image.open(io.BytesIO(encode_mask_png(mask)))
    assert image.mode == "L" and image.size == (4, 3)
    assert np.asarray(image)[1, 2] == 255
    plane = resize_plane(np.ones((2, 2), np.float32), 8, 6)
    assert plane.shape == (6, 8) and np.allclose(plane, 1.0)


def test_opening_reads_the_header_only_and_a_png_exif_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: width and height swap
    opened = open_image(
        _save(Image.new("RGB", (300, 200)), "PNG", exif=exif.tobytes()), max_pixels=LIMIT
    )
    assert (opened.width, opened.height, opened.transposed) == (200, 300, True)
    assert opened.image.tile  # its pixels still to decode (a PNG's getexif() decodes them all)
    plain = open_image(_save(Image.new("RGB", (300, 200)), "PNG"), max_pixels=LIMIT)
    assert plain.image.tile and not plain.transposed
