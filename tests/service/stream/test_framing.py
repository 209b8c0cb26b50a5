from __future__ import annotations

import struct

import pytest

from service.errors import InvalidInputError
from service.stream.framing import build_frame_message, parse_frame_message
from tests.images import encode, solid_rgb

JPEG = encode(solid_rgb(8, 8, (1, 2, 3)), "JPEG")
PNG = encode(solid_rgb(8, 8, (1, 2, 3)), "PNG")


def test_bare_images_pass_through() -> None:
    assert parse_frame_message(JPEG).image == JPEG
    payload = parse_frame_message(PNG)
    assert payload.image == PNG and payload.frame_id is None and payload.timestamp is None


def test_header_round_trip() -> None:
    payload = parse_frame_message(build_frame_message(JPEG, "cam1-0042", 1234.5))
    assert (payload.image, payload.frame_id, payload.timestamp) == (JPEG, "cam1-0042", 1234.5)
    assert parse_frame_message(build_frame_message(JPEG, 7)).frame_id == 7


@pytest.mark.parametrize(
    "message",
    [
        b"ab",
        struct.pack(">I", 10_000) + b"{}",
        struct.pack(">I", 50) + b"{}",
        struct.pack(">I", 5) + b"nope!" + JPEG,
        struct.pack(">I", 2) + b"[]" + JPEG,
        build_frame_message(JPEG, None, "yesterday"),  # type: ignore[arg-type]
    ],
)
def test_malformed_headers_are_invalid_input(message: bytes) -> None:
    with pytest.raises(InvalidInputError):
        parse_frame_message(message)
