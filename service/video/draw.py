"""Tracked boxes drawn on a frame's YUV 4:2:0 planes, the encoder's own format.

Drawing on RGB would cost two full-frame colour conversions a frame (about 3 ms each for 1080p
on 2 cores) and round every pixel of the picture twice; on the planes a box costs a few array
slices, and a frame without a shown track is encoded exactly as it was decoded. Each shown
track gets an outline in its colour and a ``#id score`` label above the box (inside it when the
box touches the top), its text rasterised by Pillow and drawn in luma only (chroma has half the
resolution of a text stroke).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

# Colours that stand out on the reds and pinks of the colon, one per track id in turn.
PALETTE_RGB = ((0, 230, 64), (255, 200, 0), (0, 200, 255), (255, 64, 255), (255, 255, 255))
TEXT_Y = 16  # black in limited-range luma


def yuv_of(rgb: tuple[int, int, int]) -> tuple[int, int, int]:
    """BT.601 limited range, the matrix FFmpeg assumes for an untagged picture."""
    r, g, b = (c / 255 for c in rgb)
    return (
        round(16 + 65.481 * r + 128.553 * g + 24.966 * b),
        round(128 - 37.797 * r - 74.203 * g + 112.0 * b),
        round(128 + 112.0 * r - 93.786 * g - 18.214 * b),
    )


def split_planes(
    planes: np.ndarray, width: int, height: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Views of Y (h, w), U and V (h/2, w/2) in PyAV's (h * 3/2, w) yuv420p array."""
    flat = planes.reshape(-1)
    assert np.shares_memory(flat, planes), "the planes must be one contiguous array"
    luma, chroma = width * height, (width // 2) * (height // 2)
    return (
        flat[:luma].reshape(height, width),
        flat[luma : luma + chroma].reshape(height // 2, width // 2),
        flat[luma + chroma : luma + 2 * chroma].reshape(height // 2, width // 2),
    )


def draw_tracks(planes: np.ndarray, width: int, height: int, tracks: list[dict[str, Any]]) -> None:
    """Draw the stream result's shown ``tracks`` on yuv420p ``planes``, in place."""
    y, u, v = split_planes(planes, width, height)
    line = max(2, round(min(width, height) / 270) // 2 * 2)
    font = _font(max(12, height // 36))
    for track in tracks:
        colour = yuv_of(PALETTE_RGB[(track["track_id"] - 1) % len(PALETTE_RGB)])
        # Even corners, so that the chroma planes cover exactly the luma outline.
        x1, y1, x2, y2 = (int(c) // 2 * 2 for c in track["box"])
        x2, y2 = max(x2, x1 + 2 * line), max(y2, y1 + 2 * line)
        for plane, s, value in ((y, 1, colour[0]), (u, 2, colour[1]), (v, 2, colour[2])):
            _outline(plane, x1 // s, y1 // s, x2 // s, y2 // s, line // s, value)
        _label(y, u, v, f"#{track['track_id']} {track['score']:.2f}", x1, y1, colour, font)


def _outline(plane: np.ndarray, x1: int, y1: int, x2: int, y2: int, t: int, value: int) -> None:
    plane[y1 : y1 + t, x1:x2] = value
    plane[max(y2 - t, 0) : y2, x1:x2] = value
    plane[y1:y2, x1 : x1 + t] = value
    plane[y1:y2, max(x2 - t, 0) : x2] = value


def _label(
    y: np.ndarray,
    u: np.ndarray,
    v: np.ndarray,
    text: str,
    x1: int,
    y1: int,
    colour: tuple[int, int, int],
    font: ImageFont.FreeTypeFont | ImageFont.ImageFont,
) -> None:
    mask = _text_mask(text, font)
    height, width = y.shape
    label_h, label_w = min(mask.shape[0], height), min(mask.shape[1], width)
    top = min(y1 - label_h if y1 >= label_h else y1, height - label_h)
    left = min(x1, width - label_w) // 2 * 2
    alpha = mask[:label_h, :label_w] / np.float32(255)
    y[top : top + label_h, left : left + label_w] = np.rint(
        colour[0] + (TEXT_Y - colour[0]) * alpha
    ).astype(np.uint8)
    u[top // 2 : (top + label_h) // 2, left // 2 : (left + label_w) // 2] = colour[1]
    v[top // 2 : (top + label_h) // 2, left // 2 : (left + label_w) // 2] = colour[2]


def _text_mask(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> np.ndarray:
    """The text in white on black with a margin, even in both sides."""
    left, top, right, bottom = (int(c) for c in font.getbbox(text))
    pad = max(2, (bottom - top) // 4)
    size = ((right - left + 2 * pad + 1) // 2 * 2, (bottom - top + 2 * pad + 1) // 2 * 2)
    image = Image.new("L", size, 0)
    ImageDraw.Draw(image).text((pad - left, pad - top), text, fill=255, font=font)
    return np.asarray(image)


@functools.cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)
