from __future__ import annotations

import numpy as np

from service.dataplane.tasks.segmentation import (
    label_mask,
    mask_box,
    probabilities,
    rle_decode,
    rle_encode,
)


def test_rle_is_column_major_and_starts_with_zeros() -> None:
    mask = np.array([[0, 1], [1, 1], [0, 0]], bool)  # column-major: 0 1 0 | 1 1 0
    assert rle_encode(mask) == {"size": [3, 2], "counts": [1, 1, 1, 2, 1]}
    starts_on = np.ones((2, 2), bool)
    assert rle_encode(starts_on)["counts"] == [0, 4]
    assert rle_encode(np.zeros((2, 3), bool))["counts"] == [6]


def test_rle_round_trip_random_masks() -> None:
    rng = np.random.default_rng(1)
    for shape in [(1, 1), (7, 13), (64, 48)]:
        mask = rng.random(shape) > 0.6
        np.testing.assert_array_equal(rle_decode(rle_encode(mask)), mask)


def test_mask_box_exclusive_ends_and_empty() -> None:
    mask = np.zeros((10, 20), bool)
    mask[2:5, 3:9] = True
    assert mask_box(mask) == [3, 2, 9, 5]
    assert mask_box(np.zeros((4, 4), bool)) is None


def test_sigmoid_and_softmax_label_masks() -> None:
    logits = np.array([[[-5.0, 5.0]]])  # C=1, H=1, W=2
    probs = probabilities(logits, "sigmoid")
    np.testing.assert_array_equal(label_mask(probs, "sigmoid", 0.5), [[0, 1]])
    three_class = np.array([[[5.0, 0.0]], [[0.0, 0.0]], [[0.0, 9.0]]])
    probs = probabilities(three_class, "softmax")
    np.testing.assert_array_equal(label_mask(probs, "softmax", 0.5), [[0, 2]])
    two_sigmoids = probabilities(np.array([[[-5.0, 1.0, 4.0]], [[-5.0, 3.0, 2.0]]]), "sigmoid")
    mask = label_mask(two_sigmoids, "sigmoid", 0.5)
    np.testing.assert_array_equal(mask, [[0, 2, 1]])
    assert mask.dtype == np.uint8  # full-size masks stay small
