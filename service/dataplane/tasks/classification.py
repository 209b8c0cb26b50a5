"""Classification post-processing: scores from logits, top-k labels."""

from __future__ import annotations

from typing import Literal

import numpy as np


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    shifted = logits - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return np.asarray(exp / exp.sum(axis=axis, keepdims=True))


def sigmoid(logits: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-logits)))


def activate(logits: np.ndarray, activation: Literal["softmax", "sigmoid", "none"]) -> np.ndarray:
    if activation == "softmax":
        return softmax(logits)
    if activation == "sigmoid":
        return sigmoid(logits)
    return logits


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and scores of the k best classes of one (C,) score vector, best first."""
    k = min(k, scores.shape[-1])
    # A stable sort keeps equal scores in class order, so results are deterministic.
    order = np.argsort(-scores, kind="stable")[:k]
    return order, scores[order]
