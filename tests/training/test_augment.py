from __future__ import annotations

import torch

from training import augment, data


def test_warped_boxes_follow_the_warped_mask() -> None:
    torch.manual_seed(0)
    size = (64, 80)
    mask = torch.zeros(4, 1, *size)
    mask[:, :, 20:40, 30:60] = 1.0
    boxes = torch.tensor([[30.0, 20.0, 60.0, 40.0]]).repeat(4, 1, 1)
    valid = torch.ones(4, 1, dtype=torch.bool)
    theta = augment.random_theta(4, torch.device("cpu"), scale=(0.8, 1.2), translate=0.1)
    warped = augment.warp(mask, theta, size, mode="nearest")
    out, ok = augment.warp_boxes(boxes, valid, theta, size, size)
    for i in range(4):
        assert ok[i, 0]
        expected = data.boxes_from_mask(warped[i, 0].numpy() > 0.5)[0]
        assert torch.allclose(out[i, 0], torch.from_numpy(expected), atol=1.5)


def test_crop_theta_cuts_the_named_box() -> None:
    image = torch.arange(16.0).view(1, 1, 4, 4)
    theta = augment.crop_theta(torch.tensor([[0.0, 0.0, 1.0, 1.0]]))  # bottom-right quarter
    crop = augment.warp(image, theta, (2, 2), mode="nearest")
    assert crop.flatten().tolist() == [10.0, 11.0, 14.0, 15.0]


def test_color_jitter_stays_in_range() -> None:
    x = torch.rand(3, 3, 8, 8)
    y = augment.color_jitter(x, strength=0.5)
    assert y.shape == x.shape and y.min() >= 0 and y.max() <= 1
