"""Images in, results out: what ``/v1/classify``, ``/v1/detect`` and ``/v1/segment`` call once.

A request's images are opened (headers only: format and per-image limits are checked, and the
pixels are known, before any decoding), wait for room in the decoded-pixel budget, then take one
of two paths:

- alone with an idle model, all three stages (decode, inference, post-processing) run in one
  inference thread, as an in-process loop would: one thread round trip, not three;
- otherwise decoding runs in a decode thread while other requests' batches run, and the images
  join the model's batches.

Either way the request is recorded in the model's statistics (``complete``); a failed inference
counts as a failure, a bad image (a 4xx error) does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Generic, TypeVar

import numpy as np
from anyio import CapacityLimiter, to_thread

from service.dataplane.imaging import OpenedImage, open_image
from service.dataplane.predict import classify as classify_outputs
from service.dataplane.predict import detect as detect_outputs
from service.dataplane.predict import infer, prepare_batch
from service.dataplane.predict import segment as segment_outputs
from service.dataplane.tasks.geometry import Placement
from service.dataplane.timing import StageTimer, complete
from service.errors import PolypServeError
from service.repository.model_version import ModelVersion
from service.scheduling.batching import RunBatch
from service.scheduling.pixel_budget import PixelBudget
from service.schemas import ClassificationResult, DetectionResult, SegmentationResult

R = TypeVar("R")
Postprocess = Callable[[dict[str, np.ndarray], list[Placement]], R]


@dataclass(frozen=True)
class ImageLimits:
    """What a request's images are decoded under: pixels per image, the decode threads, and
    the process-wide decoded-pixel budget."""

    max_pixels: int
    decoders: CapacityLimiter
    pixels: PixelBudget


@dataclass(frozen=True)
class Served(Generic[R]):
    """A request's results and its per-stage timings, already recorded in the statistics."""

    results: R
    timing_ms: dict[str, float]


async def classify(
    model: ModelVersion, blobs: list[bytes], limits: ImageLimits, top_k: int | None = None
) -> Served[list[ClassificationResult]]:
    assert model.manifest is not None
    k = top_k or model.manifest.defaults.top_k

    def postprocess(
        outputs: dict[str, np.ndarray], _: list[Placement]
    ) -> list[ClassificationResult]:
        return classify_outputs(model, outputs, k)

    return await _serve(model, blobs, limits, postprocess)


async def detect(
    model: ModelVersion,
    blobs: list[bytes],
    limits: ImageLimits,
    score_threshold: float | None = None,
    iou_threshold: float | None = None,
    max_detections: int | None = None,
) -> Served[list[DetectionResult]]:
    """Detections in the original images' pixels; unset options take the manifest's defaults."""
    assert model.manifest is not None
    defaults = model.manifest.defaults
    postprocess = partial(
        detect_outputs,
        model,
        score_threshold=defaults.score_threshold if score_threshold is None else score_threshold,
        iou_threshold=defaults.iou_threshold if iou_threshold is None else iou_threshold,
        max_detections=max_detections or defaults.max_detections,
    )
    return await _serve(model, blobs, limits, postprocess)


async def segment(
    model: ModelVersion, blobs: list[bytes], limits: ImageLimits
) -> Served[tuple[list[SegmentationResult], list[np.ndarray]]]:
    """Per image the JSON result, and the (H, W) label masks at the original size."""
    # Post-processing resizes the masks to the image: too long for the event loop.
    return await _serve(model, blobs, limits, partial(segment_outputs, model), in_thread=True)


async def _serve(
    model: ModelVersion,
    blobs: list[bytes],
    limits: ImageLimits,
    postprocess: Postprocess[R],
    in_thread: bool = False,
) -> Served[R]:
    images = [open_image(blob, max_pixels=limits.max_pixels) for blob in blobs]
    pixels = sum(image.width * image.height for image in images)
    assert model.batcher is not None
    # it waits for room no longer than the model's deadline for the work itself
    async with limits.pixels.hold(pixels, model.batcher.config.timeout_ms / 1000.0):
        timer = StageTimer()
        results = await _run(model, images, limits, postprocess, in_thread, timer)
    return Served(results, complete(model, timer))


async def _run(
    model: ModelVersion,
    images: list[OpenedImage],
    limits: ImageLimits,
    postprocess: Postprocess[R],
    in_thread: bool,
    timer: StageTimer,
) -> R:
    assert model.manifest is not None and model.batcher is not None
    input_name, output_names = model.manifest.inputs[0].name, model.manifest.output_names()
    batcher = model.batcher
    if batcher.idle and len(images) <= (batcher.config.max_batch_size if batcher.batchable else 1):

        def whole(run: RunBatch) -> R:
            batch, placements = prepare_batch(model, images, timer)
            with timer.stage("inference"):
                outputs = dict(zip(output_names, run({input_name: batch}), strict=True))
            with timer.stage("postprocess"):
                return postprocess(outputs, placements)

        try:
            return await batcher.run_alone(whole)
        except Exception as exc:
            if _counts_as_failure(exc):
                batcher.stats.fail.add(timer.elapsed())
            raise
    batch, placements = await to_thread.run_sync(
        prepare_batch, model, images, timer, limiter=limits.decoders
    )
    outputs = await infer(model, {input_name: batch}, timer)  # counts its own failures
    with timer.stage("postprocess"):
        if in_thread:
            return await to_thread.run_sync(postprocess, outputs, placements)
        return postprocess(outputs, placements)


def _counts_as_failure(exc: Exception) -> bool:
    """A server-side failure (5xx or unexpected), as opposed to a client's bad input (4xx)."""
    return not (isinstance(exc, PolypServeError) and exc.status_code < 500)
