"""``POST /v1/classify``, ``/v1/detect``, ``/v1/segment``: images in, results in image pixels."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import Response
from pydantic_core import to_json

from service.api.deps import ClassifyCall, DetectCall, SegmentCall, holding_place, read_image_blobs
from service.api.errors import ERROR_RESPONSES
from service.dataplane import images
from service.dataplane.images import Served
from service.dataplane.imaging import SUPPORTED_MEDIA_TYPES, encode_mask_png
from service.errors import InvalidParameterError
from service.repository.model_version import ModelVersion
from service.schemas import (
    ClassificationResult,
    DetectionResult,
    ImageResponse,
    SegmentationResult,
)

router = APIRouter(prefix="/v1", tags=["v1"], responses=ERROR_RESPONSES)
CLASSIFY, DETECT, SEGMENT = "/classify", "/detect", "/segment"
PATHS = tuple(router.prefix + path for path in (CLASSIFY, DETECT, SEGMENT))

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


def _response(
    model: ModelVersion,
    served: Served[list[ClassificationResult]]
    | Served[list[DetectionResult]]
    | Served[list[SegmentationResult]],
) -> Response:
    # Serialised here, not validated against ImageResponse again by FastAPI (which documents
    # it): the results are built by our own code, and validation costs every request.
    payload = {
        "model": {"name": model.name, "version": model.version},
        "results": served.results,
        "timing_ms": served.timing_ms,
    }
    return Response(to_json(payload), media_type="application/json")


@router.post(CLASSIFY, response_model=ImageResponse, openapi_extra=IMAGE_BODY)
async def classify_images(
    call: ClassifyCall, top_k: Annotated[int | None, Query(ge=1, le=1000)] = None
) -> Response:
    with holding_place(call.request, call.model):
        blobs = await read_image_blobs(call.request)
        served = await images.classify(call.model, blobs, call.limits, top_k)
    return _response(call.model, served)


@router.post(DETECT, response_model=ImageResponse, openapi_extra=IMAGE_BODY)
async def detect_objects(
    call: DetectCall,
    score_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    iou_threshold: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    max_detections: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> Response:
    with holding_place(call.request, call.model):
        blobs = await read_image_blobs(call.request)
        served = await images.detect(
            call.model, blobs, call.limits, score_threshold, iou_threshold, max_detections
        )
    return _response(call.model, served)


@router.post(
    SEGMENT,
    response_model=ImageResponse,
    responses={200: {"content": {"image/png": {}}}},
    openapi_extra=IMAGE_BODY,
)
async def segment_images_route(
    call: SegmentCall, accept: Annotated[str | None, Header()] = None
) -> Any:
    model = call.model
    wants_png = accept is not None and "image/png" in accept.lower()
    with holding_place(call.request, model):
        blobs = await read_image_blobs(call.request)
        if wants_png and len(blobs) != 1:
            raise InvalidParameterError("a PNG mask is returned for a single image only")
        served = await images.segment(model, blobs, call.limits)
    results, masks = served.results
    if wants_png:
        return Response(
            encode_mask_png(masks[0]),
            media_type="image/png",
            headers={"X-Model": f"{model.name}/{model.version}"},
        )
    return _response(model, Served(results, served.timing_ms))
