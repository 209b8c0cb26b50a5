"""Scoring an exported detector the way the service runs it: COCO AP (pycocotools) and
precision/recall at the serving threshold, per split, on real frames; and which frames are the
hard ones, that validation is stratified by and scored on apart."""

from __future__ import annotations

import numpy as np

from service.repository.manifest import Preprocessing
from training import data, metrics


def predict(session, prep: Preprocessing, image: np.ndarray, iou_threshold: float, min_score=1e-3):
    """Boxes (original pixels) and scores after NMS, as the service would return them."""
    x = data.to_input(image, prep.size, prep.mean, prep.std)[None]
    boxes, scores = session.run(None, {session.get_inputs()[0].name: x})
    boxes, scores = boxes[0], scores[0, :, 0]
    keep = scores >= min_score
    boxes, scores = boxes[keep], scores[keep]
    top = np.argsort(-scores)[:300]
    boxes, scores = boxes[top], scores[top]
    kept = metrics.nms(boxes, scores, iou_threshold)[:100]
    h0, w0 = image.shape[:2]
    scale = np.asarray([w0 / prep.size[1], h0 / prep.size[0]] * 2, np.float32)
    return np.clip(boxes[kept] * scale, 0, [w0, h0, w0, h0]), scores[kept]


def evaluate(session, prep, samples, score_threshold: float, iou_threshold: float) -> dict:
    """AP@0.5 and AP@[0.5:0.95] (COCOeval), precision/recall at ``score_threshold``, and that
    recall per COCO object size, against each sample's boxes (Kvasir: the official json;
    CVC-ClinicDB: connected components of the mask)."""

    def one(sample: data.Sample):
        image = data.read_image(sample.image_path)
        gt = (
            sample.boxes
            if sample.boxes is not None
            else data.boxes_from_mask(data.read_mask(sample.mask_path))
        )
        return predict(session, prep, image, iou_threshold), gt

    return score(data.map_threads(one, samples, workers=2), score_threshold)


def score(pairs: list[tuple[tuple[np.ndarray, np.ndarray], np.ndarray]], score_threshold: float):
    """The figures ``evaluate`` reports, from (detections, ground-truth boxes) per image."""
    dets, gts = [p[0] for p in pairs], [p[1] for p in pairs]
    precision, recall = metrics.precision_recall_at(dets, gts, score_threshold)
    by_size = metrics.recall_by_size(dets, gts, score_threshold)
    ap, ap50 = metrics.coco_ap(dets, gts)
    results = {
        "ap50": ap50,
        "ap": ap,
        f"precision@{score_threshold}": precision,
        f"recall@{score_threshold}": recall,
    }
    for size, (size_recall, count) in by_size.items():
        results[f"recall@{score_threshold}_{size}"] = size_recall
        results[f"boxes_{size}"] = count
    return results


def small_or_several(boxes_xyxy: list[np.ndarray | None]) -> np.ndarray:
    """Which frames hold several boxes or one under COCO's "large" (96x96 px, in the frame's own
    pixels): the training set's rarest frames (Kvasir: 66 of 900) and where the evaluation's
    misses are."""
    hard = np.zeros(len(boxes_xyxy), bool)
    for i, boxes in enumerate(boxes_xyxy):
        if boxes is None or len(boxes) == 0:
            continue
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        hard[i] = len(boxes) > 1 or area.min() < 96**2
    return hard
