"""Per-session counters and the session report (frames, drops, latency, tracks)."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from service.stream.tracking import Track

# Latency samples kept per session: enough for percentiles, bounded for long sessions.
_MAX_SAMPLES = 100_000


@dataclass
class SessionStats:
    received: int = 0
    processed: int = 0
    dropped: int = 0
    errors: int = 0
    frames_with_tracks: int = 0
    started: float = field(default_factory=time.perf_counter)
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_SAMPLES))
    _dropped_since_result: int = 0

    def count_drop(self) -> None:
        self.dropped += 1
        self._dropped_since_result += 1

    def take_dropped_since_result(self) -> int:
        dropped, self._dropped_since_result = self._dropped_since_result, 0
        return dropped

    def record_result(self, latency_ms: float, shows_tracks: bool) -> None:
        self.processed += 1
        self.frames_with_tracks += int(shows_tracks)
        self.latencies_ms.append(latency_ms)

    def report(self, tracks: list[Track]) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.started
        latencies = np.asarray(self.latencies_ms, dtype=np.float64)
        percentiles: dict[str, float | None] = {"p50": None, "p95": None, "p99": None, "max": None}
        if latencies.size:
            p50, p95, p99 = np.percentile(latencies, [50, 95, 99])
            percentiles = {
                "p50": round(float(p50), 3),
                "p95": round(float(p95), 3),
                "p99": round(float(p99), 3),
                "max": round(float(latencies.max()), 3),
            }
        return {
            "type": "report",
            "frames": {
                "received": self.received,
                "processed": self.processed,
                "dropped": self.dropped,
                "errors": self.errors,
                # Frames still in a slot or in flight when the report was made.
                "in_flight": self.received - self.processed - self.dropped - self.errors,
            },
            "duration_s": round(elapsed, 3),
            "processed_fps": round(self.processed / elapsed, 3) if elapsed > 0 else 0.0,
            "latency_ms": percentiles,
            "tracks": [summarize_track(t) for t in tracks],
            "alerts": sum(1 for t in tracks if t.first_visible_frame is not None),
        }


def summarize_track(track: Track) -> dict[str, Any]:
    shown = track.first_visible_frame
    return {
        "track_id": track.track_id,
        "class_id": track.class_id,
        "first_seen_frame": track.first_frame,
        "last_seen_frame": track.last_hit_frame,
        "duration_frames": track.last_hit_frame - track.first_frame + 1,
        "first_shown_frame": shown,
        # Frames from the first raw detection to the first shown box: the cost of smoothing.
        "frames_to_first_display": None if shown is None else shown - track.first_frame,
        "shown_frames": track.shown_frames,
        "toggles": track.toggles,
    }
