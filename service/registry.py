"""The model repository: finds, validates, loads and serves model versions; owns readiness.

Layout (Triton's): ``<models_dir>/<name>/<version>/{model.onnx, manifest.json}`` with numeric
version folders; the highest ready version serves when a request names none. A version that
fails (bad manifest, graph mismatch, no CUDA under ``require_gpu``) stays listed with its reason
while every other model keeps serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from service.batching import Batcher, BatchingConfig
from service.config import Settings
from service.errors import ModelNotFoundError, NotReadyError, WrongTaskError
from service.manifest import MANIFEST_FILE, MODEL_FILE, Manifest, Task
from service.runtime import (
    ModelSession,
    RuntimeLoadError,
    cuda_unavailable_reason,
    requested_providers,
)
from service.signature import check_signature, warmup_feeds

logger = logging.getLogger(__name__)

State = Literal["loading", "ready", "failed"]
CONFIG_FILE = "config.json"


class ModelConfig(BaseModel):
    """``models/<name>/config.json``: serving knobs of one model, over the global settings."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(None, gt=0)
    max_queue_delay_ms: float | None = Field(None, ge=0)
    max_queue_size: int | None = Field(None, gt=0)
    timeout_ms: float | None = Field(None, gt=0)
    instances: int | None = Field(None, gt=0)


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


def discover(models_dir: Path) -> dict[str, dict[int, Path]]:
    """Model name -> version -> folder, for every numeric version folder in the repository."""
    found: dict[str, dict[int, Path]] = {}
    if not models_dir.is_dir():
        return found
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        versions = {int(p.name): p for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()}
        if versions:
            found[model_dir.name] = versions
    return found


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
        session = ModelSession(
            path / MODEL_FILE,
            requested_providers(settings.providers),
            settings.intra_op_threads,
            settings.inter_op_threads,
        )
    except (RuntimeLoadError, ValueError) as exc:
        return _failed(model, f"cannot load {MODEL_FILE}: {exc}")
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
        try:
            session.run(warmup_feeds(manifest, session.inputs), manifest.output_names())
        except Exception as exc:
            return _failed(model, f"warm-up inference failed: {type(exc).__name__}: {exc}")
    model.state = "ready"
    logger.info("loaded %s/%s (%s) on %s", name, version, manifest.task, session.providers)
    return model


def batching_config(model_dir: Path, manifest: Manifest, settings: Settings) -> BatchingConfig:
    """Settings, then the manifest's batch size, then the model's ``config.json`` (if any)."""
    overrides = ModelConfig()
    if (model_dir / CONFIG_FILE).is_file():
        overrides = ModelConfig.model_validate_json((model_dir / CONFIG_FILE).read_bytes())
    return BatchingConfig(
        max_batch_size=overrides.max_batch_size or manifest.defaults.max_batch_size,
        max_queue_delay_ms=(
            settings.max_queue_delay_ms
            if overrides.max_queue_delay_ms is None
            else overrides.max_queue_delay_ms
        ),
        max_queue_size=overrides.max_queue_size or settings.max_queue_size,
        timeout_ms=overrides.timeout_ms or settings.request_timeout_ms,
        instances=overrides.instances or settings.batch_instances,
    )


class Registry:
    """Every discovered model version and the lookups the routes make."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.models: dict[str, dict[int, ModelVersion]] = {}
        self.loaded = False

    def load_all(self) -> None:
        for name, versions in discover(self.settings.models_dir).items():
            self.models[name] = {
                version: load_version(name, version, path, self.settings)
                for version, path in sorted(versions.items())
            }
        self.loaded = True

    async def close(self) -> None:
        """Finish what is queued on every model, then stop their workers."""
        for versions in self.models.values():
            for model in versions.values():
                if model.batcher is not None:
                    await model.batcher.close()

    def readiness(self) -> str | None:
        """None when ready, else why not."""
        if not self.loaded:
            return "models are still loading"
        all_versions = [m for versions in self.models.values() for m in versions.values()]
        failed = [f"{m.name}/{m.version}" for m in all_versions if not m.ready]
        if self.settings.require_gpu and failed:
            return f"require_gpu is set and these models are not ready: {', '.join(failed)}"
        if self.settings.strict_readiness and failed:
            return f"strict readiness and these models are not ready: {', '.join(failed)}"
        if not any(m.ready for m in all_versions):
            return "no model is ready"
        return None

    def get(self, name: str, version: int | None = None) -> ModelVersion:
        """The ready version asked for, or the highest ready one."""
        versions = self.models.get(name)
        if versions is None:
            raise ModelNotFoundError(f"unknown model '{name}'", models=sorted(self.models))
        if version is None:
            ready = [m for m in versions.values() if m.ready]
            if not ready:
                raise NotReadyError(f"model '{name}' has no ready version")
            return max(ready, key=lambda m: m.version)
        model = versions.get(version)
        if model is None:
            raise ModelNotFoundError(
                f"model '{name}' has no version {version}", versions=sorted(versions)
            )
        if not model.ready:
            raise NotReadyError(f"model '{name}' version {version} is not ready: {model.reason}")
        return model

    def for_task(self, task: Task, name: str | None, version: int | None) -> ModelVersion:
        """The model a task route serves: the named one, else the task's default."""
        if name is None:
            name = self.settings.default_models.get(task) or self._only_model_of(task)
        model = self.get(name, version)
        assert model.manifest is not None  # a ready model always has one
        if model.manifest.task != task:
            raise WrongTaskError(
                f"model '{name}' is a {model.manifest.task} model, not {task}",
                task=model.manifest.task,
            )
        return model

    def _only_model_of(self, task: Task) -> str:
        names = sorted(
            name
            for name, versions in self.models.items()
            if any(m.manifest is not None and m.manifest.task == task for m in versions.values())
        )
        if not names:
            raise ModelNotFoundError(f"no {task} model is loaded")
        if len(names) > 1:
            raise ModelNotFoundError(
                f"several {task} models are loaded; name one with ?model=", models=names
            )
        return names[0]


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
