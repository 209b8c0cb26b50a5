"""Polyp / no-polyp crops of Kvasir-SEG frames, labelled by how much of the crop the mask covers.

Kvasir-SEG has no polyp-free frames, so the classifier's two classes are crops: ``polyp`` when
the mask covers at least POSITIVE_COVER of it, ``no_polyp`` when it covers at most
NEGATIVE_COVER, and left out in between. Crops span CROP_RANGE of the frame's width and height.
"""

from __future__ import annotations

import numpy as np
import torch

from training import augment, data

POSITIVE_COVER = 0.2
NEGATIVE_COVER = 0.005
CROP_RANGE = (0.2, 0.6)


def crop_label(cover: float) -> int | None:
    if cover >= POSITIVE_COVER:
        return 1
    if cover <= NEGATIVE_COVER:
        return 0
    return None


def fixed_crops(samples: list[data.Sample], per_class: int, seed: int, size: int):
    """A seeded crop set cut from the original frames: up to ``per_class`` crops of each class per
    frame. Returns float32 inputs-to-be (uint8 [K, size, size, 3]) and labels [K]."""
    rng = np.random.default_rng(seed)
    crops, labels = [], []
    for sample in samples:
        image, mask = data.read_image(sample.image_path), data.read_mask(sample.mask_path)
        h, w = mask.shape
        found = {0: 0, 1: 0}
        ys, xs = np.nonzero(mask)
        for attempt in range(60):
            cw, ch = rng.uniform(*CROP_RANGE, size=2) * (w, h)
            if attempt % 2 and len(xs):  # every other try aims at the polyp
                i = rng.integers(len(xs))
                cx, cy = xs[i] + rng.uniform(-0.3, 0.3) * cw, ys[i] + rng.uniform(-0.3, 0.3) * ch
            else:
                cx, cy = rng.uniform(0, w), rng.uniform(0, h)
            x1 = int(np.clip(cx - cw / 2, 0, w - cw))
            y1 = int(np.clip(cy - ch / 2, 0, h - ch))
            x2, y2 = x1 + max(int(cw), 2), y1 + max(int(ch), 2)
            label = crop_label(float(mask[y1:y2, x1:x2].mean()))
            if label is None or found[label] >= per_class:
                continue
            found[label] += 1
            crops.append(data.resize_image(image[y1:y2, x1:x2], (size, size)))
            labels.append(label)
            if min(found.values()) >= per_class:
                break
    return np.stack(crops), np.asarray(labels, np.int64)


def random_crops(images_u8, masks, boxes, n: int, size: int, generator=None):
    """``n`` random crops from a batch of frames held on the device, with their cover-derived
    labels (-1: ambiguous). Half of them are aimed at a polyp box."""
    device = images_u8.device
    pick = torch.randint(len(images_u8), (n,), device=device, generator=generator)
    r = torch.rand(n, 6, device=device, generator=generator)
    half = CROP_RANGE[0] + (CROP_RANGE[1] - CROP_RANGE[0]) * r[:, :2]  # half-size in [-1, 1] units
    box = boxes[pick]  # normalised [-1, 1] xyxy of the frame's first polyp box
    aim = torch.stack(
        [
            box[:, 0] + (box[:, 2] - box[:, 0]) * r[:, 2],
            box[:, 1] + (box[:, 3] - box[:, 1]) * r[:, 3],
        ],
        1,
    )
    anywhere = r[:, 4:6] * 2 - 1
    centre = torch.where(
        (torch.rand(n, 1, device=device, generator=generator) < 0.5), aim, anywhere
    )
    centre = torch.maximum(torch.minimum(centre, 1 - half), -1 + half)
    crop_boxes = torch.cat([centre - half, centre + half], 1)
    theta = augment.crop_theta(crop_boxes)
    flip = torch.rand(n, 2, device=device, generator=generator) < 0.5
    theta[:, 0, 0] = torch.where(flip[:, 0], -theta[:, 0, 0], theta[:, 0, 0])
    theta[:, 1, 1] = torch.where(flip[:, 1], -theta[:, 1, 1], theta[:, 1, 1])
    x = images_u8[pick].permute(0, 3, 1, 2).float() / 255.0
    x = augment.color_jitter(augment.warp(x, theta, (size, size)))
    cover = augment.warp(masks[pick], theta, (size, size)).mean((1, 2, 3))
    labels = torch.full((n,), -1, dtype=torch.long, device=device)
    labels[cover >= POSITIVE_COVER] = 1
    labels[cover <= NEGATIVE_COVER] = 0
    return x, labels
