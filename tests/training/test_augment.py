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


def test_mosaic_tiles_carry_their_boxes() -> None:
    torch.manual_seed(0)
    size = (64, 80)
    masks = torch.zeros(5, 1, *size)
    boxes = torch.zeros(5, 2, 4)
    valid = torch.zeros(5, 2, dtype=torch.bool)
    for i in range(5):  # one box per image, a different place each; the second slot unused
        x1, y1 = 4 + 8 * i, 2 + 6 * i
        masks[i, :, y1 : y1 + 16, x1 : x1 + 20] = 1.0
        boxes[i, 0] = torch.tensor([x1, y1, x1 + 20, y1 + 16])
        valid[i, 0] = True
    out, out_boxes, out_valid = augment.mosaic(masks, boxes, valid, probability=1.0)
    assert out.shape == masks.shape and out_boxes.shape == (5, 8, 4)
    for i in range(5):
        assert out_valid[i].sum() == 4
        expected = data.boxes_from_mask(out[i, 0].numpy() > 0.5)
        found = out_boxes[i][out_valid[i]].numpy()
        assert len(expected) == 4
        for box in expected:  # every tile's polyp is one of the image's boxes
            assert abs(found - box).max(1).min() <= 1.0
    # the image itself is the top-left tile
    assert torch.allclose(out_boxes[:, 0], boxes[:, 0] * 0.5)


def test_mosaic_with_probability_zero_only_pads_the_boxes() -> None:
    images, boxes = torch.rand(3, 3, 8, 8), torch.rand(3, 2, 4)
    valid = torch.ones(3, 2, dtype=torch.bool)
    out, out_boxes, out_valid = augment.mosaic(images, boxes, valid, probability=0.0)
    assert torch.equal(out, images) and torch.equal(out_boxes[:, :2], boxes)
    assert out_valid[:, :2].all() and not out_valid[:, 2:].any()


def test_compact_keeps_the_valid_boxes_in_order_in_as_few_slots_as_needed() -> None:
    boxes = torch.arange(2 * 5 * 4, dtype=torch.float32).view(2, 5, 4)
    valid = torch.tensor([[False, True, False, True, False], [True, False, False, False, False]])
    out, out_valid = augment.compact(boxes, valid)
    assert out.shape == (2, 2, 4)
    assert torch.equal(out[0], boxes[0, [1, 3]]) and torch.equal(out[1, 0], boxes[1, 0])
    assert out_valid.tolist() == [[True, True], [True, False]]
    none = augment.compact(boxes, torch.zeros_like(valid))
    assert none[0].shape == (2, 1, 4) and not none[1].any()  # one empty slot, never zero
