"""The segmentation network's shape contract and its loss."""

from __future__ import annotations

import torch

from training.unet import LiteUNet, dice_bce_loss


def test_lite_unet_returns_one_logit_per_input_pixel_at_any_multiple_of_32() -> None:
    model = LiteUNet("lite0", (16, 16, 16), dropout=0.0, pretrained=False).eval()
    with torch.no_grad():
        for size in ((64, 64), (64, 96)):
            assert model(torch.zeros(2, 3, *size)).shape == (2, 1, *size)


def test_dice_bce_loss_falls_as_the_prediction_matches_the_mask() -> None:
    target = torch.zeros(1, 1, 8, 8)
    target[..., 2:6, 2:6] = 1.0
    right = (target * 2 - 1) * 8  # confident and correct
    wrong = -right
    unsure = torch.zeros_like(target)
    assert dice_bce_loss(right, target) < 0.05
    assert (
        dice_bce_loss(right, target) < dice_bce_loss(unsure, target) < dice_bce_loss(wrong, target)
    )
