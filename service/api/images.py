"""``POST /v1/classify``, ``/v1/detect``, ``/v1/segment``: images in, results in image pixels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import numpy as np
from anyio import to_thread
from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic_core import to_json

from service.api.deps import (
    ClassifyCall,
    DetectCall,
    ImageCall,
    SegmentCall,
    holding_place,
    read_image_blobs,
)
from service.api.errors import ERROR_RESPONSES
from service.batching import RunBatch
from service.errors import InvalidParameterError
from service.imaging import SUPPORTED_MEDIA_TYPES, OpenedImage, encode_mask_png, open_image
from service.loading import ModelVersion
from service.predict import StageTimer, classify, complete, detect, infer, prepare_batch
from service.predict import segment as segment_images
from service.schemas import ImageResponse
from service.tasks.geometry import Placement

R = TypeVar("R")

router = APIRouter(prefix="/v1", tags=["v1"], responses=ERROR_RESPONSES)

_BINARY = {"schema": {"type": "string", "format": "binary"}}
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            **{media_type: _BINARY for media_type in sorted(SUPPORTED_MEDIA_TYPES)},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"image": {"type": "array", "items": _BINARY}},
                    "required": ["image"],
                }
            },
        },
    }
}


async def _serve(
    call: ImageCall,
    postprocess: Callable[[dict[str, np.ndarray], list[Placement]], R],
    *,
    postprocess_in_thread: bool = False,
    check_images: Callable[[list[bytes]], None] | None = None,
) -> tuple[R, StageTimer]:
    """Hold one of the model's admission places, then read, decode, infer and post-process the
    request's images; a request beyond the limit is refused (503) before its body is read."""
    with holding_place(call.request, call.model):
        blobs = await read_image_blobs(call.request)
        if check_images is not None:
            check_images(blobs)
        # headers only: format and per-image limits are checked, and the pixels are known,
        # before any decoding
        images = [open_image(blob, max_pixels=call.max_pixels) for blob in blobs]
        pixels = sum(image.width * image.height for image in images)
        # it waits for room no longer than the model's deadline for the work itself
        assert call.model.batcher is not None
        async with call.pixels.hold(pixels, call.model.batcher.config.timeout_ms / 1000.0):
            return await _run(call, images, postprocess, postprocess_in_thread)


async def _run(
    call: ImageCall,
    images: list[OpenedImage],
    postprocess: Callable[[dict[str, np.ndarray], list[Placement]], R],
    postprocess_in_thread: bool,
) -> tuple[R, StageTimer]:
    """A request alone with an idle model does all three stages in one inference thread, as the
    in-process loop would (one thread round trip, not three). Otherwise decoding runs in a
    decode thread while other requests' batches run, and the images join the model's batches."""
    model = call.model
    assert model.manifest is not None and model.batcher is not None
    timer = StageTimer()
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
            return await batcher.run_alone(whole), timer
        except Exception as exc:
            # As on the other path: a failed inference counts, a bad image (4xx) does not.
            if getattr(exc, "status_code", 500) >= 500:
                batcher.stats.fail.add(timer.elapsed())
            raise
    batch, placements = await to_thread.run_sync(
        prepare_batch, model, images, timer, limiter=call.decoders
    )
    outputs = await infer(model, {input_name: batch}, timer)
    with timer.stage("postprocess"):
        if postprocess_in_thread:
            return await to_thread.run_sync(postprocess, outputs, placements), timer
        return postprocess(outputs, placements), timer


def _response(model: ModelVersion, results: list[Any], timer: StageTimer) -> Response:
    # Serialised here, not validated against ImageResponse again by FastAPI (which documents
    # it): the results are built by our own code, and validation costs every request.
    payload = {
        "model": {"name": model.name, "version": model.version},
        "results": results,
        "timing_ms": complete(model, timer),
    }
    return Response(to_json(payload), media_type="application/json")


def _single_image(blobs: list[bytes]) -> None:
    if len(blobs) != 1:
        raise InvalidParameterError("a PNG mask is returned for a single image only")


@router.post("/classify", response_model=ImageResponse, openapi_extra=IMAGE_BODY)
async def classify_images(
    call: ClassifyCall, top_k: Annotated[int | None, Query(ge=1, le=1000)] = None
) -> Response:
    model = call.model
    assert model.manifest is not None
    k = top_k or model.manifest.defaults.top_k
    results, timer = await _serve(call, lambda outputs, _: classify(model, outputs, k))
    return _response(model, results, timer)


@router.post("/detect", response_model=ImageResponse, openapi_extra=IMAGE_BODY)
async def detect_objects(
    call: DetectCall,
    score_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    iou_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    max_detections: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Response:
    model = call.model
    assert model.manifest is not None
    defaults = model.manifest.defaults
    results, timer = await _serve(
        call,
        lambda outputs, placements: detect(
            model,
            outputs,
            placements,
            defaults.score_threshold if score_threshold is None else score_threshold,
            defaults.iou_threshold if iou_threshold is None else iou_threshold,
            max_detections or defaults.max_detections,
        ),
    )
    return _response(model, results, timer)


@router.post(
    "/segment",
    response_model=ImageResponse,
    responses={200: {"content": {"image/png": {}}}},
    openapi_extra=IMAGE_BODY,
)
async def segment_images_route(
    call: SegmentCall, accept: Annotated[str | None, Header()] = None
) -> Any:
    model = call.model
    wants_png = accept is not None and "image/png" in accept.lower()
    # Post-processing resizes the masks to the image: too long for the event loop.
    (results, masks), timer = await _serve(
        call,
        lambda outputs, placements: segment_images(model, outputs, placements),
        postprocess_in_thread=True,
        check_images=_single_image if wants_png else None,
    )
    if wants_png:
        complete(model, timer)
        return Response(
            encode_mask_png(masks[0]),
            media_type="image/png",
            headers={"X-Model": f"{model.name}/{model.version}"},
        )
    return _response(model, results, timer)
