"""Triton's model repository extension: index, load (also reload) and unload.

Load and unload exist only when an operator turns model control on, and need an admin key
(``service.api.auth``); the index is read-only and always there.

A reload builds the new versions beside the old and swaps them in one step: requests already
holding the old versions finish on them, new requests get the new. The old versions are retired
once no request can still be on its way to them.
"""

from __future__ import annotations

import asyncio
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request

from service.api.deps import RegistryDep, SettingsDep
from service.api.errors import ERROR_RESPONSES
from service.errors import InvalidInputError, ModelNotFoundError
from service.parsing import parse_json
from service.repository.model_version import ModelVersion

router = APIRouter(prefix="/v2/repository", tags=["v2"], responses=ERROR_RESPONSES)
_retiring: set[asyncio.Task[None]] = set()


async def _retire(versions: dict[int, ModelVersion] | None, grace_s: float) -> None:
    """Close replaced batchers after ``grace_s``: long enough for any request that looked the
    old version up to hand it its work, which then still finishes."""
    if not versions:
        return

    async def later() -> None:
        await asyncio.sleep(grace_s)
        for model in versions.values():
            if model.batcher is not None:
                await model.batcher.close()

    task = asyncio.create_task(later())
    _retiring.add(task)
    task.add_done_callback(_retiring.discard)


def _check_enabled(enabled: bool) -> None:
    if not enabled:
        raise ModelNotFoundError(
            "model control is turned off (POLYPSERVE_MODEL_CONTROL; it needs an admin key)"
        )


async def _read_options(request: Request) -> dict[str, Any]:
    body = await request.body()
    if not body.strip():
        return {}
    options = parse_json(body, "the request body")
    if not isinstance(options, dict):
        raise InvalidInputError("the request body must be a JSON object")
    return options


@router.post("/index")
async def repository_index(request: Request, registry: RegistryDep) -> list[dict[str, object]]:
    options = await _read_options(request)
    index = registry.repository_index()
    if options.get("ready"):
        index = [entry for entry in index if entry["state"] == "READY"]
    return index


@router.post("/models/{name}/load")
async def load_model(
    name: str, request: Request, registry: RegistryDep, settings: SettingsDep
) -> dict[str, Any]:
    _check_enabled(settings.model_control)
    options = await _read_options(request)
    if options.get("parameters"):
        raise InvalidInputError("loading with a config or file override is not supported")
    async with request.app.state.control_lock:
        replaced, error = await to_thread.run_sync(registry.reload, name)
        await _retire(replaced, settings.request_timeout_ms / 1000.0)
    if error is not None:
        raise InvalidInputError(f"failed to load '{name}': {error}")
    return {"name": name, "loaded": True}


@router.post("/models/{name}/unload")
async def unload_model(
    name: str, request: Request, registry: RegistryDep, settings: SettingsDep
) -> dict[str, Any]:
    _check_enabled(settings.model_control)
    await _read_options(request)
    async with request.app.state.control_lock:
        await _retire(registry.unload(name), settings.request_timeout_ms / 1000.0)
    return {"name": name, "unloaded": True}
