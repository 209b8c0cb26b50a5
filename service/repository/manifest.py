"""The manifest: the contract between training and serving.

Training writes ``manifest.json`` beside ``model.onnx`` with this very class; the service validates
it at load and then checks it against the ONNX graph (see ``service.repository.registry``). One
class, imported by both sides, so the two can never drift apart.

Graph conventions by task (names come from ``inputs``/``outputs`` and the decoding section):

- classification: ``images`` float32 [N, 3, H, W] -> ``logits`` [N, C]
- detection: ``images`` -> ``boxes`` [N, A, 4] (xyxy, model-input pixels) and ``scores`` [N, A, C]
  (already activated). The graph decodes the grid; the service thresholds and runs NMS.
- segmentation: ``images`` -> ``logits`` [N, C, H, W] (C = 1 for a sigmoid binary mask)
- forecasting: ``series`` float32 [N, window, 1] -> ``forecast`` [N, horizon, Q], normalised units;
  a hybrid (``base: ar_aic``) also takes ``base`` [N, horizon], the AR(p) forecast it corrects,
  and ``base_scale`` [N, 1], the root mean square of that fit's one-step residuals
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Task = Literal["classification", "detection", "segmentation", "forecasting"]
TASKS: tuple[Task, ...] = ("classification", "detection", "segmentation", "forecasting")
ElementType = Literal[
    "float32", "float16", "float64", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool", "string",
]  # fmt: skip

MANIFEST_FILE = "manifest.json"
MODEL_FILE = "model.onnx"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TensorSpec(_Strict):
    name: str
    dtype: ElementType
    # None marks a dynamic axis (batch, or any size the graph accepts).
    shape: list[int | None]


class Preprocessing(_Strict):
    """How an image becomes the input tensor. ``size`` is (height, width) of the network input."""

    size: tuple[int, int]
    resize: Literal["letterbox", "stretch"] = "letterbox"
    pad_value: int = Field(114, ge=0, le=255)
    color: Literal["RGB"] = "RGB"
    layout: Literal["NCHW"] = "NCHW"
    scale: float = 1.0 / 255.0
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)


class ClassificationDecoding(_Strict):
    logits_output: str = "logits"
    activation: Literal["softmax", "sigmoid", "none"] = "softmax"


class DetectionDecoding(_Strict):
    boxes_output: str = "boxes"
    scores_output: str = "scores"
    box_format: Literal["xyxy"] = "xyxy"
    # The exported graph turns the grid into boxes and scores; the service never decodes a grid.
    decoded_in_graph: Literal[True] = True


class SegmentationDecoding(_Strict):
    logits_output: str = "logits"
    activation: Literal["sigmoid", "softmax"] = "sigmoid"
    threshold: float = Field(0.5, gt=0.0, lt=1.0)


class ForecastingDecoding(_Strict):
    series_input: str = "series"
    forecast_output: str = "forecast"
    window: int = Field(gt=0)
    horizon: int = Field(gt=0)
    quantiles: tuple[float, ...] = (0.5,)
    # window_standard: each input window is scaled by its own mean and std, so one model serves any
    # series scale; the output is mapped back with the same numbers.
    normalisation: Literal["window_standard", "none"] = "window_standard"
    # std below this is replaced by it, so a flat window maps to zeros instead of dividing by 0.
    std_floor: float = Field(1e-6, gt=0.0)
    frequency: str | None = None
    # ar_aic: the model corrects an AR(p) forecast that the service computes per series
    # (service.dataplane.tasks.autoregressive: a constant plus p lags, least squares on the last
    # base_history values, p chosen by AIC up to min(base_max_order, values // 4)), standardised
    # like the window and fed as base_input [N, horizon], with the root mean square of the fit's
    # one-step residuals as base_scale_input [N, 1]. It gives a global model what one series'
    # whole history says, which a fixed window cannot.
    base: Literal["none", "ar_aic"] = "none"
    base_input: str = "base"
    base_scale_input: str = "base_scale"
    base_history: int = Field(1024, gt=0)
    base_max_order: int = Field(36, gt=0)
    # Box-Cox powers (0: the log) the AR(p) is also fitted to when a series admits them; one
    # replaces the fit on levels when its one-step mean absolute error is lower and its forecast
    # stays near the history's range (service.dataplane.tasks.autoregressive.forecast_and_scale).
    base_powers: list[Annotated[float, Field(ge=0.0)]] = []
    # Season length by a series' posted freq (e.g. {"MS": 12, "QS": 4}): a series of such a freq
    # whose seasonal strength is at least 0.64 gets the airline model, ARIMA(0,1,1)(0,1,1), as its
    # base instead of AR(p) (service.dataplane.tasks.seasonal). Empty: AR(p) for every series.
    base_seasonal_periods: dict[str, Annotated[int, Field(gt=1)]] = {}
    # How the airline model's two coefficients are estimated: "conditional" (least conditional
    # sum of squares) or "exact" (greatest exact likelihood; service.dataplane.tasks.seasonal).
    base_seasonal_fit: Literal["conditional", "exact"] = "conditional"

    @model_validator(mode="after")
    def _check_quantiles(self) -> ForecastingDecoding:
        if list(self.quantiles) != sorted(set(self.quantiles)) or not all(
            0.0 < q < 1.0 for q in self.quantiles
        ):
            raise ValueError("quantiles must be strictly increasing values in (0, 1)")
        return self


class StreamDefaults(_Strict):
    """A detector version's own defaults for the stream's tracker (``/v1/stream``,
    ``polypserve analyze``), chosen for its scores; unset fields keep the tracker's defaults
    (``service.stream.tracking.SmoothingConfig``), and a session's query overrides either."""

    off_threshold: float | None = Field(None, ge=0.0, le=1.0)
    min_hits: int | None = Field(None, ge=1)
    window: int | None = Field(None, ge=1, le=100)
    max_misses: int | None = Field(None, ge=1, le=100)
    match_iou: float | None = Field(None, gt=0.0, le=1.0)
    match_distance: float | None = Field(None, ge=0.0, le=5.0)
    box_alpha: float | None = Field(None, gt=0.0, le=1.0)


