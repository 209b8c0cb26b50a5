"""In-process analysis of recorded frames, with the service's own code end to end.

The detection model is loaded by the repository code (``Registry``: the manifest checked
against the graph, the providers, the warm-up). A folder's image is prepared by the data plane
as ``/v1/stream`` prepares the same bytes sent to it. A video frame is resized from the
decoder's picture by FFmpeg (``scaled_rgb``: a tenth of a grey level from the data plane's
resize on average, at a third of its cost), then placed and normalised by the data plane's own
code. The outputs become tracks through the stream's own ``FrameTracker`` with the parameters a
session resolves from the same query.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np
from pydantic import ValidationError

from service.config import Settings
from service.dataplane.imaging import open_image
from service.dataplane.predict import prepare_batch
from service.dataplane.tasks.geometry import (
    Placement,
    normalise_to_nchw,
    paste_into_input,
    place_image,
)
from service.dataplane.timing import StageTimer
from service.errors import ModelNotFoundError
from service.repository.manifest import MANIFEST_FILE, Manifest
from service.repository.model_version import ModelVersion
from service.repository.registry import Registry, discover
from service.stream.frame_results import FrameTracker
from service.stream.params import StreamParams, resolve_options
from service.stream.report import summarize_track
from service.video.decode import scaled_rgb
from service.video.source import SourceFrame

Prepared = tuple[np.ndarray, Placement]


def load_detector(settings: Settings, name: str | None, version: int | None) -> ModelVersion:
    """The detection model a stream session would get for ``name`` and ``version``; only that
    model's versions are loaded."""
    name = name or settings.default_models.get("detection") or _only_detection_model(settings)
    registry = Registry(settings)
    registry.reload(name)
    return registry.for_task("detection", name, version)


def _only_detection_model(settings: Settings) -> str:
    names = []
    for name, versions in discover(settings.models_dir).items():
        for path in versions.values():
            try:
                manifest = Manifest.read(path / MANIFEST_FILE)
            except (OSError, ValidationError):
                continue  # the registry says why when this model is asked for
            if manifest.task == "detection":
                names.append(name)
                break
    if not names:
        raise ModelNotFoundError(f"no detection model in {settings.models_dir}")
    if len(names) > 1:
        raise ModelNotFoundError(
            f"several detection models in {settings.models_dir} ({', '.join(sorted(names))}); "
            "name one with --model",
            models=sorted(names),
        )
    return names[0]


class LocalAnalyzer:
    """Frames in, the stream's per-frame results out, in this process."""

    def __init__(self, model: ModelVersion, params: StreamParams, max_pixels: int) -> None:
        assert model.manifest is not None and model.session is not None
        self.model, self.session, self.max_pixels = model, model.session, max_pixels
        options = resolve_options(params, model.manifest.defaults)
        self.model_info = {"name": model.name, "version": model.version}
        self.processing = {"mode": "in-process", "providers": list(model.session.providers)}
        self.smoothing = options.smoothing.model_dump()
        self._frames = FrameTracker(model.manifest, options)
        self._input_name = model.manifest.inputs[0].name
        assert model.manifest.preprocessing is not None  # an image model's manifest has it
        self._preprocessing = model.manifest.preprocessing
        self._output_names = model.manifest.output_names()

    def prepare(self, frame: SourceFrame) -> Prepared:
        """Decode, resize and normalise: thread-safe, run ahead of ``analyze``."""
        if frame.picture is not None:
            return self._prepare_picture(frame.picture)
        assert frame.data is not None, "a source yields a video's pictures or a folder's files"
        opened = open_image(frame.data, max_pixels=self.max_pixels)
        batch, (placement,) = prepare_batch(self.model, [opened], StageTimer())
        return batch, placement

    def _prepare_picture(self, picture: av.VideoFrame) -> Prepared:
        pre = self._preprocessing
        placement = place_image(picture.width, picture.height, pre.size, pre.resize)
        resized = scaled_rgb(picture, placement.resized_width, placement.resized_height)
        placed = paste_into_input(resized, placement, pre.pad_value)
        return normalise_to_nchw(placed[None], pre.scale, pre.mean, pre.std), placement

    def analyze(self, frame: SourceFrame, prepared: Prepared) -> dict[str, Any]:
        """Inference and tracking: frames in order, one at a time."""
        batch, placement = prepared
        outputs = self.session.run({self._input_name: batch}, self._output_names)
        tracked = self._frames.track(
            frame.index, dict(zip(self._output_names, outputs, strict=True)), placement
        )
        return {"frame_index": frame.index, "timestamp": frame.time_s, **tracked}

    def track_summaries(self) -> list[dict[str, Any]]:
        """Every track, shown or not, as the stream's session report lists them."""
        return [summarize_track(track) for track in self._frames.all_tracks()]

    def close(self) -> None:
        pass
