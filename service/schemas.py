"""Wire types of the v1 API: requests end in ``Request``, results in ``Result``/``Response``."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from typing_extensions import TypedDict

from service.dataplane.tasks.forecasting import Frequency, MissingPolicy


def _encodable(text: str) -> str:
    # JSON may carry a lone surrogate ("\ud800"); no UTF-8 answer could echo it back.
    try:
        text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode (it holds a lone surrogate)") from None
    return text


# A client's string that the service echoes back (ids, model names).
Text = Annotated[str, Field(max_length=256), AfterValidator(_encodable)]


# The image results are TypedDicts: the data plane builds them as plain dicts (no validation
# per request) and mypy checks them against these declarations, which the OpenAPI documents.


class ModelRef(TypedDict):
    name: str
    version: int


class ImageSize(TypedDict):
    width: int
    height: int


class LabelScore(TypedDict):
    label: str
    class_id: int
    score: Annotated[float, Field(description="0 to 1, 5 decimals, as detection scores")]


class ClassificationResult(TypedDict):
    labels: list[LabelScore]


class Detection(TypedDict):
    box: Annotated[
        list[float],
        Field(
            description="[x1, y1, x2, y2] in the original image's pixels, as floats (2 decimals)"
        ),
    ]
    score: Annotated[float, Field(description="0 to 1, 5 decimals")]
    label: str
    class_id: int


class DetectionResult(TypedDict):
    image: ImageSize
    detections: list[Detection]


class RunLength(TypedDict):
    size: Annotated[list[int], Field(description="[height, width]")]
    counts: Annotated[
        list[int], Field(description="COCO uncompressed RLE, column-major, zeros first")
    ]


class MaskResult(TypedDict):
    label: str
    class_id: int
    area_fraction: float
    box: Annotated[
        list[int] | None,
        Field(
            description=(
                "[x1, y1, x2, y2] in whole pixels of the original image, ends exclusive (x2 - x1 "
                "is the width: the mask's pixels are columns x1 to x2 - 1), unlike a detection's "
                "float box; null if the mask is empty"
            )
        ),
    ]
    rle: RunLength


class SegmentationResult(TypedDict):
    image: ImageSize
    masks: list[MaskResult]


class ImageResponse(BaseModel):
    model: ModelRef
    results: list[ClassificationResult] | list[DetectionResult] | list[SegmentationResult]
    timing_ms: dict[str, float]


class SeriesIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Text | None = None
    values: list[float | None] = Field(min_length=1)
    start: datetime | None = Field(None, description="timestamp of the first value")
    freq: Frequency | None = Field(None, description="step between values")
    missing: MissingPolicy = "error"


class ForecastRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: Text | None = None
    version: int | None = Field(None, ge=1)
    horizon: int = Field(ge=1)
    series: list[SeriesIn] = Field(min_length=1)
    quantiles: list[float] | None = None


class SeriesForecast(BaseModel):
    id: str | None
    forecast: list[float]
    quantiles: dict[str, list[float]] = Field(default_factory=dict)
    timestamps: list[str] | None = None
    filled_values: int = Field(0, description="missing values filled by the 'missing' policy")


class ForecastResponse(BaseModel):
    model: ModelRef
    results: list[SeriesForecast]
    timing_ms: dict[str, float]


class ModelVersionInfo(BaseModel):
    version: int
    state: str
    reason: str | None
    providers: list[str]
    manifest: dict[str, Any] | None


class ModelInfo(BaseModel):
    name: str
    task: str | None
    default_version: int | None
    versions: list[ModelVersionInfo]
    limits: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, dict[str, float]] = Field(default_factory=dict)


class ModelList(BaseModel):
    models: list[ModelInfo]


VideoJobState = Literal["queued", "running", "done", "failed"]


class VideoInputInfo(BaseModel):
    """What the uploaded video's header says; ``frames`` and ``duration_s`` may be unknown."""

    filename: str
    bytes: int
    container: str
    codec: str
    width: int
    height: int
    fps: float
    duration_s: float | None
    frames: int | None


class VideoJobProgress(BaseModel):
    frames_done: int = 0
    frames_total: int | None = None  # the header's count, or its duration times its rate
    percent: float | None = None
    fps: float | None = None  # frames a second over the last few seconds
    eta_s: float | None = None


class VideoJobInfo(BaseModel):
    id: str
    state: VideoJobState
    error: str | None = None  # why a job failed
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    model: ModelRef
    params: dict[str, Any]  # the stream query parameters the job was given
    input: VideoInputInfo
    progress: VideoJobProgress
    report_url: str | None = None  # once done
    video_url: str | None = None


class VideoJobList(BaseModel):
    jobs: list[VideoJobInfo]


class ErrorResponse(BaseModel):
    model_config = ConfigDict(extra="allow")

    error: str
