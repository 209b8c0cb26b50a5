"""The smoothing evaluation's scoring, on hand-made sequences whose figures are known."""

from __future__ import annotations

import numpy as np

from service.stream.tracking import SmoothingConfig
from tests.perf.smoothing import Frame, candidates, score, shown_boxes

POLYP = np.array([[10.0, 10.0, 50.0, 50.0]])
ELSEWHERE = np.array([[100.0, 100.0, 140.0, 140.0]])


def frame(truth: np.ndarray, boxes: np.ndarray, scores: list[float]) -> Frame:
    return Frame(truth.reshape(-1, 4), boxes.reshape(-1, 4), np.asarray(scores))


def test_score_counts_hits_false_positives_toggles_and_first_display() -> None:
    empty = np.zeros((0, 4))
    frames = [
        frame(empty, empty, []),  # no polyp yet
        frame(POLYP, empty, []),  # polyp appears, missed
        frame(POLYP, POLYP, [0.9]),  # found: 1 frame after it appeared
        frame(POLYP, np.vstack([POLYP, ELSEWHERE]), [0.9, 0.8]),  # one false positive
    ]
    got = score([(frames, shown_boxes(frames, None))])
    assert got["per_frame_recall"] == round(2 / 3, 3)
    minutes = 4 / 30 / 60
    assert got["false_positives_per_min"] == round(1 / minutes, 1)
    assert got["toggles_per_min"] == round(1 / minutes, 1)  # hidden -> shown once
    assert (got["polyps_seen"], got["polyps"], got["frames_to_first_display"]) == (1, 1, 1.0)


def test_tracker_holds_a_box_through_a_missed_frame_and_waits_for_hits() -> None:
    frames = [frame(POLYP, POLYP, [0.9]) for _ in range(5)]
    frames[3] = frame(POLYP, np.zeros((0, 4)), [])
    smoothing = SmoothingConfig(min_hits=2, window=3, max_misses=2)
    shown = [len(b) for b in shown_boxes(frames, smoothing)]
    assert shown == [0, 1, 1, 1, 1]  # shown from the second hit, held through the miss
    assert score([(frames, shown_boxes(frames, None))])["per_frame_recall"] == 0.8


def test_candidates_are_valid_and_distinct() -> None:
    configs = list(candidates())
    assert len(configs) == len({c.model_dump_json() for c in configs}) > 100
    assert all(c.off_threshold <= c.on_threshold for c in configs)
