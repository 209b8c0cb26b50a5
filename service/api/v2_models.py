"""Open Inference Protocol routes: server and model metadata, readiness, Triton's model
configuration and statistics, and inference over the same data plane as the v1 routes.

Every route reads the raw body (``tritonclient`` sends no Content-Type) and answers
``{"error": "<message>"}`` on failure.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import __version__
from service.api.deps import RegistryDep, SettingsDep, holding_place
from service.api.errors import ERROR_RESPONSES
from service.errors import InvalidInputError
from service.parsing import is_whole_number
from service.repository.model_version import ModelVersion
from service.repository.registry import Registry
from service.v2 import describe
from service.v2.serving import serve_inference

router = APIRouter(prefix="/v2", tags=["v2"], responses=ERROR_RESPONSES)
MODELS_PREFIX = "/v2/models/"


def is_inference_path(path: str) -> bool:
    """``/v2/models/{name}[/versions/{version}]/infer``."""
    return path.startswith(MODELS_PREFIX) and path.endswith("/infer")


EXTENSIONS = [
    "classification", "binary_tensor_data", "model_repository", "model_configuration",
    "statistics",
]  # fmt: skip


@router.get("")
async def server_metadata() -> dict[str, Any]:
    return {"name": "polypserve", "version": __version__, "extensions": EXTENSIONS}


def _model(registry: Registry, name: str, version: str | None) -> ModelVersion:
    if version is not None and not is_whole_number(version):
        registry.get(name)  # an unknown model is a 404 before a bad version is
        raise InvalidInputError(f"version '{version}' is not a number")
    return registry.get(name, int(version) if version else None)


@router.get("/models/stats")
async def all_model_statistics(registry: RegistryDep) -> dict[str, Any]:
    # Declared before /models/{name} so that "stats" is never taken for a model name.
    models = [m for versions in registry.models.values() for m in versions.values() if m.ready]
    return {"model_stats": [describe.model_statistics(m) for m in models]}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(
    registry: RegistryDep, name: str, version: str | None = None
) -> dict[str, Any]:
    model = _model(registry, name, version)
    return describe.model_metadata(
        model, sorted(v for v, m in registry.models[name].items() if m.ready)
    )


@router.get("/models/{name}/ready")
@router.get("/models/{name}/versions/{version}/ready")
async def model_ready(registry: RegistryDep, name: str, version: str | None = None) -> Any:
    model = _model(registry, name, version)
    return {"name": name, "version": str(model.version), "ready": True}


@router.get("/models/{name}/config")
@router.get("/models/{name}/versions/{version}/config")
async def model_config(
    registry: RegistryDep, name: str, version: str | None = None
) -> dict[str, Any]:
    return describe.model_config(_model(registry, name, version))


@router.get("/models/{name}/stats")
@router.get("/models/{name}/versions/{version}/stats")
async def model_statistics(
    registry: RegistryDep, name: str, version: str | None = None
) -> dict[str, Any]:
    if version is None:
        registry.get(name)
        models = [m for m in registry.models[name].values() if m.ready]
    else:
        models = [_model(registry, name, version)]
    return {"model_stats": [describe.model_statistics(m) for m in models]}


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def model_infer(
    request: Request,
    registry: RegistryDep,
    settings: SettingsDep,
    name: str,
    version: str | None = None,
) -> Response:
    model = _model(registry, name, version)
    with holding_place(request, model):
        body = await request.body()
        encoded = await serve_inference(model, body, request.headers, settings.max_body_bytes)
    return Response(encoded.content, media_type=encoded.media_type, headers=encoded.headers)
