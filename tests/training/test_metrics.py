from __future__ import annotations

import numpy as np
import pytest

from training import metrics


def test_dice_iou_golden() -> None:
    pred = np.zeros((4, 4), bool)
    gt = np.zeros((4, 4), bool)
    pred[:2, :2] = True  # 4 pixels
    gt[:2, :] = True  # 8 pixels, 4 shared
    dice, iou = metrics.dice_iou(pred, gt)
    assert dice == pytest.approx(2 * 4 / 12)
    assert iou == pytest.approx(4 / 8)
    assert metrics.dice_iou(np.zeros((2, 2), bool), np.zeros((2, 2), bool)) == (1.0, 1.0)
    assert metrics.dice_iou(pred, np.zeros((4, 4), bool)) == (0.0, 0.0)


def test_box_iou_and_nms() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [20, 20, 30, 30]], np.float32)
    iou = metrics.box_iou(a, a)
    assert iou[0, 1] == pytest.approx(0.5) and iou[0, 2] == 0.0
    keep = metrics.nms(a, np.array([0.9, 0.8, 0.7]), iou_threshold=0.45)
    assert keep.tolist() == [0, 2]
    assert metrics.nms(a, np.array([0.9, 0.8, 0.7]), iou_threshold=0.6).tolist() == [0, 1, 2]


def test_coco_ap_golden() -> None:
    """pycocotools' AP: precision interpolated at 101 recall points, at IoU 0.5 and averaged
    over 0.5:0.95 (equal here: every hit is exact)."""
    gt = [np.array([[0, 0, 10, 10]], np.float32), np.array([[0, 0, 10, 10]], np.float32)]
    hit = np.array([[0, 0, 10, 10]], np.float32)
    miss = np.array([[50, 50, 60, 60]], np.float32)
    # ranked: hit (0.9), miss (0.8), hit (0.7): precision 1 at recall .5, 2/3 at recall 1
    dets = [
        (np.concatenate([hit, miss]), np.array([0.9, 0.8])),
        (hit, np.array([0.7])),
    ]
    expected = (51 * 1.0 + 50 * 2 / 3) / 101  # recall 0..0.5 at precision 1, then 2/3
    assert metrics.coco_ap(dets, gt) == pytest.approx((expected, expected))
    perfect = [(hit, np.array([0.9])), (hit, np.array([0.8]))]
    assert metrics.coco_ap(perfect, gt) == pytest.approx((1.0, 1.0))
    assert metrics.coco_ap([(miss, np.array([0.9]))] * 2, gt) == (0.0, 0.0)
    # a duplicate of a matched box is a false positive
    dup = [(np.concatenate([hit, hit]), np.array([0.9, 0.8])), (hit, np.array([0.7]))]
    assert metrics.coco_ap(dup, gt) == pytest.approx((expected, expected))
    # a box of IoU 0.6 counts at 0.5 but not from 0.65 up: 3 of the 10 thresholds
    shifted = np.array([[0, 0, 10, 6]], np.float32)
    ap, ap50 = metrics.coco_ap([(shifted, np.array([0.9])), (shifted, np.array([0.9]))], gt)
    assert ap50 == pytest.approx(1.0) and ap == pytest.approx(0.3)


def test_precision_recall_at_threshold() -> None:
    gt = [np.array([[0, 0, 10, 10]], np.float32), np.array([[0, 0, 10, 10]], np.float32)]
    box = np.array([[0, 0, 10, 10]], np.float32)
    dets = [(box, np.array([0.9])), (box, np.array([0.3]))]
    assert metrics.precision_recall_at(dets, gt, 0.4) == (1.0, 0.5)
    assert metrics.precision_recall_at(dets, gt, 0.2) == (1.0, 1.0)


def test_recall_by_size_splits_the_boxes_by_coco_area() -> None:
    small, medium = [0, 0, 20, 20], [100, 100, 160, 160]  # 400 and 3600 px²
    large = [0, 200, 120, 320]  # 14400 px²
    gts = [np.array([small, medium], np.float32), np.array([large, small], np.float32)]
    found = np.array([medium, large, small], np.float32)
    dets = [(found[:1], np.array([0.9])), (found[1:], np.array([0.8, 0.3]))]
    # the second image's small box is found only below the threshold
    by_size = metrics.recall_by_size(dets, gts, 0.4)
    assert by_size == {"small": (0.0, 2), "medium": (1.0, 1), "large": (1.0, 1)}
    assert metrics.recall_by_size(dets, gts, 0.2)["small"] == (0.5, 2)
    # a range with no boxes is left out rather than reported as 0 or NaN
    assert set(metrics.recall_by_size(dets[:1], gts[:1], 0.4)) == {"small", "medium"}


def test_roc_auc_golden() -> None:
    assert metrics.roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert metrics.roc_auc(np.array([0.5, 0.5]), np.array([0, 1])) == 0.5
    stats = metrics.binary_stats(np.array([1, 0, 1, 1]), np.array([1, 0, 0, 1]))
    assert stats == {"accuracy": 0.75, "sensitivity": 1.0, "specificity": 0.5}


def test_forecast_errors_and_mase() -> None:
    train = np.array([1.0, 2.0, 4.0, 7.0])
    assert metrics.mase_scale(train, 1) == pytest.approx(2.0)
    errors = metrics.forecast_errors(np.array([10.0, 10.0]), np.array([8.0, 12.0]), 2.0)
    assert errors["mae"] == 2.0 and errors["rmse"] == 2.0 and errors["mase"] == 1.0
    assert errors["smape"] == pytest.approx(100 * (2 / 18 + 2 / 22))
    assert metrics.pinball(np.array([1.0]), np.array([0.0]), 0.9) == pytest.approx(0.9)
