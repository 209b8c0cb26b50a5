"""``POST /v1/classify``, ``/v1/detect``, ``/v1/segment``: images in, results in image pixels."""

from __future__ import annotations

from typing import Annotated, Any

from anyio import CapacityLimiter, to_thread
from fastapi import APIRouter, Header, Query
from fastapi.responses import Response

from service.api.deps import (
    Classifier,
    DecodersDep,
    Detector,
    ImageBlobs,
    Segmenter,
    SettingsDep,
)
from service.api.errors import ERROR_RESPONSES
from service.config import Settings
from service.errors import InvalidParameterError
from service.imaging import SUPPORTED_MEDIA_TYPES, encode_mask_png
from service.loading import ModelVersion
from service.predict import StageTimer, classify, complete, detect, infer, prepare_batch
from service.predict import segment as segment_images
from service.schemas import ImageResponse
from service.tasks.geometry import Placement

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


async def _infer(
    model: ModelVersion, blobs: list[bytes], settings: Settings, decoders: CapacityLimiter
) -> tuple[dict[str, Any], list[Placement], StageTimer]:
    """Decode in a worker thread, then run through the model's batcher."""
    assert model.manifest is not None
    timer = StageTimer()
    batch, placements = await to_thread.run_sync(
        prepare_batch, model, blobs, settings.max_image_pixels, timer, limiter=decoders
    )
    outputs = await infer(model, {model.manifest.inputs[0].name: batch}, timer)
    return outputs, placements, timer


def _response(model: ModelVersion, results: list[Any], timer: StageTimer) -> dict[str, Any]:
    return {
        "model": {"name": model.name, "version": model.version},
        "results": results,
        "timing_ms": complete(model, timer),
    }


@router.post("/classify", response_model=ImageResponse, openapi_extra=IMAGE_BODY)
async def classify_images(
    chosen: Classifier,
    blobs: ImageBlobs,
    settings: SettingsDep,
    decoders: DecodersDep,
    top_k: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> dict[str, Any]:
    assert chosen.manifest is not None
    outputs, _, timer = await _infer(chosen, blobs, settings, decoders)
    with timer.stage("postprocess"):
        results = classify(chosen, outputs, top_k or chosen.manifest.defaults.top_k)
    return _response(chosen, results, timer)


@router.post("/detect", response_model=ImageResponse, openapi_extra=IMAGE_BODY)
async def detect_objects(
    chosen: Detector,
    blobs: ImageBlobs,
    settings: SettingsDep,
    decoders: DecodersDep,
    score_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    iou_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    max_detections: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> dict[str, Any]:
    assert chosen.manifest is not None
    defaults = chosen.manifest.defaults
    outputs, placements, timer = await _infer(chosen, blobs, settings, decoders)
    with timer.stage("postprocess"):
        results = detect(
            chosen,
            outputs,
            placements,
            defaults.score_threshold if score_threshold is None else score_threshold,
            defaults.iou_threshold if iou_threshold is None else iou_threshold,
            max_detections or defaults.max_detections,
        )
    return _response(chosen, results, timer)


@router.post(
    "/segment",
    response_model=ImageResponse,
    responses={200: {"content": {"image/png": {}}}},
    openapi_extra=IMAGE_BODY,
)
async def segment_images_route(
    chosen: Segmenter,
    blobs: ImageBlobs,
    settings: SettingsDep,
    decoders: DecodersDep,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    wants_png = accept is not None and "image/png" in accept.lower()
    if wants_png and len(blobs) != 1:
        raise InvalidParameterError("a PNG mask is returned for a single image only")
    outputs, placements, timer = await _infer(chosen, blobs, settings, decoders)
    with timer.stage("postprocess"):
        results, masks = await to_thread.run_sync(segment_images, chosen, outputs, placements)
    if wants_png:
        complete(chosen, timer)
        return Response(
            encode_mask_png(masks[0]),
            media_type="image/png",
            headers={"X-Model": f"{chosen.name}/{chosen.version}"},
        )
    return _response(chosen, results, timer)
