"""Validating and loading one model version: manifest, graph, signature, providers, warm-up.

``load_version`` never raises: whatever goes wrong becomes the version's state and reason, so
one bad model never keeps the others from serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from service.config import Settings
from service.repository.manifest import MANIFEST_FILE, MODEL_FILE, Manifest
from service.repository.model_config import CONFIG_FILE, batching_config
from service.repository.runtime import (
    GpuOptions,
    ModelSession,
    RuntimeLoadError,
    cuda_unavailable_reason,
    requested_providers,
)
from service.repository.signature import check_signature, warmup_feeds
from service.scheduling.batching import Batcher

logger = logging.getLogger(__name__)

State = Literal["loading", "ready", "failed", "unloaded"]


@dataclass
class ModelVersion:
    name: str
    version: int
    path: Path
    state: State = "loading"
    reason: str | None = None
    manifest: Manifest | None = None
    session: ModelSession | None = field(default=None, repr=False)
    batcher: Batcher | None = field(default=None, repr=False)

    @property
    def ready(self) -> bool:
        return self.state == "ready"


def gpu_options(settings: Settings) -> GpuOptions:
    return GpuOptions(
        device_id=settings.cuda_device_id,
        memory_limit_bytes=settings.cuda_memory_limit_bytes,
        cudnn_conv_algo_search=settings.cudnn_conv_algo_search,
        tensorrt=settings.tensorrt,
        tensorrt_fp16=settings.tensorrt_fp16,
        tensorrt_cache_dir=str(settings.tensorrt_cache_dir),
        io_binding=settings.cuda_io_binding,
    )


def load_version(name: str, version: int, path: Path, settings: Settings) -> ModelVersion:
    """Validate and load one version; never raises: a failure is its state and reason."""
    model = ModelVersion(name, version, path)
    try:
        manifest = Manifest.read(path / MANIFEST_FILE)
    except FileNotFoundError:
        return _failed(model, f"{MANIFEST_FILE} is missing")
    except ValidationError as exc:
        return _failed(model, f"invalid manifest: {_first_errors(exc)}")
    model.manifest = manifest
    if manifest.name != name or manifest.version != version:
        return _failed(
            model,
            f"manifest says {manifest.name}/{manifest.version} but the folder is {name}/{version}",
        )
    if not (path / MODEL_FILE).is_file():
        return _failed(model, f"{MODEL_FILE} is missing")
    try:
        gpu = gpu_options(settings)
        session = ModelSession(
            path / MODEL_FILE,
            requested_providers(settings.providers, gpu),
            settings.intra_op_threads,
            settings.inter_op_threads,
            settings.cpu_memory_arena,
        )
    except (RuntimeLoadError, ValueError) as exc:
        return _failed(model, f"cannot load {MODEL_FILE}: {exc}")
    session.use_io_binding = gpu.io_binding and session.uses_cuda
    session.device_id = gpu.device_id
    mismatch = check_signature(manifest, session.inputs, session.outputs)
    if mismatch:
        return _failed(model, f"manifest does not match the graph: {mismatch}")
    if settings.require_gpu and not session.uses_cuda:
        why = cuda_unavailable_reason() or f"the session runs on {session.providers}"
        return _failed(model, f"require_gpu is set but CUDA is unavailable: {why}")
    try:
        config = batching_config(path.parent, manifest, settings)
    except (ValidationError, ValueError) as exc:
        return _failed(model, f"invalid {CONFIG_FILE}: {exc}")
    model.session = session
    output_names = manifest.output_names()
    batchable = all(t.shape and t.shape[0] is None for t in session.inputs)
    model.batcher = Batcher(lambda feeds: session.run(feeds, output_names), config, batchable)
    if settings.warmup:
        # At the largest batch served, so that the first full batch a client sends pays no
        # one-time cost (kernel selection, memory planning; with the CPU arena on, its growth).
        batch = config.max_batch_size if batchable else 1
        try:
            session.run(warmup_feeds(manifest, session.inputs, batch), output_names)
        except Exception as exc:
            return _failed(model, f"warm-up inference failed: {type(exc).__name__}: {exc}")
    model.state = "ready"
    logger.info("loaded %s/%s (%s) on %s", name, version, manifest.task, session.providers)
    return model


def _failed(model: ModelVersion, reason: str) -> ModelVersion:
    model.state, model.reason = "failed", reason
    logger.error("model %s/%s not ready: %s", model.name, model.version, reason)
    return model


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    parts = [
        f"{'.'.join(str(loc) for loc in err['loc']) or 'manifest'}: {err['msg']}"
        for err in exc.errors()[:limit]
    ]
    return "; ".join(parts)
