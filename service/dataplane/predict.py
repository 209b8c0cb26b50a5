"""The data plane: decode, preprocess, run and post-process, for every route and protocol.

Each function is synchronous and CPU-bound; callers run it in a worker thread so the event loop
never blocks. Per-request state lives in locals only; the shared session is read-only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from service.dataplane import imaging
from service.dataplane.tasks import classification, detection, segmentation
from service.dataplane.tasks.geometry import (
    Placement,
    boxes_to_image,
    crop_to_image_region,
    normalise_to_nchw,
    paste_into_input,
    place_image,
)
from service.dataplane.timing import StageTimer
from service.repository.manifest import Manifest, Preprocessing
from service.repository.model_version import ModelVersion
from service.scheduling.batching import Feeds
from service.schemas import (
    ClassificationResult,
    Detection,
    DetectionResult,
    MaskResult,
    RunLength,
    SegmentationResult,
)


@dataclass(frozen=True)
class PreparedImage:
    placement: Placement
    input_rgb: np.ndarray  # (H, W, 3) uint8 in network-input geometry


def prepare_image(opened: imaging.OpenedImage, pre: Preprocessing) -> PreparedImage:
    """Decode one opened image and place it into the network input (letterbox or stretch)."""
    placement = place_image(opened.width, opened.height, pre.size, pre.resize)
    decoded = imaging.load_rgb(opened, (placement.resized_width, placement.resized_height))
    return PreparedImage(placement, paste_into_input(decoded.rgb, placement, pre.pad_value))


def prepare_batch(
    model: ModelVersion, images: list[imaging.OpenedImage], timer: StageTimer
) -> tuple[np.ndarray, list[Placement]]:
    """Decode and place every image (opened, its limits checked: ``imaging.open_image``), then
    one pass to the normalised NCHW batch."""
    manifest = _manifest(model)
    pre = manifest.preprocessing
    assert pre is not None
    with timer.stage("decode"):
        prepared = [prepare_image(image, pre) for image in images]
    with timer.stage("preprocess"):
        batch = normalise_to_nchw(
            np.stack([p.input_rgb for p in prepared]), pre.scale, pre.mean, pre.std
        )
    return batch, [p.placement for p in prepared]


async def infer(model: ModelVersion, feeds: Feeds, timer: StageTimer) -> dict[str, np.ndarray]:
    """Run ``feeds`` through the model's batcher in chunks of its batch size; outputs by name.

    The chunks go in together, so a large request shares batches with others fairly.
    """
    manifest, batcher = _manifest(model), model.batcher
    assert batcher is not None
    rows = next(iter(feeds.values())).shape[0]
    step = batcher.config.max_batch_size if batcher.batchable else rows
    try:
        with timer.stage("inference"):
            parts = await asyncio.gather(
                *(
                    batcher.infer({name: value[i : i + step] for name, value in feeds.items()})
                    for i in range(0, rows, step)
                )
            )
    except Exception:
        batcher.stats.fail.add(timer.elapsed())
        raise
    names = manifest.output_names()
    if len(parts) == 1:
        return dict(zip(names, parts[0], strict=True))
    return {
        name: np.concatenate([part[index] for part in parts]) for index, name in enumerate(names)
    }


def classify(
    model: ModelVersion, outputs: dict[str, np.ndarray], top_k: int
) -> list[ClassificationResult]:
    manifest = _manifest(model)
    assert manifest.classification is not None
    scores = classification.activate(
        outputs[manifest.classification.logits_output], manifest.classification.activation
    )
    results: list[ClassificationResult] = []
    for row in scores:
        ids, values = classification.top_k(row, top_k)
        results.append(
            {
                "labels": [
                    {
                        "label": label_of(manifest.labels, int(i)),
                        "class_id": int(i),
                        "score": round_score(v),
                    }
                    for i, v in zip(ids, values, strict=True)
                ]
            }
        )
    return results


def detect(
    model: ModelVersion,
    outputs: dict[str, np.ndarray],
    placements: list[Placement],
    score_threshold: float,
    iou_threshold: float,
    max_detections: int,
) -> list[DetectionResult]:
    manifest = _manifest(model)
    assert manifest.detection is not None
    all_boxes = outputs[manifest.detection.boxes_output]
    all_scores = outputs[manifest.detection.scores_output]
    results: list[DetectionResult] = []
    for boxes, scores, placement in zip(all_boxes, all_scores, placements, strict=True):
        kept, kept_scores, class_ids = detection.select_detections(
            boxes, scores, score_threshold, iou_threshold, max_detections
        )
        results.append(
            {
                "image": {"width": placement.image_width, "height": placement.image_height},
                "detections": format_detections(
                    manifest.labels, boxes_to_image(kept, placement), kept_scores, class_ids
                ),
            }
        )
    return results


# The precision every detection is reported with, over REST and on the stream: a hundredth of
# a pixel, and scores to five decimals (finer would be noise of the float32 network).
BOX_DECIMALS = 2
SCORE_DECIMALS = 5


def format_detections(
    labels: list[str], boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
) -> list[Detection]:
    """The wire form of detections already in image pixels: what every protocol returns."""
    return [
        {
            "box": round_box(box),
            "score": round_score(score),
            "label": label_of(labels, int(class_id)),
            "class_id": int(class_id),
        }
        for box, score, class_id in zip(boxes_xyxy, scores, class_ids, strict=True)
    ]


def round_box(box_xyxy: np.ndarray | list[float]) -> list[float]:
    return [round(float(c), BOX_DECIMALS) for c in box_xyxy]


def round_score(score: float | np.floating[Any]) -> float:
    return round(float(score), SCORE_DECIMALS)


def label_of(labels: list[str], class_id: int) -> str:
    """The class's label; its number as text when the manifest names fewer classes."""
    return labels[class_id] if class_id < len(labels) else str(class_id)


def segment(
    model: ModelVersion, outputs: dict[str, np.ndarray], placements: list[Placement]
) -> tuple[list[SegmentationResult], list[np.ndarray]]:
    """Per image: the JSON result and the (H, W) label mask at the original size."""
    manifest = _manifest(model)
    decoding = manifest.segmentation
    assert decoding is not None
    results: list[SegmentationResult] = []
    label_masks: list[np.ndarray] = []
    for logits, placement in zip(outputs[decoding.logits_output], placements, strict=True):
        probs = segmentation.probabilities(
            crop_to_image_region(logits, placement), decoding.activation
        )
        full = np.stack(
            [imaging.resize_plane(p, placement.image_width, placement.image_height) for p in probs]
        )
        mask = segmentation.label_mask(full, decoding.activation, decoding.threshold)
        label_masks.append(mask)
        first_class = 1 if decoding.activation == "softmax" else 0
        masks: list[MaskResult] = []
        for class_id in range(first_class, len(manifest.labels)):
            binary = mask == (class_id if decoding.activation == "softmax" else class_id + 1)
            masks.append(
                {
                    "label": label_of(manifest.labels, class_id),
                    "class_id": class_id,
                    "area_fraction": round(float(binary.mean()), 6),
                    "box": segmentation.mask_box(binary),
                    "rle": cast(RunLength, segmentation.rle_encode(binary)),
                }
            )
        results.append(
            {
                "image": {"width": placement.image_width, "height": placement.image_height},
                "masks": masks,
            }
        )
    return results, label_masks


def _manifest(model: ModelVersion) -> Manifest:
    assert model.manifest is not None
    return model.manifest
