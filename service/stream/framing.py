"""How a client's binary WebSocket message carries a frame.

A message is either a bare JPEG/PNG (the service numbers it), or a header then the image:

    4 bytes   big-endian length N of the header
    N bytes   UTF-8 JSON: {"frame_id": <string or integer>, "timestamp": <number>}, both optional
    rest      the JPEG or PNG bytes

``frame_id`` and ``timestamp`` (the client's capture time, any unit) come back unchanged in
the frame's result, so a client can match results to frames and measure its own latency.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass

from service.errors import InvalidInputError
from service.parsing import parse_json

MAX_HEADER_BYTES = 4096
_BARE_IMAGE_MAGIC = (b"\xff\xd8", b"\x89PNG")


@dataclass(frozen=True)
class FramePayload:
    image: bytes
    frame_id: str | int | None = None
    timestamp: float | None = None


def parse_frame_message(message: bytes) -> FramePayload:
    if message.startswith(_BARE_IMAGE_MAGIC):
        return FramePayload(message)
    if len(message) < 4:
        raise InvalidInputError("a frame message is a JPEG/PNG, or a 4-byte header length first")
    (length,) = struct.unpack(">I", message[:4])
    if length > MAX_HEADER_BYTES or 4 + length > len(message):
        raise InvalidInputError(f"invalid frame header length {length}")
    header = parse_json(message[4 : 4 + length], "the frame header")
    if not isinstance(header, dict):
        raise InvalidInputError("the frame header must be a JSON object")
    frame_id = header.get("frame_id")
    timestamp = header.get("timestamp")
    if frame_id is not None and not isinstance(frame_id, str | int):
        raise InvalidInputError("frame_id must be a string or an integer")
    if timestamp is not None and not (
        isinstance(timestamp, int | float) and math.isfinite(timestamp)
    ):
        raise InvalidInputError("timestamp must be a finite number")
    return FramePayload(message[4 + length :], frame_id, timestamp)


def build_frame_message(
    image: bytes, frame_id: str | int | None = None, timestamp: float | None = None
) -> bytes:
    """The client side of the framing (used by the benchmark, the tests and documented)."""
    header = json.dumps({"frame_id": frame_id, "timestamp": timestamp}).encode()
    return struct.pack(">I", len(header)) + header + image
