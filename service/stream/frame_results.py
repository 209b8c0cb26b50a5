"""One frame's network outputs to the stream's result: raw detections and smoothed tracks.

The live session (``service.stream.session``) and the recorded-video analysis
(``service.video``) both turn outputs into tracks here, so the same frames give the same tracks
whichever way they arrive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from service.dataplane.predict import format_detections, label_of, round_box, round_score
from service.dataplane.tasks.detection import select_detections
from service.dataplane.tasks.geometry import Placement, boxes_to_image
from service.repository.manifest import Manifest
from service.stream.params import StreamOptions
from service.stream.tracking import Track, Tracker


class FrameTracker:
    """A session's tracker, fed one frame's raw outputs at a time."""

    def __init__(self, manifest: Manifest, options: StreamOptions) -> None:
        assert manifest.detection is not None
        self.decoding = manifest.detection
        self.labels = manifest.labels
        self.options = options
        self.tracker = Tracker(options.smoothing)

    def track(
        self, frame_index: int, outputs: dict[str, np.ndarray], placement: Placement
    ) -> dict[str, Any]:
        """The result's ``image``, ``detections`` (raw, at or above the switch-on threshold)
        and ``tracks`` (smoothed, shown ones only) for one image of a batch of one."""
        smoothing = self.options.smoothing
        boxes, scores, class_ids = select_detections(
            outputs[self.decoding.boxes_output][0],
            outputs[self.decoding.scores_output][0],
            smoothing.off_threshold,
            self.options.iou_threshold,
            self.options.max_detections,
        )
        boxes = boxes_to_image(boxes, placement)
        tracks = self.tracker.update(frame_index, boxes, scores, class_ids)
        shown = scores >= smoothing.on_threshold
        return {
            "image": {"width": placement.image_width, "height": placement.image_height},
            "detections": format_detections(
                self.labels, boxes[shown], scores[shown], class_ids[shown]
            ),
            "tracks": [self._shown(t, frame_index) for t in tracks if t.visible],
        }

    def all_tracks(self) -> list[Track]:
        return self.tracker.all_tracks()

    def _shown(self, track: Track, frame_index: int) -> dict[str, Any]:
        return {
            "track_id": track.track_id,
            "box": round_box(track.box),
            "score": round_score(track.score),
            "label": label_of(self.labels, track.class_id),
            "class_id": track.class_id,
            "age": frame_index - track.first_frame + 1,
            "hits": int(sum(track.hits)),
        }
