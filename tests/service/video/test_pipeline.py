"""The in-process analysis of a real recording: the annotated video, the report, thumbnails,
and failures that stop every stage."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from service.config import Settings
from service.errors import InvalidInputError
from service.repository.manifest import Manifest
from service.repository.model_version import ModelVersion
from service.stream.params import StreamParams, resolve_options
from service.stream.tracking import SmoothingConfig
from service.video.detector import LocalAnalyzer, load_detector
from service.video.pipeline import run_analysis
from service.video.source import FrameSource, SourceFrame, VideoLimits, open_source
from tests.service.video.conftest import DETECTOR, decode_video

LIMITS = VideoLimits(max_pixels=3840 * 2160, max_duration_s=3600)


@pytest.fixture(scope="module")
def detector(detector_repo: Path) -> ModelVersion:
    return load_detector(Settings(models_dir=detector_repo, intra_op_threads=1), None, None)


def _analyzer(detector: ModelVersion) -> LocalAnalyzer:
    return LocalAnalyzer(detector, StreamParams(), LIMITS.max_pixels)


@pytest.fixture(scope="module")
def analysed(
    detector: ModelVersion, cvc_video: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], Path, Path]:
    folder = tmp_path_factory.mktemp("analysed")
    video, thumbnails = folder / "annotated.mp4", folder / "thumbnails"
    report = run_analysis(open_source(cvc_video, LIMITS), _analyzer(detector), video, thumbnails)
    return report, video, thumbnails


def test_the_annotated_video_is_h264_at_the_input_size_rate_and_frame_count(
    analysed: tuple[dict[str, Any], Path, Path],
) -> None:
    report, video, _ = analysed
    stream, frames = decode_video(video)
    assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.codec_context.width, stream.codec_context.height) == (384, 288)
    assert stream.average_rate == 30 and len(frames) == 25
    assert report["output"] == {"path": str(video), "codec": "h264", "width": 384,
                                "height": 288, "fps": 30.0, "frames": 25}  # fmt: skip


def test_boxes_change_the_pixels_where_tracks_are_and_only_there(
    analysed: tuple[dict[str, Any], Path, Path], cvc_video: Path
) -> None:
    report, video, _ = analysed
    _, before = decode_video(cvc_video)
    _, after = decode_video(video)
    assert report["tracks"], "the detector shows no track on this sequence"
    for track in report["tracks"]:
        frame = track["best_frame"]
        x1, y1, x2, y2 = (int(c) // 2 * 2 for c in track["best_box"])  # as drawn: even
        change = np.abs(after[frame].astype(int) - before[frame]).sum(axis=2)  # R+G+B
        left_edge = change[y1 + 10 : y2 - 10, x1 : x1 + 2]  # 2 pixels wide at 288 rows
        inside = change[y1 + 12 : y2 - 12, x1 + 12 : x2 - 12]
        # medians: another track's outline or label may cross this box in the same frame, but a
        # filled box would move most of its inside
        edge, middle = np.median(left_edge), np.median(inside)
        assert edge > 150 and middle < 30, (track["track_id"], edge, middle)
    unshown = min(t["first_frame"] for t in report["tracks"])
    for frame in range(unshown):  # no box yet: only the re-encoding's noise
        assert np.abs(after[frame].astype(int) - before[frame]).mean() < 4


def test_the_report_describes_the_input_and_each_shown_track(
    analysed: tuple[dict[str, Any], Path, Path],
) -> None:
    report, _, thumbnails = analysed
    assert report["input"] | {"path": ""} == {"path": "", "kind": "video", "container": "mov",
        "codec": "h264", "width": 384, "height": 288, "fps": 30.0, "duration_s": 0.833,
        "frames": 25}  # fmt: skip
    newest = max(int(p.name) for p in DETECTOR.iterdir() if p.name.isdigit())
    assert report["model"] == {"name": "polyp-detector", "version": newest}  # the default
    # the stream's defaults for that version: its manifest's, over the tracker's own
    shipped = Manifest.read(DETECTOR / str(newest) / "manifest.json")
    expected = resolve_options(StreamParams(), shipped.defaults).smoothing.model_dump()
    assert report["smoothing"] == expected != SmoothingConfig().model_dump()
    assert report["totals"]["frames"] == 25 and report["totals"]["tracks"] == len(report["tracks"])
    shown = 0
    for track in report["tracks"]:
        assert track["first_frame"] <= track["best_frame"] <= track["last_frame"]
        assert track["detected_frame"] <= track["first_frame"]
        assert track["shown_frames"] <= track["last_frame"] - track["first_frame"] + 1
        span = (track["last_frame"] - track["first_frame"] + 1) / 30
        assert track["duration_s"] == pytest.approx(span, abs=2e-3)
        assert track["first_time_s"] == pytest.approx(track["first_frame"] / 30, abs=2e-3)
        # shown from the switch-on threshold, kept down to the switch-off one
        assert report["smoothing"]["off_threshold"] <= track["mean_score"] <= track["max_score"]
        assert report["smoothing"]["on_threshold"] <= track["max_score"] <= 1
        width, height = Image.open(track["thumbnail"]).size
        x1, y1, x2, y2 = track["best_box"]
        assert Path(track["thumbnail"]).parent == thumbnails
        assert abs(width - 1.3 * (x2 - x1)) < 0.3 * (x2 - x1) + 2 and height > 0.8 * (y2 - y1)
        shown += track["shown_frames"]
    assert report["totals"]["frames_with_tracks"] <= shown
    assert report["processing"]["mode"] == "in-process"
    assert report["processing"]["providers"] == ["CPUExecutionProvider"]
    assert report["processing"]["fps"] > 0


class _FailingSource:
    """Five frames, then the error a truncated file gives."""

    def __init__(self, source: FrameSource) -> None:
        self.source, self.info = source, source.info

    def frames(self) -> Iterator[SourceFrame]:
        for frame in self.source.frames():
            if frame.index == 5:
                raise InvalidInputError("cut short at frame 5")
            yield frame

    def close(self) -> None:
        self.source.close()


def test_a_failing_source_stops_every_stage_and_leaves_no_half_video(
    detector: ModelVersion, cvc_video: Path, tmp_path: Path
) -> None:
    threads = threading.active_count()
    source = _FailingSource(open_source(cvc_video, LIMITS))
    frames: list[int] = []
    with pytest.raises(InvalidInputError, match="cut short at frame 5"):
        run_analysis(source, _analyzer(detector), tmp_path / "out.mp4", None,
                     on_frame=lambda result: frames.append(1))  # fmt: skip
    assert len(frames) == 5
    assert not (tmp_path / "out.mp4").exists()
    assert threading.active_count() == threads


class _Stop(Exception):
    pass


def test_every_stage_pauses_before_each_frame_and_a_pause_can_stop_them_all(
    detector: ModelVersion, cvc_video: Path, tmp_path: Path
) -> None:
    stages: list[str] = []
    run_analysis(open_source(cvc_video, LIMITS), _analyzer(detector), tmp_path / "all.mp4", None,
                 pause=lambda: stages.append(threading.current_thread().name))  # fmt: skip
    # 25 frames decoded (and one more look for the end), inferred and encoded
    assert len(stages) == 26 + 25 + 25 and len(set(stages)) == 3
    threads, calls = threading.active_count(), []

    def pause() -> None:
        calls.append(1)
        if len(calls) > 20:
            raise _Stop

    with pytest.raises(_Stop):
        run_analysis(open_source(cvc_video, LIMITS), _analyzer(detector), tmp_path / "out.mp4",
                     None, pause=pause)  # fmt: skip
    assert not (tmp_path / "out.mp4").exists() and threading.active_count() == threads
