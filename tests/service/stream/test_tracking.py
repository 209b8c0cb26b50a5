from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from service.stream.tracking import SmoothingConfig, Tracker

BOX = np.array([[100.0, 100.0, 200.0, 200.0]])


def _feed(tracker: Tracker, frame: int, scores: list[float], boxes: np.ndarray = BOX) -> list[int]:
    """Feed a frame; returns the ids of the shown tracks."""
    rows = boxes[: len(scores)] if scores else np.zeros((0, 4))
    tracks = tracker.update(frame, rows, np.array(scores), np.zeros(len(scores), np.int64))
    return [t.track_id for t in tracks if t.visible]


def test_a_track_shows_after_min_hits_of_window() -> None:
    tracker = Tracker(SmoothingConfig(min_hits=3, window=5))
    shown = [_feed(tracker, f, [0.9]) for f in range(4)]
    assert shown == [[], [], [1], [1]]


def test_single_frame_false_positives_never_show() -> None:
    tracker = Tracker(SmoothingConfig(min_hits=2, window=3, max_misses=1))
    shown = [_feed(tracker, f, [0.9] if f % 3 == 0 else []) for f in range(12)]
    assert all(ids == [] for ids in shown)
    assert all(t.first_visible_frame is None for t in tracker.all_tracks())


def test_hysteresis_keeps_a_shown_track_on_weaker_scores() -> None:
    tracker = Tracker(SmoothingConfig(on_threshold=0.5, off_threshold=0.2, min_hits=2, window=3))
    assert _feed(tracker, 0, [0.9]) == []
    assert _feed(tracker, 1, [0.9]) == [1]
    # Scores between the thresholds sustain the shown track...
    assert [_feed(tracker, f, [0.3]) for f in range(2, 6)] == [[1]] * 4
    # ...but cannot start one.
    fresh = Tracker(SmoothingConfig(on_threshold=0.5, off_threshold=0.2, min_hits=1))
    assert _feed(fresh, 0, [0.3]) == []


def test_a_track_survives_short_gaps_and_ends_after_max_misses() -> None:
    tracker = Tracker(SmoothingConfig(min_hits=1, max_misses=2))
    assert _feed(tracker, 0, [0.9]) == [1]
    assert _feed(tracker, 1, []) == [1]  # one miss: still shown
    assert _feed(tracker, 2, [0.9]) == [1]  # same id after the gap
    for frame in (3, 4, 5):
        _feed(tracker, frame, [])
    assert tracker.tracks == [] and [t.track_id for t in tracker.finished] == [1]
    assert _feed(tracker, 6, [0.9]) == [2]


def test_boxes_are_smoothed_and_ids_follow_motion() -> None:
    tracker = Tracker(SmoothingConfig(min_hits=1, box_alpha=0.5))
    _feed(tracker, 0, [0.9])
    moved = BOX + 20
    tracks = tracker.update(1, moved, np.array([0.9]), np.zeros(1, np.int64))
    np.testing.assert_allclose(tracks[0].box, BOX[0] + 10)
    assert tracks[0].track_id == 1


def test_two_objects_get_two_tracks() -> None:
    tracker = Tracker(SmoothingConfig(min_hits=1))
    boxes = np.array([[0.0, 0, 50, 50], [300, 300, 380, 380]])
    assert sorted(_feed(tracker, 0, [0.9, 0.8], boxes)) == [1, 2]
    assert sorted(_feed(tracker, 1, [0.8, 0.9], boxes)) == [1, 2]


def test_config_is_checked() -> None:
    with pytest.raises(ValidationError, match="off_threshold"):
        SmoothingConfig(on_threshold=0.3, off_threshold=0.5)
    with pytest.raises(ValidationError, match="min_hits"):
        SmoothingConfig(min_hits=6, window=5)


def test_a_fast_moving_polyp_keeps_its_track_by_centre_distance() -> None:
    moved = BOX + np.array([80.0, 0.0, 80.0, 0.0])  # IoU 0.11, centre 0.57 diagonals away
    near = Tracker(SmoothingConfig(min_hits=1, match_distance=1.0))
    _feed(near, 0, [0.9])
    assert _feed(near, 1, [0.9], moved) == [1]
    far = Tracker(SmoothingConfig(min_hits=1, match_distance=0.0, max_misses=2))
    _feed(far, 0, [0.9])
    assert sorted(_feed(far, 1, [0.9], moved)) == [1, 2]  # a second, new track
