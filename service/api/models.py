"""``GET /v1/models`` and ``/v1/models/{name}``: the catalogue with state, reason and provider."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from service.api.deps import RegistryDep
from service.api.errors import ERROR_RESPONSES
from service.dataplane.forecast import forecast_limits
from service.errors import ModelNotFoundError
from service.repository.model_version import ModelVersion
from service.repository.registry import Registry
from service.schemas import ModelInfo, ModelList

router = APIRouter(prefix="/v1", tags=["v1"], responses=ERROR_RESPONSES)


def describe(registry: Registry, name: str) -> dict[str, Any]:
    versions = registry.models[name]
    ready = [m for m in versions.values() if m.ready]
    serving = max(ready, key=lambda m: m.version) if ready else None
    newest = serving or versions[max(versions)]
    manifest = newest.manifest
    limits: dict[str, Any] = {}
    if manifest is not None and manifest.forecasting is not None:
        limits = forecast_limits(manifest.forecasting)
    elif manifest is not None and manifest.preprocessing is not None:
        limits = {
            "input_size": list(manifest.preprocessing.size),
            "max_batch_size": manifest.defaults.max_batch_size,
        }
    return {
        "name": name,
        "task": manifest.task if manifest else None,
        "default_version": serving.version if serving else None,
        "versions": [_version_info(m) for m in sorted(versions.values(), key=lambda m: m.version)],
        "limits": limits,
        "metrics": manifest.metrics if manifest else {},
    }


def _version_info(model: ModelVersion) -> dict[str, Any]:
    return {
        "version": model.version,
        "state": model.state,
        "reason": model.reason,
        "providers": model.session.providers if model.session else [],
        "manifest": model.manifest.model_dump(mode="json") if model.manifest else None,
    }


@router.get("/models", response_model=ModelList)
async def list_models(registry: RegistryDep) -> dict[str, Any]:
    return {"models": [describe(registry, name) for name in sorted(registry.models)]}


@router.get("/models/{name}", response_model=ModelInfo)
async def get_model(name: str, registry: RegistryDep) -> dict[str, Any]:
    if name not in registry.models:
        raise ModelNotFoundError(f"unknown model '{name}'", models=sorted(registry.models))
    return describe(registry, name)
