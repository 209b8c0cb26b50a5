"""The detector's loss (its network is exercised end to end by test_dry_run)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from training.detector import Detector, detection_loss, mask_loss, per_object_normalised


def test_per_object_normalised_gives_each_objects_best_grid_point_a_target_of_one() -> None:
    iou = torch.tensor([[0.3, 0.6, 0.2, 0.5, 0.7], [0.4, 0.1, 0.0, 0.0, 0.9]])
    positive = torch.tensor([[True, True, True, True, False], [True, True, False, False, False]])
    owner = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 0, 0, 0]])  # grid point -> its object
    target = per_object_normalised(iou, positive, owner, n_boxes=2)
    # image 0: object 0's best is 0.6 (the 0.7 is a negative); object 1's best is 0.5
    expected = torch.tensor([[0.5, 1.0, 0.4, 1.0, 0.0], [1.0, 0.25, 0.0, 0.0, 0.0]])
    assert torch.allclose(target, expected)


def test_mask_loss_scores_each_stride_8_cell_against_its_share_of_polyp_pixels() -> None:
    masks = torch.zeros(1, 1, 16, 16)
    masks[..., :12] = 1.0  # the left cells are all polyp, the right ones half
    head = nn.Conv2d(4, 1, 1)
    nn.init.zeros_(head.weight)
    nn.init.constant_(head.bias, 0.3)
    got = mask_loss(head, torch.zeros(1, 4, 2, 2), masks)
    share = torch.tensor([[[[1.0, 0.5], [1.0, 0.5]]]])
    assert torch.allclose(
        got, F.binary_cross_entropy_with_logits(torch.full_like(share, 0.3), share)
    )


def test_detection_loss_adds_the_weighted_mask_loss_only_when_given_masks() -> None:
    torch.manual_seed(0)
    model = Detector(64, (8, 8, 16, 16, 16), neck=16, dropout=0.0).eval()
    head = nn.Conv2d(16, 1, 1)
    images = torch.randn(2, 3, 64, 64)
    boxes = torch.tensor([[[8.0, 8.0, 40.0, 40.0]], [[20.0, 10.0, 60.0, 30.0]]])
    valid = torch.ones(2, 1, dtype=torch.bool)
    masks = torch.zeros(2, 1, 64, 64)
    masks[0, :, 8:40, 8:40] = 1.0
    with torch.no_grad():
        plain = detection_loss(model, images, boxes, valid)
        no_masks = detection_loss(model, images, boxes, valid, mask_head=head, mask_weight=0.5)
        with_masks = detection_loss(
            model, images, boxes, valid, mask_head=head, masks=masks, mask_weight=0.5
        )
        aux = mask_loss(head, model.pyramid(images)[0], masks)
    assert torch.allclose(no_masks, plain)
    assert torch.allclose(with_masks, plain + 0.5 * aux)
    assert aux > 0
