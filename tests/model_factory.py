"""Tiny, hand-built ONNX models with manifests, so core tests never depend on shipped models.

Each model's behaviour is simple enough to predict exactly:
- classifier: "red" when the mean red exceeds the mean green, else "not_red";
- detector: two fixed overlapping boxes, scored by how red the image is;
- segmenter: a pixel is foreground where red exceeds green;
- forecaster: the last value (normalised) for every step, quantiles at -1 / 0 / +1 std;
- hybrid forecaster: the AR(p) base the service feeds it, quantiles at -1 / 0 / +1 its residual
  scale.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from service.repository.manifest import (
    ClassificationDecoding,
    DetectionDecoding,
    ForecastingDecoding,
    Manifest,
    Preprocessing,
    SegmentationDecoding,
    TensorSpec,
)

DETECTOR_BOXES = np.array([[[8, 8, 40, 40], [10, 10, 42, 42]]], dtype=np.float32)
IMAGE_SIDE = 64


def _image_input(side: int) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, side, side])


def _save(graph: onnx.GraphProto, manifest: Manifest, root: Path) -> Path:
    folder = root / manifest.name / str(manifest.version)
    folder.mkdir(parents=True, exist_ok=True)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.checker.check_model(model)
    onnx.save(model, folder / "model.onnx")
    manifest.write(folder / "manifest.json")
    return folder


def _image_spec(side: int) -> list[TensorSpec]:
    return [TensorSpec(name="images", dtype="float32", shape=[None, 3, side, side])]


def build_classifier(root: Path, name: str = "tiny-classifier", version: int = 1) -> Path:
    weights = np.array([[-10.0, 10.0], [10.0, -10.0], [0.0, 0.0]], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["logits"]),
        ],
        "classifier",
        [_image_input(32)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(weights, "weights")],
    )
    manifest = Manifest(
        task="classification",
        name=name,
        version=version,
        description="test classifier",
        inputs=_image_spec(32),
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[None, 2])],
        labels=["not_red", "red"],
        preprocessing=Preprocessing(size=(32, 32), resize="stretch"),
        classification=ClassificationDecoding(),
        metrics={"synthetic": {"accuracy": 1.0}},
    )
    return _save(graph, manifest, root)


def build_detector(root: Path, name: str = "tiny-detector", version: int = 1) -> Path:
    weights = np.array([[10.0, 9.0], [-10.0, -9.0], [0.0, 0.0]], dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
            helper.make_node("Flatten", ["pooled"], ["flat"]),
            helper.make_node("MatMul", ["flat", "weights"], ["redness"]),
            helper.make_node("Sigmoid", ["redness"], ["probs"]),
            helper.make_node("Unsqueeze", ["probs", "axis2"], ["scores"]),
            helper.make_node("MatMul", ["flat", "zero_weights"], ["zeros"]),
            helper.make_node("Unsqueeze", ["zeros", "axis2"], ["zeros3"]),
            helper.make_node("Add", ["anchor_boxes", "zeros3"], ["boxes"]),
        ],
        "detector",
        [_image_input(IMAGE_SIDE)],
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, ["N", 2, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2, 1]),
        ],
        [
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.zeros((3, 1), np.float32), "zero_weights"),
            numpy_helper.from_array(np.array([2], np.int64), "axis2"),
            numpy_helper.from_array(DETECTOR_BOXES, "anchor_boxes"),
        ],
    )
    manifest = Manifest(
        task="detection",
        name=name,
        version=version,
        description="test detector",
        inputs=_image_spec(IMAGE_SIDE),
        outputs=[
            TensorSpec(name="boxes", dtype="float32", shape=[None, 2, 4]),
            TensorSpec(name="scores", dtype="float32", shape=[None, 2, 1]),
        ],
        labels=["red_thing"],
        preprocessing=Preprocessing(size=(IMAGE_SIDE, IMAGE_SIDE), resize="letterbox"),
        detection=DetectionDecoding(),
    )
    return _save(graph, manifest, root)


def build_segmenter(root: Path, name: str = "tiny-segmenter", version: int = 1) -> Path:
    kernel = np.array([10.0, -10.0, 0.0], dtype=np.float32).reshape(1, 3, 1, 1)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["images", "kernel"], ["logits"])],
        "segmenter",
        [_image_input(IMAGE_SIDE)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1, 64, 64])],
        [numpy_helper.from_array(kernel, "kernel")],
    )
    manifest = Manifest(
        task="segmentation",
        name=name,
        version=version,
        description="test segmenter",
        inputs=_image_spec(IMAGE_SIDE),
        outputs=[TensorSpec(name="logits", dtype="float32", shape=[None, 1, 64, 64])],
        labels=["red_region"],
        preprocessing=Preprocessing(size=(IMAGE_SIDE, IMAGE_SIDE), resize="letterbox", pad_value=0),
        segmentation=SegmentationDecoding(),
    )
    return _save(graph, manifest, root)


def build_forecaster(
    root: Path, name: str = "tiny-forecaster", version: int = 1, window: int = 8, horizon: int = 4
) -> Path:
    offsets = np.tile(np.array([-1.0, 0.0, 1.0], np.float32), (1, horizon, 1))
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["series", "start", "end", "axis1"], ["last"]),
            helper.make_node("Add", ["last", "offsets"], ["forecast"]),
        ],
        "forecaster",
        [helper.make_tensor_value_info("series", TensorProto.FLOAT, ["N", window, 1])],
        [helper.make_tensor_value_info("forecast", TensorProto.FLOAT, ["N", horizon, 3])],
        [
            numpy_helper.from_array(np.array([-1], np.int64), "start"),
            numpy_helper.from_array(np.array([window], np.int64), "end"),
            numpy_helper.from_array(np.array([1], np.int64), "axis1"),
            numpy_helper.from_array(offsets, "offsets"),
        ],
    )
    manifest = Manifest(
        task="forecasting",
        name=name,
        version=version,
        description="test forecaster",
        inputs=[TensorSpec(name="series", dtype="float32", shape=[None, window, 1])],
        outputs=[TensorSpec(name="forecast", dtype="float32", shape=[None, horizon, 3])],
        forecasting=ForecastingDecoding(window=window, horizon=horizon, quantiles=(0.1, 0.5, 0.9)),
    )
    return _save(graph, manifest, root)


def build_hybrid_forecaster(
    root: Path,
    name: str = "tiny-hybrid-forecaster",
    window: int = 8,
    horizon: int = 4,
    base_powers: tuple[float, ...] = (),
    seasonal_periods: dict[str, int] | None = None,
    seasonal_fit: Literal["conditional", "exact"] = "conditional",
) -> Path:
    """A model that returns its ``base`` input, the service's AR(p) forecast, as the median, and
    that plus and minus ``base_scale`` as the outer quantiles."""
    offsets = np.array([-1.0, 0.0, 1.0], np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Unsqueeze", ["base", "axis2"], ["column"]),
            helper.make_node("Unsqueeze", ["base_scale", "axis2"], ["unit"]),
            helper.make_node("Mul", ["unit", "offsets"], ["spread"]),
            helper.make_node("Add", ["column", "spread"], ["forecast"]),
        ],
        "hybrid_forecaster",
        [
            helper.make_tensor_value_info("series", TensorProto.FLOAT, ["N", window, 1]),
            helper.make_tensor_value_info("base", TensorProto.FLOAT, ["N", horizon]),
            helper.make_tensor_value_info("base_scale", TensorProto.FLOAT, ["N", 1]),
        ],
        [helper.make_tensor_value_info("forecast", TensorProto.FLOAT, ["N", horizon, 3])],
        [
            numpy_helper.from_array(np.array([2], np.int64), "axis2"),
            numpy_helper.from_array(offsets, "offsets"),
        ],
    )
    manifest = Manifest(
        task="forecasting",
        name=name,
        version=1,
        description="test hybrid forecaster",
        inputs=[
            TensorSpec(name="series", dtype="float32", shape=[None, window, 1]),
            TensorSpec(name="base", dtype="float32", shape=[None, horizon]),
            TensorSpec(name="base_scale", dtype="float32", shape=[None, 1]),
        ],
        outputs=[TensorSpec(name="forecast", dtype="float32", shape=[None, horizon, 3])],
        forecasting=ForecastingDecoding(
            window=window,
            horizon=horizon,
            quantiles=(0.1, 0.5, 0.9),
            base="ar_aic",
            base_history=64,
            base_powers=list(base_powers),
            base_seasonal_periods=seasonal_periods or {},
            base_seasonal_fit=seasonal_fit,
        ),
    )
    return _save(graph, manifest, root)


def build_repository(root: Path) -> Path:
    """All four tiny models in one repository."""
    for build in (build_classifier, build_detector, build_segmenter, build_forecaster):
        build(root)
    return root
