"""Synthetic test images, encoded in memory."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def solid_rgb(width: int, height: int, rgb: tuple[int, int, int]) -> np.ndarray:
    return np.full((height, width, 3), rgb, dtype=np.uint8)


def red_square_on_green(width: int, height: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """A green image with a red rectangle at box = (x1, y1, x2, y2), exclusive ends."""
    pixels = solid_rgb(width, height, (0, 200, 0))
    x1, y1, x2, y2 = box
    pixels[y1:y2, x1:x2] = (220, 0, 0)
    return pixels


def encode(pixels: np.ndarray, fmt: str = "PNG", **save_args: object) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt, **save_args)
    return buffer.getvalue()
