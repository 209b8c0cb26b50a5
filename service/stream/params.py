"""A stream session's parameters: the query of ``WS /v1/stream`` and what they resolve to.

Every client of the tracker resolves them here, so a recorded video analysed in process
(``polypserve analyze``) runs with exactly the thresholds and smoothing a live session would
get from the same query and the model's manifest defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from service.repository.manifest import ServingDefaults, StreamDefaults
from service.stream.tracking import SmoothingConfig


class StreamParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    version: int | None = Field(None, ge=1)
    iou_threshold: float | None = Field(None, ge=0.0, le=1.0)
    max_detections: int | None = Field(None, ge=1, le=1000)
    # Smoothing, see service.stream.tracking; score_threshold is the switch-on threshold.
    score_threshold: float | None = Field(None, ge=0.0, le=1.0)
    off_threshold: float | None = Field(None, ge=0.0, le=1.0)
    min_hits: int | None = None
    window: int | None = None
    max_misses: int | None = None
    match_iou: float | None = None
    match_distance: float | None = None
    box_alpha: float | None = None


@dataclass(frozen=True)
class StreamOptions:
    """What a session runs with once the query is merged with the model's defaults."""

    smoothing: SmoothingConfig
    iou_threshold: float
    max_detections: int


def resolve_options(params: StreamParams, defaults: ServingDefaults) -> StreamOptions:
    """The query's values, else the model version's stream defaults, else the tracker's own; a
    default switch-off threshold above the switch-on one is lowered to it. Raises pydantic's
    ``ValidationError`` when the smoothing does not hold together."""
    on = defaults.score_threshold if params.score_threshold is None else params.score_threshold
    given = defaults.stream.model_dump(exclude_none=True)
    given |= params.model_dump(include=set(StreamDefaults.model_fields), exclude_none=True)
    if params.off_threshold is None:
        given["off_threshold"] = min(
            on, given.get("off_threshold", SmoothingConfig().off_threshold)
        )
    return StreamOptions(
        smoothing=SmoothingConfig(on_threshold=on, **given),
        iou_threshold=(
            defaults.iou_threshold if params.iou_threshold is None else params.iou_threshold
        ),
        max_detections=params.max_detections or defaults.max_detections,
    )
