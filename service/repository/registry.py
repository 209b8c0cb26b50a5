"""The model repository: finds, validates, loads and serves model versions; owns readiness.

Layout (Triton's): ``<models_dir>/<name>/<version>/{model.onnx, manifest.json}`` with numeric
version folders; the highest ready version serves when a request names none. A version that
fails (bad manifest, graph mismatch, no CUDA under ``require_gpu``) stays listed with its reason
while every other model keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from service.config import Settings
from service.errors import (
    ModelNotFoundError,
    NotReadyError,
    WrongTaskError,
)
from service.parsing import is_whole_number
from service.repository.manifest import Task
from service.repository.model_version import ModelVersion, load_version

logger = logging.getLogger(__name__)


def discover(models_dir: Path) -> dict[str, dict[int, Path]]:
    """Model name -> version -> folder, for every numeric version folder in the repository."""
    found: dict[str, dict[int, Path]] = {}
    if not models_dir.is_dir():
        return found
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()):
        versions = {
            int(p.name): p for p in model_dir.iterdir() if p.is_dir() and is_whole_number(p.name)
        }
        if versions:
            found[model_dir.name] = versions
    return found


class Registry:
    """Every discovered model version and the lookups the routes make."""

    def __init__(
        self, settings: Settings, on_loaded: Callable[[ModelVersion], None] | None = None
    ) -> None:
        self.settings = settings
        # Called for every version loaded, at start and on reload (metrics hook it here).
        self._on_loaded = on_loaded or (lambda model: None)
        self.models: dict[str, dict[int, ModelVersion]] = {}
        self.loaded = False

    def load_all(self) -> None:
        for name, versions in discover(self.settings.models_dir).items():
            self.models[name] = {
                version: self._load(name, version, path)
                for version, path in sorted(versions.items())
            }
        self.loaded = True

    def _load(self, name: str, version: int, path: Path) -> ModelVersion:
        model = load_version(name, version, path, self.settings)
        self._on_loaded(model)
        return model

    def reload(self, name: str) -> tuple[dict[int, ModelVersion] | None, str | None]:
        """(Re)load one model from disk, picking up new version folders, and swap it in whole.

        Returns the versions it replaced (for the caller to retire once in-flight work is done)
        and an error. A failed load keeps a serving model as it was and only reports why.
        """
        versions = discover(self.settings.models_dir).get(name)
        if versions is None:
            raise ModelNotFoundError(f"no model '{name}' in the repository")
        loaded = {v: self._load(name, v, path) for v, path in sorted(versions.items())}
        failed = [m for m in loaded.values() if not m.ready]
        error = f"version {failed[0].version}: {failed[0].reason}" if failed else None
        old = self.models.get(name)
        if failed and old and any(m.ready for m in old.values()):
            return None, error
        # One assignment: a request sees either the old versions or the new, never a mix.
        self.models[name] = loaded
        return old, error

    def unload(self, name: str) -> dict[int, ModelVersion]:
        """Stop serving a model; returns its versions for the caller to retire."""
        old = self.models.get(name)
        if old is None:
            raise ModelNotFoundError(f"unknown model '{name}'", models=sorted(self.models))
        self.models[name] = {
            v: ModelVersion(name, v, m.path, "unloaded", "unloaded by request", m.manifest)
            for v, m in old.items()
        }
        return old

    def repository_index(self) -> list[dict[str, object]]:
        """Every model version on disk or in memory, with its state (Triton's index)."""
        index: list[dict[str, object]] = []
        on_disk = discover(self.settings.models_dir)
        for name in sorted(set(on_disk) | set(self.models)):
            loaded = self.models.get(name, {})
            for version in sorted(set(on_disk.get(name, {})) | set(loaded)):
                model = loaded.get(version)
                state = "UNAVAILABLE" if model is None else _TRITON_STATES[model.state]
                reason = "not loaded" if model is None else model.reason or ""
                index.append(
                    {"name": name, "version": str(version), "state": state, "reason": reason}
                )
        return index

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


_TRITON_STATES = {
    "loading": "LOADING", "ready": "READY", "failed": "UNAVAILABLE", "unloaded": "UNAVAILABLE",
}  # fmt: skip
