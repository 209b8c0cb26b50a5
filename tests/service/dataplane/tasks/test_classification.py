from __future__ import annotations

import numpy as np

from service.dataplane.tasks.classification import activate, softmax, top_k


def test_softmax_is_stable_and_normalised() -> None:
    probs = softmax(np.array([[1000.0, 1000.0, 999.0]]))
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(), 1.0)
    assert probs[0, 0] == probs[0, 1] > probs[0, 2]


def test_top_k_orders_by_score_with_stable_ties() -> None:
    ids, scores = top_k(np.array([0.1, 0.5, 0.5, 0.2]), 3)
    assert ids.tolist() == [1, 2, 3]
    np.testing.assert_allclose(scores, [0.5, 0.5, 0.2])
    assert top_k(np.array([0.3, 0.7]), 10)[0].tolist() == [1, 0]


def test_activations() -> None:
    np.testing.assert_allclose(activate(np.array([0.0]), "sigmoid"), [0.5])
    np.testing.assert_allclose(activate(np.array([3.0]), "none"), [3.0])
