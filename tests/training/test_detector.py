"""The detector's loss target (its network is exercised end to end by test_dry_run)."""

from __future__ import annotations

import torch

from training.detector import per_object_normalised


def test_per_object_normalised_gives_each_objects_best_grid_point_a_target_of_one() -> None:
    iou = torch.tensor([[0.3, 0.6, 0.2, 0.5, 0.7], [0.4, 0.1, 0.0, 0.0, 0.9]])
    positive = torch.tensor([[True, True, True, True, False], [True, True, False, False, False]])
    owner = torch.tensor([[0, 0, 1, 1, 0], [0, 0, 0, 0, 0]])  # grid point -> its object
    target = per_object_normalised(iou, positive, owner)
    # image 0: object 0's best is 0.6 (the 0.7 is a negative); object 1's best is 0.5
    expected = torch.tensor([[0.5, 1.0, 0.4, 1.0, 0.0], [1.0, 0.25, 0.0, 0.0, 0.0]])
    assert torch.allclose(target, expected)
