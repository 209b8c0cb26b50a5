"""The detector's grid and loss (its training is exercised end to end by test_dry_run)."""

from __future__ import annotations

import torch

from training.detector import STRIDES, Detector, assign, detection_loss


def test_the_grid_covers_every_level_and_decodes_to_input_pixels() -> None:
    model = Detector(64, "lite0", neck=16, dropout=0.0, pretrained=False).eval()
    assert model.centres.shape[0] == sum((64 // s) ** 2 for s in STRIDES)
    with torch.no_grad():
        boxes, scores = model(torch.zeros(2, 3, 64, 64))
    assert boxes.shape == (2, model.centres.shape[0], 4) and scores.shape[-1] == 1
    # a zero regression is a box of one stride to each side of its grid point
    one_stride = model.decode(torch.zeros(1, model.centres.shape[0], 4))[0]
    assert torch.allclose(one_stride[:, 2] - one_stride[:, 0], 2 * model.strides[:, 0])


def test_assign_takes_grid_points_inside_a_box_near_its_centre() -> None:
    model = Detector(64, "lite0", neck=16, dropout=0.0, pretrained=False)
    boxes = torch.tensor([[[8.0, 8.0, 40.0, 40.0]]])
    positive, target, _ = assign(model, boxes, torch.ones(1, 1, dtype=torch.bool))
    centres = model.centres[positive[0]]
    assert len(centres) > 0
    assert ((centres > 8.0) & (centres < 40.0)).all()
    assert torch.equal(target[0, positive[0]], boxes[0, [0] * len(centres)])


def test_a_few_steps_on_one_batch_lower_the_detection_loss() -> None:
    torch.manual_seed(0)
    # eval mode: BatchNorm's running statistics, so only the weights move
    model = Detector(64, "lite0", neck=16, dropout=0.0, pretrained=False).eval()
    images = torch.randn(2, 3, 64, 64)
    boxes = torch.tensor([[[8.0, 8.0, 40.0, 40.0]], [[20.0, 10.0, 60.0, 30.0]]])
    valid = torch.ones(2, 1, dtype=torch.bool)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(15):
        loss = detection_loss(model, images, boxes, valid)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
