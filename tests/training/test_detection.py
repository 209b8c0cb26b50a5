"""The detector trainer's pure helpers (its end-to-end runs are in test_dry_run and test_soup)."""

from __future__ import annotations

import numpy as np

from training.detection import hold_out_hard, repeats_per_frame, small_or_several


def test_repeats_per_frame_draws_several_and_smaller_boxes_more_often() -> None:
    large = np.array([[0, 0, 120, 100]], np.float32)  # 12000 px² >= 96² = 9216
    medium = np.array([[10, 10, 100, 100]], np.float32)  # 8100 px²
    two = np.array([[0, 0, 200, 200], [300, 300, 500, 500]], np.float32)
    empty = np.zeros((0, 4), np.float32)
    frames = [large, medium, two, empty, None]
    assert repeats_per_frame(frames, 3).tolist() == [1, 3, 3, 1, 1]
    assert repeats_per_frame(frames, 1).tolist() == [1, 1, 1, 1, 1]


def test_small_or_several_picks_frames_with_several_or_smaller_boxes() -> None:
    large = np.array([[0, 0, 120, 100]], np.float32)
    medium = np.array([[10, 10, 100, 100]], np.float32)
    two_large = np.array([[0, 0, 200, 200], [300, 300, 500, 500]], np.float32)
    frames = [large, medium, two_large, np.zeros((0, 4), np.float32), None]
    assert small_or_several(frames).tolist() == [False, True, True, False, False]


def test_hold_out_hard_moves_a_seeded_share_of_the_hard_frames_to_validation() -> None:
    large = np.array([[0, 0, 120, 100]], np.float32)
    medium = np.array([[10, 10, 100, 100]], np.float32)
    boxes = {f"e{i}": large for i in range(20)} | {f"h{i}": medium for i in range(10)}
    train, val = [k for k in boxes if k not in ("e0", "h0")], ["e0", "h0"]

    new_train, new_val = hold_out_hard(train, val, boxes, 0.3, seed=5)

    moved = set(new_val) - set(val)
    assert set(val) <= set(new_val)  # the plain split's frames stay held out
    assert len(moved) == 3 and all(k.startswith("h") for k in moved)  # 30 % of the 9 left
    assert set(new_train) == set(train) - moved
    assert hold_out_hard(train, val, boxes, 0.3, seed=5) == (new_train, new_val)
    assert hold_out_hard(train, val, boxes, 0.0, seed=5) == (train, sorted(val))