class ServingDefaults(_Strict):
    score_threshold: float = Field(0.4, ge=0.0, le=1.0)
    iou_threshold: float = Field(0.45, ge=0.0, le=1.0)
    max_detections: int = Field(100, gt=0)
    top_k: int = Field(5, gt=0)
    max_batch_size: int = Field(8, gt=0)
    stream: StreamDefaults = StreamDefaults()


class Provenance(_Strict):
    dataset: str
    split: str
    command: str
    git_commit: str
    date: str
    framework: str = ""
    # the weights training started from (package, version, licence), when not from scratch
    pretrained: str = ""
    # how many runs scored this version's test splits (the model card says it too)
    test_evaluations: int = Field(0, ge=0)


# split name -> metric name -> value, measured by the training script on held-out data.
Metrics = dict[str, dict[str, float]]


class Manifest(_Strict):
    schema_version: Literal[1] = 1
    task: Task
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_\-]{0,63}$")]
    version: int = Field(ge=1)
    description: str = ""
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    labels: list[str] = Field(default_factory=list)
    preprocessing: Preprocessing | None = None
    classification: ClassificationDecoding | None = None
    detection: DetectionDecoding | None = None
    segmentation: SegmentationDecoding | None = None
    forecasting: ForecastingDecoding | None = None
    defaults: ServingDefaults = ServingDefaults()
    provenance: Provenance | None = None
    metrics: Metrics = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_task_sections(self) -> Manifest:
        for task in TASKS:
            present = getattr(self, task) is not None
            if task == self.task and not present:
                raise ValueError(f"a {task} manifest needs a '{task}' decoding section")
            if task != self.task and present:
                raise ValueError(f"a {self.task} manifest must not have a '{task}' section")
        image_task = self.task != "forecasting"
        if image_task and self.preprocessing is None:
            raise ValueError(f"a {self.task} manifest needs a 'preprocessing' section")
        if image_task and not self.labels:
            raise ValueError(f"a {self.task} manifest needs at least one label")
        return self

    def output_names(self) -> list[str]:
        return [spec.name for spec in self.outputs]

    @classmethod
    def read(cls, path: Path) -> Manifest:
        return cls.model_validate_json(path.read_bytes())

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2) + "\n")
