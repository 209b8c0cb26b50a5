"""``models/<name>/config.json``: per-model serving knobs over the global settings."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from service.config import Settings
from service.repository.manifest import Manifest
from service.scheduling.batching import BatchingConfig

CONFIG_FILE = "config.json"


class ModelConfig(BaseModel):
    """``models/<name>/config.json``: serving knobs of one model, over the global settings."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int | None = Field(None, gt=0)
    max_queue_delay_ms: float | None = Field(None, ge=0)
    max_queue_size: int | None = Field(None, gt=0)
    latency_budget_ms: float | None = Field(None, ge=0)
    timeout_ms: float | None = Field(None, gt=0)
    instances: int | None = Field(None, gt=0)


def batching_config(model_dir: Path, manifest: Manifest, settings: Settings) -> BatchingConfig:
    """Settings, then the manifest's batch size, then the model's ``config.json`` (if any)."""
    overrides = ModelConfig()
    if (model_dir / CONFIG_FILE).is_file():
        overrides = ModelConfig.model_validate_json((model_dir / CONFIG_FILE).read_bytes())
    instances = overrides.instances or settings.batch_instances
    return BatchingConfig(
        max_batch_size=overrides.max_batch_size or manifest.defaults.max_batch_size,
        max_queue_delay_ms=(
            settings.max_queue_delay_ms
            if overrides.max_queue_delay_ms is None
            else overrides.max_queue_delay_ms
        ),
        max_queue_size=overrides.max_queue_size or settings.max_queue_size,
        latency_budget_ms=(
            settings.latency_budget_ms
            if overrides.latency_budget_ms is None
            else overrides.latency_budget_ms
        ),
        timeout_ms=overrides.timeout_ms or settings.request_timeout_ms,
        instances=instances,
        pipeline_width=settings.decode_threads + instances,
    )
