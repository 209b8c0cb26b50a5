"""Dependencies as named ``Annotated`` aliases, so handlers read as a list of roles.

Every dependency is ``async def`` although none awaits: FastAPI runs a plain ``def`` dependency
in its thread pool, and those hops cost a request about 0.2 ms each.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Annotated

from anyio import CapacityLimiter
from fastapi import Depends, Query, Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from service.config import Settings
from service.errors import InvalidInputError, NotReadyError, UnsupportedMediaTypeError
from service.imaging import SUPPORTED_MEDIA_TYPES
from service.loading import ModelVersion
from service.manifest import Task
from service.metrics import ServiceMetrics
from service.registry import Registry

# Accepted as a raw body besides the image types: clients that do not label their bytes.
_RAW_MEDIA_TYPES = SUPPORTED_MEDIA_TYPES | {"application/octet-stream"}


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    if not registry.loaded:
        raise NotReadyError("models are still loading")
    return registry


async def get_decoders(request: Request) -> CapacityLimiter:
    """Threads that may decode images at once: more than the cores only thrash."""
    limiter: CapacityLimiter = request.app.state.decode_limiter
    return limiter


@contextmanager
def holding_place(request: Request, model: ModelVersion) -> Iterator[None]:
    """Name the request's model (for its metrics) and hold one of the model's admission
    places; none free raises the 503."""
    request.state.model = model.name
    assert model.batcher is not None
    with model.batcher.admission.hold():
        yield


def admitted(task: Task) -> Callable[..., AsyncIterator[ModelVersion]]:
    """A dependency that picks the task's model from ``model``/``version`` and holds one of its
    admission places until the handler returns. It comes before the body is read, so a request
    beyond the limit is refused (503) before it costs anything."""

    async def dependency(
        request: Request,
        registry: Annotated[Registry, Depends(get_registry)],
        model: Annotated[str | None, Query(description="default: the task's default")] = None,
        version: Annotated[int | None, Query(ge=1, description="default: highest ready")] = None,
    ) -> AsyncIterator[ModelVersion]:
        chosen = registry.for_task(task, model, version)
        with holding_place(request, chosen):
            yield chosen

    return dependency


async def get_metrics(request: Request) -> ServiceMetrics:
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


async def get_image_blobs(request: Request) -> list[bytes]:
    """The request's images: a raw image body, or every ``image`` field of a multipart form."""
    settings = settings_of(request)
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        try:
            form = await request.form(
                max_files=settings.max_images_per_request,
                max_fields=settings.max_form_fields,
                max_part_size=settings.max_body_bytes,
            )
        except MultiPartException as exc:
            raise InvalidInputError(f"invalid multipart body: {exc.message}") from None
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


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[Registry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
ImageBlobs = Annotated[list[bytes], Depends(get_image_blobs)]
DecodersDep = Annotated[CapacityLimiter, Depends(get_decoders)]
# scope="function": the place is given back when the handler returns, not after the response
# has gone out; else a client's next request on the same connection could find it still taken.
Classifier = Annotated[ModelVersion, Depends(admitted("classification"), scope="function")]
Detector = Annotated[ModelVersion, Depends(admitted("detection"), scope="function")]
Segmenter = Annotated[ModelVersion, Depends(admitted("segmentation"), scope="function")]
