"""The detector trainer's pure helpers (its end-to-end runs are in test_dry_run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from service.repository.manifest import StreamDefaults
from training import detection_report
from training.detection_eval import small_or_several


def test_small_or_several_picks_frames_with_several_or_smaller_boxes() -> None:
    large = np.array([[0, 0, 120, 100]], np.float32)
    medium = np.array([[10, 10, 100, 100]], np.float32)
    two_large = np.array([[0, 0, 200, 200], [300, 300, 500, 500]], np.float32)
    frames = [large, medium, two_large, np.zeros((0, 4), np.float32), None]
    assert small_or_several(frames).tolist() == [False, True, True, False, False]


def test_a_smoothing_study_becomes_the_versions_stream_defaults(tmp_path: Path) -> None:
    row = {"per_frame_recall": 0.94, "false_positives_per_min": 314.3, "toggles_per_min": 51.4,
           "polyps_seen": 15, "polyps": 15, "frames_to_first_display": 0.27}  # fmt: skip
    study = {
        "chosen": {"on_threshold": 0.4, "off_threshold": 0.2, "min_hits": 1, "window": 1,
                   "max_misses": 1, "match_iou": 0.3, "match_distance": 0.0, "box_alpha": 0.7},
        "held_out_on_video": {"raw": row, "chosen": row},
    }  # fmt: skip
    path = tmp_path / "study.json"
    path.write_text(json.dumps(study))
    stream, note = detection_report.stream_defaults(str(path))
    assert stream.model_dump() == {k: v for k, v in study["chosen"].items() if k != "on_threshold"}
    assert "| chosen | 0.94 | 314.3 | 51.4 | 15/15 | 0.27 |" in note
    assert detection_report.stream_defaults("") == (StreamDefaults(), "")
