"""The detector trainer's pure helpers (its end-to-end runs are in test_dry_run)."""

from __future__ import annotations

import numpy as np

from training.detection import small_or_several


def test_small_or_several_picks_frames_with_several_or_smaller_boxes() -> None:
    large = np.array([[0, 0, 120, 100]], np.float32)
    medium = np.array([[10, 10, 100, 100]], np.float32)
    two_large = np.array([[0, 0, 200, 200], [300, 300, 500, 500]], np.float32)
    frames = [large, medium, two_large, np.zeros((0, 4), np.float32), None]
    assert small_or_several(frames).tolist() == [False, True, True, False, False]
