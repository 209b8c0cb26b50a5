"""Crop labels from the mask's cover, for the fixed (evaluation) and random (training) crops."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from training import data
from training.crops import NEGATIVE_COVER, POSITIVE_COVER, crop_label, fixed_crops, random_crops


def test_crop_label_leaves_the_ambiguous_band_out() -> None:
    assert crop_label(POSITIVE_COVER) == 1 and crop_label(0.9) == 1
    assert crop_label(NEGATIVE_COVER) == 0 and crop_label(0.0) == 0
    assert crop_label((POSITIVE_COVER + NEGATIVE_COVER) / 2) is None


def test_random_crops_take_their_label_from_the_warped_mask() -> None:
    frames = torch.full((2, 32, 32, 3), 128, dtype=torch.uint8)
    masks = torch.zeros(2, 1, 32, 32)
    masks[0] = 1.0  # frame 0 is all polyp, frame 1 has none
    boxes = torch.tensor([[-1.0, -1.0, 1.0, 1.0], [-0.5, -0.5, 0.5, 0.5]])
    generator = torch.Generator().manual_seed(0)
    x, labels = random_crops(frames, masks, boxes, 64, 16, generator=generator)
    assert x.shape == (64, 3, 16, 16)
    # every crop lies inside its frame: all polyp on frame 0, none on frame 1
    generator = torch.Generator().manual_seed(0)
    pick = torch.randint(2, (64,), generator=generator)
    assert torch.equal(labels, torch.where(pick == 0, 1, 0))


def test_fixed_crops_are_seeded_and_labelled_by_cover(data_root: Path) -> None:
    samples = data.kvasir_samples(data_root / "kvasir-seg", "trainval")[:4]
    crops, labels = fixed_crops(samples, 2, seed=3, size=24)
    again, labels_again = fixed_crops(samples, 2, seed=3, size=24)
    assert crops.shape[1:] == (24, 24, 3) and crops.dtype == np.uint8
    assert np.array_equal(crops, again) and np.array_equal(labels, labels_again)
    assert set(labels.tolist()) == {0, 1}
    assert max(np.bincount(labels)) <= 2 * len(samples)
