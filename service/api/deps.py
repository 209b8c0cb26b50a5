"""Dependencies as named ``Annotated`` aliases, so handlers read as a list of roles.

Every dependency is ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency
in its thread pool, and those hops cost a request about 0.2 ms each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from service.config import Settings
from service.dataplane.images import ImageLimits
from service.dataplane.imaging import SUPPORTED_MEDIA_TYPES
from service.errors import (
    InvalidInputError,
    NotReadyError,
    PayloadTooLargeError,
    PolypServeError,
    UnsupportedMediaTypeError,
)
from service.metrics import ServiceMetrics
from service.repository.manifest import Task
from service.repository.model_version import ModelVersion
from service.repository.registry import Registry
from service.video.intake import VideoJobs

# Accepted as a raw body besides the image types: clients that do not label their bytes.
_RAW_MEDIA_TYPES = SUPPORTED_MEDIA_TYPES | {"application/octet-stream"}


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_registry(request: Request) -> Registry:
    """The model registry; 503 while the models are still loading."""
    registry: Registry = request.app.state.registry
    if not registry.loaded:
        raise NotReadyError("models are still loading")
    return registry


@contextmanager
def holding_place(request: Request, model: ModelVersion) -> Iterator[None]:
    """Name the request's model (for its metrics) and hold one of the model's admission
    places; none free raises the 503."""
    request.state.model = model.name
    assert model.batcher is not None
    with model.batcher.admission.hold():
        yield


@dataclass(frozen=True)
class ImageCall:
    """An image route's request, the model it picked, and the limits to decode its images
    under. The route holds an admission place (``holding_place``) before it reads the images."""

    request: Request
    model: ModelVersion
    limits: ImageLimits


def image_call(task: Task) -> Callable[..., Awaitable[ImageCall]]:
    """A dependency that picks the task's model from ``model``/``version``.

    One plain dependency rather than one per role, and no generator: at concurrency 1 FastAPI's
    resolution of each, and the exit stack a generator needs, were a measurable share of a small
    model's whole overhead.
    """

    async def dependency(
        request: Request,
        model: Annotated[str | None, Query(description="default: the task's default")] = None,
        version: Annotated[int | None, Query(ge=1, description="default: highest ready")] = None,
    ) -> ImageCall:
        chosen = (await get_registry(request)).for_task(task, model, version)
        state = request.app.state
        limits = ImageLimits(
            state.settings.max_image_pixels, state.decode_limiter, state.pixel_budget
        )
        return ImageCall(request, chosen, limits)

    return dependency


async def get_video_jobs(request: Request) -> VideoJobs:
    """The video job store and runner; 503 until they started with the models, or when the
    store cannot be used."""
    jobs: VideoJobs | None = request.app.state.video_jobs
    if jobs is None:
        raise NotReadyError(request.app.state.video_jobs_error)
    return jobs


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


def media_type_of(request: Request) -> str:
    """The body's media type without parameters, lower case; "" when none is given."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_image_blobs(request: Request) -> list[bytes]:
    """The request's images: a raw image body, or every ``image`` field of a multipart form."""
    settings = await get_settings(request)
    media_type = media_type_of(request)
    if media_type == "multipart/form-data":
        try:
            form = await request.form(
                max_files=settings.max_images_per_request,
                max_fields=settings.max_form_fields,
                max_part_size=settings.max_body_bytes,
            )
        except HTTPException as exc:  # Starlette turns a MultiPartException into a 400
            raise _multipart_error(str(exc.detail), settings) from None
        uploads = [item for item in form.getlist("image") if isinstance(item, UploadFile)]
        if not uploads:
            raise InvalidInputError("the multipart body has no 'image' file field")
        blobs = [await upload.read() for upload in uploads]
        await form.close()
        return blobs
    if media_type in _RAW_MEDIA_TYPES:
        return [await request.body()]
    raise UnsupportedMediaTypeError(
        f"unsupported content type '{media_type or 'none'}'",
        supported=sorted(_RAW_MEDIA_TYPES | {"multipart/form-data"}),
    )


def _multipart_error(message: str, settings: Settings) -> PolypServeError:
    """More files or fields than a request may hold is a limit, so a 413 in the project's words
    like every limit; any other multipart failure is a malformed body (400)."""
    if message.startswith("Too many files"):
        limit = settings.max_images_per_request
        return PayloadTooLargeError(
            f"a request holds at most {limit} images (POLYPSERVE_MAX_IMAGES_PER_REQUEST)",
            limit=limit,
        )
    if message.startswith("Too many fields"):
        limit = settings.max_form_fields
        return PayloadTooLargeError(
            f"a multipart body holds at most {limit} fields (POLYPSERVE_MAX_FORM_FIELDS)",
            limit=limit,
        )
    return InvalidInputError(message)


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
VideoJobsDep = Annotated[VideoJobs, Depends(get_video_jobs)]
ClassifyCall = Annotated[ImageCall, Depends(image_call("classification"))]
DetectCall = Annotated[ImageCall, Depends(image_call("detection"))]
SegmentCall = Annotated[ImageCall, Depends(image_call("segmentation"))]
