from __future__ import annotations

import numpy as np

from service.dataplane.tasks.detection import box_iou, non_max_suppression, select_detections


def test_box_iou_golden() -> None:
    box = np.array([0, 0, 10, 10], np.float32)
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]], np.float32)
    np.testing.assert_allclose(box_iou(box, others), [1.0, 50 / 150, 0.0, 0.0])


def test_nms_golden_case() -> None:
    boxes = np.array(
        [[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9], [51, 50, 61, 60]],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.3], np.float32)
    # 3 (0.95) suppresses 0 (IoU 0.9) and 1; 2 suppresses 4 (IoU 0.82).
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.5, 100), [3, 2])
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.5, 1), [3])
    np.testing.assert_array_equal(non_max_suppression(boxes, scores, 0.95, 100), [3, 0, 1, 2, 4])


def test_select_detections_is_class_aware() -> None:
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [100, 100, 110, 110]], np.float32)
    scores = np.array([[0.9, 0.1], [0.2, 0.8], [0.3, 0.05]], np.float32)
    kept, kept_scores, class_ids = select_detections(boxes, scores, 0.25, 0.45, 10)
    # The same box survives once per class; anchor 2 passes only for class 0.
    pairs = sorted(zip(class_ids.tolist(), [round(float(s), 2) for s in kept_scores], strict=True))
    assert pairs == [(0, 0.3), (0, 0.9), (1, 0.8)]
    assert kept.shape == (3, 4)


def test_select_detections_empty_when_nothing_passes() -> None:
    boxes = np.zeros((4, 4), np.float32)
    kept, scores, classes = select_detections(boxes, np.full((4, 1), 0.1), 0.4, 0.45, 10)
    assert kept.shape == (0, 4) and scores.size == 0 and classes.size == 0
