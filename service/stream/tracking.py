"""Temporal smoothing of per-frame detections: IoU tracks, persistence, hysteresis.

What endoscopists ask of a CADe overlay is calm: no box that flickers on for one frame, no box
that lingers where the polyp no longer is. A track is *shown* once it has been hit in
``min_hits`` of the last ``window`` frames by detections at or above ``on_threshold``; once
shown, matches down to ``off_threshold`` keep it (hysteresis); it hides after ``max_misses``
frames without a match and ends one frame later. Shown boxes are exponentially smoothed.

The defaults were chosen on CVC-ClinicDB sequences 1-14 and reported on 15-29
(``python -m tests.perf.smoothing``). Those frames are sampled sparsely from video: a polyp
often moves further between two of them than its own size, so matching also accepts nearby
centres, and a box is hidden at its first missed frame. For dense 30 fps video, a lower
``off_threshold`` (0.25), a larger ``max_misses`` (3) and a smaller ``box_alpha`` (0.5) give a
steadier overlay.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service.dataplane.tasks.detection import box_iou


class SmoothingConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    on_threshold: float = Field(0.4, ge=0.0, le=1.0)
    # Equal to on_threshold by default: on the sparse ClinicDB frames, weaker matches kept
    # more wrong boxes than right ones. Lower it for dense video.
    off_threshold: float = Field(0.4, ge=0.0, le=1.0)
    min_hits: int = Field(2, ge=1)
    window: int = Field(3, ge=1, le=100)
    max_misses: int = Field(1, ge=1, le=100)
    match_iou: float = Field(0.3, gt=0.0, le=1.0)
    # Also a match: a detection whose centre is within this many track-box diagonals of the
    # track's centre (0 turns it off). Endoscope motion moves a polyp further between frames
    # than its own size more often than IoU alone tolerates.
    match_distance: float = Field(2.0, ge=0.0, le=5.0)
    box_alpha: float = Field(0.7, gt=0.0, le=1.0, description="weight of the newest box")

    @model_validator(mode="after")
    def _check(self) -> SmoothingConfig:
        if self.off_threshold > self.on_threshold:
            raise ValueError("off_threshold must not exceed on_threshold")
        if self.min_hits > self.window:
            raise ValueError("min_hits must not exceed window")
        return self


@dataclass
class Track:
    track_id: int
    box: np.ndarray  # smoothed xyxy
    score: float
    class_id: int
    first_frame: int
    last_hit_frame: int
    hits: deque[bool]
    misses: int = 0
    visible: bool = False
    first_visible_frame: int | None = None
    shown_frames: int = 0
    toggles: int = field(default=0)  # hidden <-> shown switches, a flicker measure


class Tracker:
    def __init__(self, config: SmoothingConfig) -> None:
        self.config = config
        self.tracks: list[Track] = []
        self.finished: list[Track] = []
        self._next_id = 1

    def update(
        self, frame: int, boxes_xyxy: np.ndarray, scores: np.ndarray, class_ids: np.ndarray
    ) -> list[Track]:
        """Feed one frame's raw detections (any score); returns the live tracks."""
        cfg = self.config
        keep = scores >= cfg.off_threshold
        boxes_xyxy, scores, class_ids = boxes_xyxy[keep], scores[keep], class_ids[keep]
        matches = self._match(boxes_xyxy, class_ids)
        matched_tracks = {t for t, _ in matches}
        matched_dets = {d for _, d in matches}
        for track_index, det in matches:
            track = self.tracks[track_index]
            strong = bool(scores[det] >= cfg.on_threshold)
            # Hysteresis: a shown track is sustained by weaker matches; a hidden one is not.
            track.hits.append(strong or track.visible)
            track.misses = 0
            track.last_hit_frame = frame
            track.box = cfg.box_alpha * boxes_xyxy[det] + (1 - cfg.box_alpha) * track.box
            track.score = cfg.box_alpha * float(scores[det]) + (1 - cfg.box_alpha) * track.score
        for index, track in enumerate(self.tracks):
            if index not in matched_tracks:
                track.hits.append(False)
                track.misses += 1
        for det in range(len(scores)):
            if det not in matched_dets and scores[det] >= cfg.on_threshold:
                self.tracks.append(
                    self._new_track(frame, boxes_xyxy[det], scores[det], class_ids[det])
                )
        alive = []
        for track in self.tracks:
            self._update_visibility(track, frame)
            if track.misses > cfg.max_misses:
                self.finished.append(track)
            else:
                alive.append(track)
        self.tracks = alive
        return alive

    def all_tracks(self) -> list[Track]:
        return [*self.finished, *self.tracks]

    def _match(self, boxes_xyxy: np.ndarray, class_ids: np.ndarray) -> list[tuple[int, int]]:
        """Greedy one-to-one matching by IoU, best pairs first, within a class."""
        if not self.tracks or boxes_xyxy.shape[0] == 0:
            return []
        pairs: list[tuple[float, float, int, int]] = []
        centres = (boxes_xyxy[:, :2] + boxes_xyxy[:, 2:]) / 2
        for t, track in enumerate(self.tracks):
            ious = box_iou(track.box, boxes_xyxy)
            diagonal = max(float(np.hypot(*(track.box[2:] - track.box[:2]))), 1e-6)
            distances = np.hypot(*(centres - (track.box[:2] + track.box[2:]) / 2).T) / diagonal
            close = (ious >= self.config.match_iou) | (distances <= self.config.match_distance)
            close &= class_ids == track.class_id
            pairs.extend(
                (float(ious[d]), -float(distances[d]), t, int(d)) for d in np.flatnonzero(close)
            )
        pairs.sort(reverse=True)
        used_t: set[int] = set()
        used_d: set[int] = set()
        matches: list[tuple[int, int]] = []
        for _, _, t, d in pairs:
            if t not in used_t and d not in used_d:
                used_t.add(t)
                used_d.add(d)
                matches.append((t, d))
        return matches

    def _new_track(self, frame: int, box: np.ndarray, score: float, class_id: int) -> Track:
        track = Track(
            track_id=self._next_id,
            box=box.astype(np.float64),
            score=float(score),
            class_id=int(class_id),
            first_frame=frame,
            last_hit_frame=frame,
            hits=deque([True], maxlen=self.config.window),
        )
        self._next_id += 1
        return track

    def _update_visibility(self, track: Track, frame: int) -> None:
        cfg = self.config
        was_visible = track.visible
        if not track.visible and sum(track.hits) >= cfg.min_hits:
            track.visible = True
            if track.first_visible_frame is None:
                track.first_visible_frame = frame
        elif track.visible and track.misses >= cfg.max_misses:
            track.visible = False
        if track.visible != was_visible:
            track.toggles += 1
        if track.visible:
            track.shown_frames += 1
