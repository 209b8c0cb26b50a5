"""The analysis of a recording against the real ``/v1/stream`` of a live uvicorn: the same
frames give the same per-frame results and the same tracks, in process and with ``--url``.

A video file's frames are resized by FFmpeg in process (``scaled_rgb``) and by Pillow in the
service, within one grey level of each other: every frame holds the same detections and tracks,
with scores within 0.02 and boxes that overlap by 85 %. A folder's images go through
the same code on both sides and give identical results.

These tests run the detector's version 1. With version 2, frame 22 of this clip
holds two boxes whose overlap, IoU 0.446, sits at the NMS threshold of 0.45, and the two resizes
fall on either side of it: one side shows a second track for two frames. What is tested here is
that both sides run the same code; a detection at a threshold's edge can fall either way
between them, which the README says."""

from __future__ import annotations

import io
import json
import statistics
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import pytest
from PIL import Image
from websockets.sync.client import connect

from service.cli import main
from service.config import Settings
from service.stream.framing import build_frame_message
from service.stream.params import StreamParams
from service.video.detector import LocalAnalyzer, load_detector
from service.video.source import VideoLimits, open_source
from tests.conftest import LiveServer
from tests.service.video.conftest import DETECTOR, require_data, sequence_frames, serving

RESULT_KEYS = ("frame_index", "timestamp", "image", "detections", "tracks")
SCORE_TOLERANCE = 0.02
SAME_BOX_IOU = 0.85


@pytest.fixture(scope="module")
def detector_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository holding the shipped detector's version 1 only."""
    require_data()
    root = tmp_path_factory.mktemp("models-v1")
    (root / DETECTOR.name).mkdir()
    (root / DETECTOR.name / "1").symlink_to(DETECTOR / "1", target_is_directory=True)
    return root


@pytest.fixture(scope="module")
def detector_server(detector_repo: Path) -> Iterator[LiveServer]:
    with serving(detector_repo) as server:
        yield server


def _iou(a: list[float], b: list[float]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union


def assert_close(actual: Any, expected: Any) -> None:
    """Equal structure, equal ids, counts and frame numbers; scores within SCORE_TOLERANCE,
    each box overlapping its counterpart by SAME_BOX_IOU."""
    if isinstance(expected, dict):
        assert actual.keys() == expected.keys()
        for key, value in expected.items():
            if key in ("box", "best_box"):
                assert _iou(actual[key], value) >= SAME_BOX_IOU, (key, actual[key], value)
            else:
                assert_close(actual[key], value)
    elif isinstance(expected, list):
        assert len(actual) == len(expected)
        for item, value in zip(actual, expected, strict=True):
            assert_close(item, value)
    elif isinstance(expected, float) or isinstance(actual, float):
        assert actual == pytest.approx(expected, abs=SCORE_TOLERANCE)
    else:
        assert actual == expected


def _png(frame: av.VideoFrame) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(frame.to_ndarray(format="rgb24")).save(buffer, format="PNG")
    return buffer.getvalue()


def _video_frames(path: Path) -> list[tuple[bytes, float]]:
    """Each frame as a PNG of its decoded pixels, with its time from the first frame."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return [(_png(f), float(f.time - frames[0].time)) for f in frames]


def _stream(server: LiveServer, frames: list[tuple[bytes, float]]) -> tuple[list[Any], Any]:
    """Every frame through /v1/stream, each sent once the previous one's result is back."""
    results = []
    with connect(server.url.replace("http", "ws") + "/v1/stream", max_size=None) as ws:
        assert json.loads(ws.recv(timeout=30))["type"] == "ready"
        for index, (image, timestamp) in enumerate(frames):
            ws.send(build_frame_message(image, index, timestamp))
            results.append(json.loads(ws.recv(timeout=30)))
        ws.send(json.dumps({"type": "close"}))
        report = json.loads(ws.recv(timeout=30))
    assert all(r["type"] == "result" and r["dropped"] == 0 for r in results)
    return results, report


def _tracks_from_stream(results: list[Any], summaries: list[Any]) -> list[dict[str, Any]]:
    """What the report must say, computed from the stream's own answers."""
    views = defaultdict(list)
    for result in results:
        for track in result["tracks"]:
            views[track["track_id"]].append((result["frame_index"], track["score"], track["box"]))
    expected = []
    for track_id, seen in sorted(views.items()):
        summary = next(s for s in summaries if s["track_id"] == track_id)
        assert summary["shown_frames"] == len(seen)
        scores = [score for _, score, _ in seen]
        best = seen[scores.index(max(scores))]
        expected.append(
            {"track_id": track_id, "first_frame": seen[0][0], "last_frame": seen[-1][0],
             "shown_frames": len(seen), "max_score": max(scores),
             "mean_score": round(statistics.fmean(scores), 5), "best_frame": best[0],
             "best_box": best[2], "detected_frame": summary["first_seen_frame"],
             "toggles": summary["toggles"]}
        )  # fmt: skip
    return expected


def _analyze(tmp_path: Path, *args: str) -> dict[str, Any]:
    report = tmp_path / f"report-{len(list(tmp_path.iterdir()))}.json"
    assert main(["analyze", *args, "--report", str(report)]) == 0
    return dict(json.loads(report.read_text()))


def test_each_frame_gets_the_result_the_live_stream_gives(
    cvc_video: Path, detector_repo: Path, detector_server: LiveServer
) -> None:
    results, _ = _stream(detector_server, _video_frames(cvc_video))
    model = load_detector(Settings(models_dir=detector_repo), None, None)
    analyzer = LocalAnalyzer(model, StreamParams(), 10**8)
    source = open_source(cvc_video, VideoLimits(10**8, 3600))
    local = [analyzer.analyze(f, analyzer.prepare(f)) for f in source.frames()]
    assert_close(local, [{key: r[key] for key in RESULT_KEYS} for r in results])
    assert any(r["tracks"] for r in results)


def test_the_report_tracks_are_those_the_live_stream_reports(
    cvc_video: Path, detector_repo: Path, detector_server: LiveServer, tmp_path: Path
) -> None:
    results, session = _stream(detector_server, _video_frames(cvc_video))
    expected = _tracks_from_stream(results, session["tracks"])
    report = _analyze(tmp_path, str(cvc_video), "--models-dir", str(detector_repo))
    assert_close([{key: t[key] for key in expected[0]} for t in report["tracks"]], expected)
    assert report["model"] == {"name": "polyp-detector", "version": 1}
    assert report["totals"]["frames"] == session["frames"]["processed"] == 25
    assert report["totals"]["frames_with_tracks"] == sum(bool(r["tracks"]) for r in results)


@pytest.mark.parametrize("kind", ["video", "folder"])
def test_url_mode_reports_what_the_in_process_analysis_reports(
    kind: str,
    cvc_video: Path,
    detector_repo: Path,
    detector_server: LiveServer,
    tmp_path: Path,
) -> None:
    source = cvc_video
    if kind == "folder":  # the sequence's own PNG files, sent to the service as they are
        source = tmp_path / "frames"
        source.mkdir()
        for path in sequence_frames():
            (source / path.name).symlink_to(path)
    local = _analyze(tmp_path, str(source), "--models-dir", str(detector_repo), "--fps", "25")
    remote = _analyze(tmp_path, str(source), "--url", detector_server.url, "--fps", "25")
    assert remote["processing"]["mode"] == "service" and local["processing"]["mode"] == "in-process"
    assert local["tracks"] and local["input"]["frames"] == 25
    if kind == "folder":
        assert {**remote, "processing": None} == {**local, "processing": None}
    else:
        assert_close({**remote, "processing": None}, {**local, "processing": None})
