"""Image-to-network geometry: letterbox and stretch, and the inverse mapping back to the image.

A ``Placement`` says where the original image sits inside the network input: scaled by
``scale_x``/``scale_y`` and shifted by ``pad_x``/``pad_y``. Letterbox keeps the aspect ratio
(``scale_x == scale_y``) and pads; stretch fills the input and has no padding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np


@dataclass(frozen=True)
class Placement:
    image_width: int
    image_height: int
    input_width: int
    input_height: int
    scale_x: float
    scale_y: float
    pad_x: int
    pad_y: int
    resized_width: int
    resized_height: int


def place_image(
    image_width: int,
    image_height: int,
    input_size: tuple[int, int],
    mode: Literal["letterbox", "stretch"],
) -> Placement:
    """Where an image of the given size lands in a network input of ``input_size`` (H, W)."""
    input_height, input_width = input_size
    if mode == "stretch":
        scale_x, scale_y = input_width / image_width, input_height / image_height
        resized_width, resized_height = input_width, input_height
    else:
        scale_x = scale_y = min(input_width / image_width, input_height / image_height)
        resized_width = max(1, min(input_width, round(image_width * scale_x)))
        resized_height = max(1, min(input_height, round(image_height * scale_y)))
    return Placement(
        image_width=image_width,
        image_height=image_height,
        input_width=input_width,
        input_height=input_height,
        scale_x=scale_x,
        scale_y=scale_y,
        pad_x=(input_width - resized_width) // 2,
        pad_y=(input_height - resized_height) // 2,
        resized_width=resized_width,
        resized_height=resized_height,
    )


def paste_into_input(resized_rgb: np.ndarray, placement: Placement, pad_value: int) -> np.ndarray:
    """Put the resized (h, w, 3) uint8 image on a padded canvas of the network input size."""
    if (
        placement.pad_x == 0
        and placement.pad_y == 0
        and resized_rgb.shape[:2]
        == (
            placement.input_height,
            placement.input_width,
        )
    ):
        return resized_rgb
    canvas = np.full((placement.input_height, placement.input_width, 3), pad_value, np.uint8)
    top, left = placement.pad_y, placement.pad_x
    canvas[top : top + placement.resized_height, left : left + placement.resized_width] = (
        resized_rgb
    )
    return canvas


def boxes_to_image(boxes_xyxy: np.ndarray, placement: Placement) -> np.ndarray:
    """Map (N, 4) boxes from network-input pixels back to the original image, clipped to it."""
    boxes = boxes_xyxy.astype(np.float32, copy=True)
    boxes[:, [0, 2]] = (boxes[:, [0, 2]] - placement.pad_x) / placement.scale_x
    boxes[:, [1, 3]] = (boxes[:, [1, 3]] - placement.pad_y) / placement.scale_y
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, placement.image_width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, placement.image_height)
    return boxes


def boxes_to_input(boxes_xyxy: np.ndarray, placement: Placement) -> np.ndarray:
    """The forward of ``boxes_to_image``: original-image boxes to network-input pixels."""
    boxes = boxes_xyxy.astype(np.float32, copy=True)
    boxes[:, [0, 2]] = boxes[:, [0, 2]] * placement.scale_x + placement.pad_x
    boxes[:, [1, 3]] = boxes[:, [1, 3]] * placement.scale_y + placement.pad_y
    return boxes


def crop_to_image_region(plane: np.ndarray, placement: Placement) -> np.ndarray:
    """The part of a (..., H, W) network-sized map that covers the image (padding removed)."""
    top, left = placement.pad_y, placement.pad_x
    return plane[..., top : top + placement.resized_height, left : left + placement.resized_width]


def normalise_to_nchw(
    rgb_batch: np.ndarray,
    scale: float,
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> np.ndarray:
    """(N, H, W, 3) uint8 -> (N, 3, H, W) float32 as ((x * scale) - mean) / std, in one pass."""
    factor = np.float32(scale) / np.asarray(std, np.float32)
    offset = np.asarray(mean, np.float32) / np.asarray(std, np.float32)
    out = np.empty((rgb_batch.shape[0], 3, *rgb_batch.shape[1:3]), np.float32)
    for channel in range(3):
        np.multiply(rgb_batch[..., channel], factor[channel], out=out[:, channel])
        out[:, channel] -= offset[channel]
    return out
