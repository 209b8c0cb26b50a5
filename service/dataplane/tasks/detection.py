"""Detection post-processing: score threshold and class-aware non-maximum suppression."""

from __future__ import annotations

import numpy as np


def box_iou(box_xyxy: np.ndarray, boxes_xyxy: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box against (N, 4) boxes."""
    x1 = np.maximum(box_xyxy[0], boxes_xyxy[:, 0])
    y1 = np.maximum(box_xyxy[1], boxes_xyxy[:, 1])
    x2 = np.minimum(box_xyxy[2], boxes_xyxy[:, 2])
    y2 = np.minimum(box_xyxy[3], boxes_xyxy[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box_xyxy[2] - box_xyxy[0]) * (box_xyxy[3] - box_xyxy[1])
    areas = (boxes_xyxy[:, 2] - boxes_xyxy[:, 0]) * (boxes_xyxy[:, 3] - boxes_xyxy[:, 1])
    union = area + areas - inter
    return np.asarray(np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0))


def non_max_suppression(
    boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int
) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first."""
    order = np.argsort(-scores, kind="stable")
    keep: list[int] = []
    while order.size and len(keep) < max_keep:
        best = int(order[0])
        keep.append(best)
        rest = order[1:]
        order = rest[box_iou(boxes_xyxy[best], boxes_xyxy[rest]) <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def select_detections(
    boxes_xyxy: np.ndarray,
    class_scores: np.ndarray,
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """From one image's (A, 4) boxes and (A, C) scores to kept boxes, scores and class ids.

    Every (anchor, class) pair over the threshold is a candidate; NMS runs per class by shifting
    each class's boxes to its own region of the plane, so one pass serves all classes.
    """
    anchor_ids, class_ids = np.nonzero(class_scores > score_threshold)
    if anchor_ids.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64)
    boxes = boxes_xyxy[anchor_ids].astype(np.float32)
    scores = class_scores[anchor_ids, class_ids].astype(np.float32)
    span = float(np.abs(boxes).max()) + 1.0
    shifted = boxes + (class_ids.astype(np.float32) * span)[:, None]
    keep = non_max_suppression(shifted, scores, iou_threshold, max_detections)
    return boxes[keep], scores[keep], class_ids[keep].astype(np.int64)
