"""The analysis report: the input, every track shown on the video, totals and the speed.

Built from the stream's own answers (each frame's shown tracks, then the session report's
track summaries), whether they came from this process or from a running service, so both ways
give the same report for the same frames. A track is in ``tracks`` once its box was shown on
at least one frame; its scores are the smoothed ones drawn with it, and its best view is the
frame where that score peaked (the first such frame).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from service.dataplane.predict import SCORE_DECIMALS
from service.video.source import InputInfo

TIME_DECIMALS = 3


@dataclass
class _ShownTrack:
    track_id: int
    label: str
    class_id: int
    first_frame: int
    first_time_s: float
    last_frame: int
    last_time_s: float
    shown_frames: int
    score_sum: float
    max_score: float
    best_frame: int
    best_time_s: float
    best_box: list[float]


class ReportBuilder:
    def __init__(self, info: InputInfo) -> None:
        self.info = info
        self.frames = 0
        self.frames_with_tracks = 0
        self._tracks: dict[int, _ShownTrack] = {}

    def add(self, result: dict[str, Any]) -> list[int]:
        """One frame's stream result; returns the ids of tracks whose best view it is so far."""
        frame, time_s = int(result["frame_index"]), float(result["timestamp"])
        self.frames += 1
        self.frames_with_tracks += bool(result["tracks"])
        better = []
        for shown in result["tracks"]:
            track = self._tracks.get(shown["track_id"])
            score = float(shown["score"])
            if track is None:
                track = self._tracks[shown["track_id"]] = _ShownTrack(
                    shown["track_id"], shown["label"], shown["class_id"], frame, time_s,
                    frame, time_s, 0, 0.0, -1.0, frame, time_s, shown["box"],
                )  # fmt: skip
            track.last_frame, track.last_time_s = frame, time_s
            track.shown_frames += 1
            track.score_sum += score
            if score > track.max_score:
                track.max_score, track.best_box = score, shown["box"]
                track.best_frame, track.best_time_s = frame, time_s
                better.append(track.track_id)
        return better

    def build(
        self,
        summaries: list[dict[str, Any]],
        model: dict[str, Any],
        smoothing: dict[str, Any],
        processing: dict[str, Any],
        output: dict[str, Any] | None = None,
        thumbnails: dict[int, str] | None = None,
    ) -> dict[str, Any]:
        """``summaries``: the session report's tracks (every track, shown or not)."""
        by_id = {s["track_id"]: s for s in summaries}
        interval = 1 / float(self.info.rate)
        tracks = []
        for track in sorted(self._tracks.values(), key=lambda t: t.track_id):
            summary = by_id.get(track.track_id, {})
            tracks.append(
                {
                    "track_id": track.track_id,
                    "label": track.label,
                    "class_id": track.class_id,
                    "first_frame": track.first_frame,
                    "last_frame": track.last_frame,
                    "first_time_s": _seconds(track.first_time_s),
                    "last_time_s": _seconds(track.last_time_s),
                    # from the start of its first shown frame to the end of its last
                    "duration_s": _seconds(track.last_time_s - track.first_time_s + interval),
                    "shown_frames": track.shown_frames,
                    "max_score": round(track.max_score, SCORE_DECIMALS),
                    "mean_score": round(track.score_sum / track.shown_frames, SCORE_DECIMALS),
                    "best_frame": track.best_frame,
                    "best_time_s": _seconds(track.best_time_s),
                    "best_box": track.best_box,
                    # the first raw detection, before smoothing showed the track
                    "detected_frame": summary.get("first_seen_frame"),
                    "toggles": summary.get("toggles"),
                    **({"thumbnail": thumbnails[track.track_id]} if thumbnails else {}),
                }
            )
        info = self.info
        duration = info.duration_s if info.duration_s is not None else self.frames * interval
        return {
            "input": {
                "path": info.path,
                "kind": info.kind,
                "container": info.container,
                "codec": info.codec,
                "width": info.width,
                "height": info.height,
                "fps": round(float(info.rate), TIME_DECIMALS),
                "duration_s": _seconds(duration),
                "frames": self.frames,
            },
            "model": model,
            "smoothing": smoothing,
            "output": output,
            "tracks": tracks,
            "totals": {
                "frames": self.frames,
                "frames_with_tracks": self.frames_with_tracks,
                "tracks": len(tracks),
                "tracks_never_shown": sum(s["track_id"] not in self._tracks for s in summaries),
            },
            "processing": processing,
        }


def _seconds(value: float) -> float:
    return round(value, TIME_DECIMALS)
