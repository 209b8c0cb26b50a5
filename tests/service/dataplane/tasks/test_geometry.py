from __future__ import annotations

import numpy as np
import pytest

from service.dataplane.tasks.geometry import (
    boxes_to_image,
    boxes_to_input,
    crop_to_image_region,
    normalise_to_nchw,
    paste_into_input,
    place_image,
)


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (640, 480, (320, 240, 0, 40)),  # wide: pad top and bottom
        (480, 640, (240, 320, 40, 0)),  # tall: pad left and right
        (1920, 1080, (320, 180, 0, 70)),
        (320, 320, (320, 320, 0, 0)),
    ],
)
def test_letterbox_keeps_aspect_and_centres(
    width: int, height: int, expected: tuple[int, int, int, int]
) -> None:
    placement = place_image(width, height, (320, 320), "letterbox")
    resized_w, resized_h, pad_x, pad_y = expected
    assert (placement.resized_width, placement.resized_height) == (resized_w, resized_h)
    assert (placement.pad_x, placement.pad_y) == (pad_x, pad_y)
    assert placement.scale_x == placement.scale_y


def test_letterbox_into_non_square_input() -> None:
    placement = place_image(1000, 1000, (240, 320), "letterbox")  # (H, W)
    assert (placement.resized_width, placement.resized_height) == (240, 240)
    assert (placement.pad_x, placement.pad_y) == (40, 0)


@pytest.mark.parametrize("mode", ["letterbox", "stretch"])
@pytest.mark.parametrize(("width", "height"), [(1920, 1080), (333, 777), (64, 64)])
def test_boxes_round_trip_through_the_input(mode: str, width: int, height: int) -> None:
    placement = place_image(width, height, (256, 320), mode)  # type: ignore[arg-type]
    boxes = np.array([[10, 20, width / 2, height - 1], [0, 0, width, height]], np.float32)
    back = boxes_to_image(boxes_to_input(boxes, placement), placement)
    np.testing.assert_allclose(back, boxes, atol=1e-3)


def test_boxes_in_padding_are_clipped_to_the_image() -> None:
    placement = place_image(200, 100, (64, 64), "letterbox")
    boxes = boxes_to_image(np.array([[-5, 0, 70, 64]], np.float32), placement)
    np.testing.assert_allclose(boxes, [[0, 0, 200, 100]])


def test_stretch_scales_axes_independently() -> None:
    placement = place_image(200, 100, (50, 100), "stretch")
    assert (placement.scale_x, placement.scale_y) == (0.5, 0.5)
    placement = place_image(400, 100, (100, 100), "stretch")
    assert (placement.scale_x, placement.scale_y) == (0.25, 1.0)


def test_paste_and_crop_are_inverse() -> None:
    placement = place_image(200, 100, (64, 64), "letterbox")
    resized = np.random.default_rng(0).integers(0, 255, (32, 64, 3), dtype=np.uint8)
    canvas = paste_into_input(resized, placement, pad_value=114)
    assert canvas.shape == (64, 64, 3)
    assert (canvas[:16] == 114).all() and (canvas[48:] == 114).all()
    chw = canvas.transpose(2, 0, 1)
    np.testing.assert_array_equal(crop_to_image_region(chw, placement).transpose(1, 2, 0), resized)


def test_normalise_to_nchw_applies_scale_mean_std_per_channel() -> None:
    batch = np.array([[[[255, 0, 51]]]], np.uint8)  # N=1, H=1, W=1
    out = normalise_to_nchw(batch, 1 / 255, (0.5, 0.0, 0.1), (0.5, 1.0, 0.1))
    assert out.shape == (1, 3, 1, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out.ravel(), [1.0, 0.0, 1.0], atol=1e-6)
