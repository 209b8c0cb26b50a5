"""Open Inference Protocol routes: server and model metadata, readiness, Triton's model
configuration and statistics, and inference over the same data plane as the v1 routes.

Every route reads the raw body (``tritonclient`` sends no Content-Type) and answers
``{"error": "<message>"}`` on failure.
"""

from __future__ import annotations

import gzip
import zlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service import __version__
from service.api.deps import RegistryDep, SettingsDep, holding_place
from service.api.errors import ERROR_RESPONSES
from service.config import Settings
from service.errors import InvalidInputError, is_whole_number
from service.loading import ModelVersion
from service.predict import StageTimer, complete, infer
from service.registry import Registry
from service.v2.infer import build_response, decompress, parse_request
from service.v2.tensors import FROM_ELEMENT_TYPE, TRITON_CONFIG_TYPES

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


def _tensor_metadata(specs: list[Any]) -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "datatype": FROM_ELEMENT_TYPE[spec.dtype],
            "shape": [-1 if d is None else d for d in spec.shape],
        }
        for spec in specs
    ]


@router.get("/models/stats")
async def all_model_statistics(registry: RegistryDep) -> dict[str, Any]:
    # Declared before /models/{name} so that "stats" is never taken for a model name.
    models = [m for versions in registry.models.values() for m in versions.values() if m.ready]
    return {"model_stats": [_stats(m) for m in models]}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(
    registry: RegistryDep, name: str, version: str | None = None
) -> dict[str, Any]:
    model = _model(registry, name, version)
    assert model.manifest is not None
    ready_versions = sorted(v for v, m in registry.models[name].items() if m.ready)
    return {
        "name": name,
        "versions": [str(v) for v in ready_versions],
        "platform": "onnxruntime_onnx",
        "inputs": _tensor_metadata(model.manifest.inputs),
        "outputs": _tensor_metadata(model.manifest.outputs),
    }


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
    model = _model(registry, name, version)
    assert model.manifest is not None and model.batcher is not None
    config = model.batcher.config
    batched = model.batcher.batchable

    def tensors(specs: list[Any], image: bool) -> list[dict[str, Any]]:
        described = []
        for spec in specs:
            dims = spec.shape[1:] if batched else spec.shape
            entry = {
                "name": spec.name,
                "data_type": TRITON_CONFIG_TYPES[FROM_ELEMENT_TYPE[spec.dtype]],
                "dims": [-1 if d is None else d for d in dims],
            }
            if image:
                entry["format"] = "FORMAT_NCHW"
            described.append(entry)
        return described

    image_model = model.manifest.preprocessing is not None
    return {
        "name": name,
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": config.max_batch_size if batched else 0,
        "input": tensors(model.manifest.inputs, image_model),
        "output": tensors(model.manifest.outputs, False),
        "dynamic_batching": {
            "max_queue_delay_microseconds": int(config.max_queue_delay_ms * 1000),
            "default_queue_policy": {
                "max_queue_size": config.max_queue_size,
                "default_timeout_microseconds": int(config.timeout_ms * 1000),
            },
        },
        "instance_group": [{"count": config.instances, "kind": "KIND_CPU"}],
        "parameters": {
            "task": {"string_value": model.manifest.task},
            "latency_budget_ms": {"string_value": f"{config.latency_budget_ms:g}"},
        },
    }


_STAT_NAMES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


def _stats(model: ModelVersion) -> dict[str, Any]:
    assert model.batcher is not None
    stats = model.batcher.stats

    def duration(d: Any) -> dict[str, int]:
        return {"count": d.count, "ns": d.ns}

    return {
        "name": model.name,
        "version": str(model.version),
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {name: duration(getattr(stats, name)) for name in _STAT_NAMES},
        "batch_stats": [
            {"batch_size": size, "compute_infer": duration(d)}
            for size, d in sorted(stats.batches.items())
        ],
    }


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
    return {"model_stats": [_stats(m) for m in models]}


@router.post("/models/{name}/infer")
@router.post("/models/{name}/versions/{version}/infer")
async def model_infer(
    request: Request, registry: RegistryDep, settings: SettingsDep, name: str,
    version: str | None = None,
) -> Response:  # fmt: skip
    model = _model(registry, name, version)
    with holding_place(request, model):
        return await _infer(request, model, settings)


async def _infer(request: Request, model: ModelVersion, settings: Settings) -> Response:
    assert model.manifest is not None
    name = model.name
    timer = StageTimer()
    with timer.stage("decode"):
        body = decompress(
            await request.body(), request.headers.get("content-encoding"), settings.max_body_bytes
        )
        header_length = request.headers.get("inference-header-content-length")
        if header_length is not None and not (
            is_whole_number(header_length) and len(header_length) <= 18
        ):
            raise InvalidInputError(
                "Inference-Header-Content-Length must be a whole number of at most 18 digits"
            )
        parsed = parse_request(
            body, None if header_length is None else int(header_length), model.manifest
        )
        _check_batch(model, parsed.inputs)
    outputs = await infer(model, parsed.inputs, timer)
    with timer.stage("encode"):
        content, json_length = build_response(
            name, model.version, parsed, outputs, model.manifest.labels
        )
        headers: dict[str, str] = {}
        if json_length is not None:
            headers["Inference-Header-Content-Length"] = str(json_length)
        content, encoding = _compress(content, request.headers.get("accept-encoding", ""))
        if encoding:
            headers["Content-Encoding"] = encoding
    complete(model, timer)
    media_type = "application/json" if json_length is None else "application/octet-stream"
    return Response(content, media_type=media_type, headers=headers)


def _check_batch(model: ModelVersion, inputs: dict[str, Any]) -> None:
    assert model.batcher is not None
    if not model.batcher.batchable:
        return
    limit = model.batcher.config.max_batch_size
    for name, array in inputs.items():
        if array.shape and array.shape[0] > limit:
            raise InvalidInputError(
                f"input '{name}': batch size {array.shape[0]} exceeds the maximum of {limit}"
            )


def _compress(content: bytes, accept_encoding: str) -> tuple[bytes, str | None]:
    accepted = {part.split(";")[0].strip().lower() for part in accept_encoding.split(",")}
    if "gzip" in accepted:
        return gzip.compress(content, compresslevel=1), "gzip"
    if "deflate" in accepted:
        return zlib.compress(content, 1), "deflate"
    return content, None
