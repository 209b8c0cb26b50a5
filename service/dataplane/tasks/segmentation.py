"""Segmentation post-processing: class masks, their boxes and COCO run-length encoding."""

from __future__ import annotations

from typing import Literal

import numpy as np

from service.dataplane.tasks.classification import sigmoid, softmax


def probabilities(logits_chw: np.ndarray, activation: Literal["sigmoid", "softmax"]) -> np.ndarray:
    """(C, H, W) logits to per-class probabilities of the same shape."""
    if activation == "softmax":
        return softmax(logits_chw, axis=0)
    return sigmoid(logits_chw)


def label_mask(probs_chw: np.ndarray, activation: str, threshold: float) -> np.ndarray:
    """(H, W) mask: 0 background, k for class k (sigmoid: 1..C; softmax: argmax, 0 = bg).

    uint8 while the classes fit (the masks are full-size: a 1080p int64 mask is 16 MB), and one
    sigmoid class needs only its threshold, not an argmax over a single plane.
    """
    dtype = np.uint8 if probs_chw.shape[0] < 255 else np.int32
    if activation == "softmax":
        return np.asarray(probs_chw.argmax(axis=0), dtype=dtype)
    if probs_chw.shape[0] == 1:
        return np.asarray(probs_chw[0] > threshold, dtype=dtype)
    above = (probs_chw > threshold).any(axis=0)
    best = probs_chw.argmax(axis=0).astype(dtype) + dtype(1)
    return np.where(above, best, dtype(0))


def mask_box(mask: np.ndarray) -> list[int] | None:
    """[x1, y1, x2, y2] (exclusive ends, pixels) around the True pixels, or None if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return [int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1]


def rle_encode(mask: np.ndarray) -> dict[str, list[int]]:
    """COCO uncompressed RLE of a (H, W) boolean mask: column-major runs, starting with zeros."""
    flat = np.asarray(mask, dtype=bool).ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0]:
        counts = [0, *counts]
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def rle_decode(rle: dict[str, list[int]]) -> np.ndarray:
    """The inverse of ``rle_encode``."""
    height, width = rle["size"]
    values = np.zeros(height * width, dtype=bool)
    position = 0
    for index, count in enumerate(rle["counts"]):
        if index % 2:
            values[position : position + count] = True
        position += count
    return values.reshape((height, width), order="F")
