"""Checks a manifest against its ONNX graph's signature, and builds warm-up inputs."""

from __future__ import annotations

import numpy as np

from service.repository.manifest import Manifest, TensorSpec
from service.repository.runtime import GraphTensor


def check_signature(
    manifest: Manifest, graph_inputs: list[GraphTensor], graph_outputs: list[GraphTensor]
) -> str | None:
    """None when names, element types, ranks and fixed sizes agree; else the first difference."""
    for kind, specs, tensors in (
        ("input", manifest.inputs, graph_inputs),
        ("output", manifest.outputs, graph_outputs),
    ):
        by_name = {t.name: t for t in tensors}
        if {s.name for s in specs} != set(by_name):
            return f"{kind}s {sorted(s.name for s in specs)} != graph {sorted(by_name)}"
        for spec in specs:
            problem = _compare(spec, by_name[spec.name])
            if problem:
                return f"{kind} '{spec.name}': {problem}"
    names = {s.name for s in manifest.inputs} | set(manifest.output_names())
    missing = [n for n in _decoding_names(manifest) if n not in names]
    if missing:
        return f"decoding names tensors the graph lacks: {missing}"
    if manifest.preprocessing is not None:
        image_shape = manifest.inputs[0].shape
        if len(image_shape) != 4:
            return "an image model's input must be rank 4 (NCHW)"
        fixed = tuple(image_shape[2:])
        if None not in fixed and fixed != manifest.preprocessing.size:
            return f"preprocessing size {manifest.preprocessing.size} != input size {fixed}"
    return None


def _compare(spec: TensorSpec, tensor: GraphTensor) -> str | None:
    if spec.dtype != tensor.dtype:
        return f"element type {spec.dtype} != graph {tensor.dtype}"
    if len(spec.shape) != len(tensor.shape):
        return f"rank {len(spec.shape)} != graph rank {len(tensor.shape)}"
    for axis, (want, have) in enumerate(zip(spec.shape, tensor.shape, strict=True)):
        if want is not None and have is not None and want != have:
            return f"axis {axis} is {want} in the manifest but {have} in the graph"
    return None


def _decoding_names(manifest: Manifest) -> list[str]:
    if manifest.classification:
        return [manifest.classification.logits_output]
    if manifest.detection:
        return [manifest.detection.boxes_output, manifest.detection.scores_output]
    if manifest.segmentation:
        return [manifest.segmentation.logits_output]
    if manifest.forecasting:
        decoding = manifest.forecasting
        base = [decoding.base_input, decoding.base_scale_input] if decoding.base != "none" else []
        return [decoding.series_input, *base, decoding.forecast_output]
    return []


def warmup_feeds(
    manifest: Manifest, graph_inputs: list[GraphTensor], batch: int = 1
) -> dict[str, np.ndarray]:
    """Zero inputs of ``batch`` rows (where the batch axis is dynamic) in the shape the model
    serves (image size from preprocessing)."""
    feeds = {}
    for tensor in graph_inputs:
        shape = [
            dim if dim is not None else batch if i == 0 else 1 for i, dim in enumerate(tensor.shape)
        ]
        if manifest.preprocessing is not None and len(shape) == 4:
            shape[2:] = manifest.preprocessing.size
        if manifest.forecasting is not None and len(shape) == 3:
            shape[1] = manifest.forecasting.window
        feeds[tensor.name] = np.zeros(shape, dtype=np.dtype(tensor.dtype))
    return feeds
