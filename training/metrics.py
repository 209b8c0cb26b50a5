"""Evaluation metrics in numpy, one function per figure the model cards report."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def dice_iou(pred: np.ndarray, gt: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks; both empty counts as a perfect match."""
    inter = float(np.logical_and(pred, gt).sum())
    total = float(pred.sum() + gt.sum())
    union = total - inter
    if total == 0:
        return 1.0, 1.0
    return 2.0 * inter / total, inter / union


def box_iou(a_xyxy: np.ndarray, b_xyxy: np.ndarray) -> np.ndarray:
    """Pairwise IoU [len(a), len(b)]."""
    a = a_xyxy[:, None, :]
    b = b_xyxy[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)


def nms(boxes_xyxy: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first."""
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        ious = box_iou(boxes_xyxy[i : i + 1], boxes_xyxy[order[1:]])[0]
        order = order[1:][ious <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def _match(dets, gts, iou_threshold):
    """Per detection (score, is_true_positive) over all images, greedy by score per image, and
    per image which of its boxes were found."""
    records, found = [], []
    for (boxes, scores), gt in zip(dets, gts, strict=True):
        order = np.argsort(-scores, kind="stable")
        used = np.zeros(len(gt), dtype=bool)
        ious = box_iou(boxes, gt) if len(gt) and len(boxes) else np.zeros((len(boxes), len(gt)))
        for i in order:
            j = int(np.argmax(ious[i])) if len(gt) else -1
            hit = j >= 0 and ious[i, j] >= iou_threshold and not used[j]
            if hit:
                used[j] = True
            records.append((float(scores[i]), hit))
        found.append(used)
    return records, found


def _above(dets, score_threshold):
    """The detections scoring at least ``score_threshold``."""
    return [(b[s >= score_threshold], s[s >= score_threshold]) for b, s in dets]


def coco_ap(
    dets: Sequence[tuple[np.ndarray, np.ndarray]], gts: Sequence[np.ndarray]
) -> tuple[float, float]:
    """COCO's AP@[0.5:0.95] and AP@0.5 from pycocotools' own evaluator (one category, every
    area, up to 100 detections per image, 101-point interpolation); ``dets`` are (boxes xyxy,
    scores) per image, ``gts`` boxes xyxy per image."""

    def xywh(box: np.ndarray) -> list[float]:
        x1, y1, x2, y2 = (float(v) for v in box)
        return [x1, y1, x2 - x1, y2 - y1]

    annotations = []
    for i, boxes in enumerate(gts):
        for b in boxes:
            area = float((b[2] - b[0]) * (b[3] - b[1]))
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": i,
                    "category_id": 1,
                    "bbox": xywh(b),
                    "area": area,
                    "iscrowd": 0,
                }
            )
    results = [
        {"image_id": i, "category_id": 1, "bbox": xywh(b), "score": float(s)}
        for i, (boxes, scores) in enumerate(dets)
        for b, s in zip(boxes, scores, strict=True)
    ]
    if not annotations:
        return float("nan"), float("nan")
    if not results:
        return 0.0, 0.0
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        truth = COCO()
        truth.dataset = {
            "images": [{"id": i} for i in range(len(gts))],
            "annotations": annotations,
            "categories": [{"id": 1, "name": "object"}],
        }
        truth.createIndex()
        evaluator = COCOeval(truth, truth.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return float(evaluator.stats[0]), float(evaluator.stats[1])


def precision_recall_at(
    dets: Sequence[tuple[np.ndarray, np.ndarray]],
    gts: Sequence[np.ndarray],
    score_threshold: float,
    iou_threshold: float = 0.5,
) -> tuple[float, float]:
    records = _match(_above(dets, score_threshold), gts, iou_threshold)[0]
    tp = sum(r[1] for r in records)
    n_gt = sum(len(g) for g in gts)
    precision = tp / len(records) if records else 0.0
    return float(precision), float(tp / n_gt if n_gt else 1.0)


# COCO's object sizes, by box area in the original image's pixels
AREA_RANGES = {"small": (0.0, 32.0**2), "medium": (32.0**2, 96.0**2), "large": (96.0**2, np.inf)}


def recall_by_size(
    dets: Sequence[tuple[np.ndarray, np.ndarray]],
    gts: Sequence[np.ndarray],
    score_threshold: float,
    iou_threshold: float = 0.5,
) -> dict[str, tuple[float, int]]:
    """Recall at ``score_threshold`` and the number of boxes, for each of COCO's size ranges that
    has any: where a detector's misses are."""
    found = np.concatenate(_match(_above(dets, score_threshold), gts, iou_threshold)[1])
    boxes = np.concatenate([np.asarray(g, np.float64).reshape(-1, 4) for g in gts])
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    out = {}
    for name, (lo, hi) in AREA_RANGES.items():
        in_range = (area >= lo) & (area < hi)
        if in_range.any():
            out[name] = (float(found[in_range].mean()), int(in_range.sum()))
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic (ties count half)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels).astype(bool)
    pos, neg = scores[labels], scores[~labels]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


def binary_stats(pred: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred, labels = np.asarray(pred).astype(bool), np.asarray(labels).astype(bool)
    tp, tn = float((pred & labels).sum()), float((~pred & ~labels).sum())
    return {
        "accuracy": (tp + tn) / len(labels),
        "sensitivity": tp / max(labels.sum(), 1),
        "specificity": tn / max((~labels).sum(), 1),
    }


def mase_scale(y_train: np.ndarray, season: int) -> float:
    """Mean absolute error of the in-sample seasonal naive forecast with lag ``season``."""
    return float(np.mean(np.abs(y_train[season:] - y_train[:-season])))


def forecast_errors(y_true: np.ndarray, y_pred: np.ndarray, scale: float) -> dict[str, float]:
    err = y_true - y_pred
    denom = np.abs(y_true) + np.abs(y_pred)
    smape = 200.0 * np.mean(np.where(denom > 0, np.abs(err) / np.maximum(denom, 1e-12), 0.0))
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "mase": float(np.mean(np.abs(err)) / scale),
        "smape": float(smape),
    }


def pinball(y_true: np.ndarray, y_quantile: np.ndarray, q: float) -> float:
    diff = y_true - y_quantile
    return float(np.mean(np.maximum(q * diff, (q - 1.0) * diff)))
