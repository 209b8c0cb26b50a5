"""Triton's descriptions of a model version: its metadata, model configuration and statistics.

Pure functions of a loaded ``ModelVersion``; the v2 router only looks the version up.
"""

from __future__ import annotations

from typing import Any

from service.repository.manifest import TensorSpec
from service.repository.model_version import ModelVersion
from service.scheduling.batch_stats import Duration
from service.v2.tensors import FROM_ELEMENT_TYPE, TRITON_CONFIG_TYPES

PLATFORM = "onnxruntime_onnx"
_STAT_NAMES = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")


def model_metadata(model: ModelVersion, ready_versions: list[int]) -> dict[str, Any]:
    assert model.manifest is not None
    return {
        "name": model.name,
        "versions": [str(v) for v in ready_versions],
        "platform": PLATFORM,
        "inputs": _tensor_metadata(model.manifest.inputs),
        "outputs": _tensor_metadata(model.manifest.outputs),
    }


def model_config(model: ModelVersion) -> dict[str, Any]:
    """Triton's ``config.pbtxt`` as JSON: tensors, batching and the queue policy."""
    assert model.manifest is not None and model.batcher is not None
    config = model.batcher.config
    batched = model.batcher.batchable
    image_model = model.manifest.preprocessing is not None
    return {
        "name": model.name,
        "platform": PLATFORM,
        "backend": "onnxruntime",
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": config.max_batch_size if batched else 0,
        "input": _config_tensors(model.manifest.inputs, batched, image_model),
        "output": _config_tensors(model.manifest.outputs, batched, False),
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


def model_statistics(model: ModelVersion) -> dict[str, Any]:
    assert model.batcher is not None
    stats = model.batcher.stats
    return {
        "name": model.name,
        "version": str(model.version),
        "last_inference": stats.last_inference_ms,
        "inference_count": stats.inference_count,
        "execution_count": stats.execution_count,
        "inference_stats": {name: _duration(getattr(stats, name)) for name in _STAT_NAMES},
        "batch_stats": [
            {"batch_size": size, "compute_infer": _duration(d)}
            for size, d in sorted(stats.batches.items())
        ],
    }


def _duration(duration: Duration) -> dict[str, int]:
    return {"count": duration.count, "ns": duration.ns}


def _tensor_metadata(specs: list[TensorSpec]) -> list[dict[str, Any]]:
    return [
        {
            "name": spec.name,
            "datatype": FROM_ELEMENT_TYPE[spec.dtype],
            "shape": [-1 if d is None else d for d in spec.shape],
        }
        for spec in specs
    ]


def _config_tensors(specs: list[TensorSpec], batched: bool, image: bool) -> list[dict[str, Any]]:
    """Dims without the batch dimension when the model batches, as Triton lists them."""
    described = []
    for spec in specs:
        dims = spec.shape[1:] if batched else spec.shape
        entry: dict[str, Any] = {
            "name": spec.name,
            "data_type": TRITON_CONFIG_TYPES[FROM_ELEMENT_TYPE[spec.dtype]],
            "dims": [-1 if d is None else d for d in dims],
        }
        if image:
            entry["format"] = "FORMAT_NCHW"
        described.append(entry)
    return described
