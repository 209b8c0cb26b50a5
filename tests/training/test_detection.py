"""The detector trainer's pure helpers (its end-to-end runs are in test_dry_run and test_soup)."""

from __future__ import annotations

import numpy as np

from training.detection import repeats_per_frame


def test_repeats_per_frame_draws_several_and_smaller_boxes_more_often() -> None:
    large = np.array([[0, 0, 120, 100]], np.float32)  # 12000 px² >= 96² = 9216
    medium = np.array([[10, 10, 100, 100]], np.float32)  # 8100 px²
    two = np.array([[0, 0, 200, 200], [300, 300, 500, 500]], np.float32)
    empty = np.zeros((0, 4), np.float32)
    frames = [large, medium, two, empty, None]
    assert repeats_per_frame(frames, 3).tolist() == [1, 3, 3, 1, 1]
    assert repeats_per_frame(frames, 1).tolist() == [1, 1, 1, 1, 1]
