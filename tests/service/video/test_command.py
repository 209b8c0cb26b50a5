"""``polypserve analyze``: what it prints and writes, and the one-line errors of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.cli import main
from tests.service.video.conftest import decode_video, gradient, sequence_frames, write_video


def _bad_inputs(tmp_path: Path, cvc_video: Path) -> dict[str, tuple[Path, str]]:
    """Each bad input and the message it must get."""
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("minutes of the meeting\n" * 50)
    truncated = tmp_path / "truncated.mp4"  # the index (moov) is written last: cut off
    truncated.write_bytes(cvc_video.read_bytes()[: cvc_video.stat().st_size // 2])
    frames = [gradient(320, 240, 9 * i) for i in range(60)]
    faststart = write_video(tmp_path / "fast.mp4", frames, options={"movflags": "faststart"})
    cut = tmp_path / "cut.mp4"  # the index first, then half the frames' data
    cut.write_bytes(faststart.read_bytes()[: faststart.stat().st_size // 2])
    no_frames = write_video(tmp_path / "empty.avi", [], codec="mpeg4", container="avi")
    mpeg4 = write_video(tmp_path / "mpeg4.avi", [gradient(64, 48)], codec="mpeg4", container="avi")
    unknown = tmp_path / "unknown.avi"  # a codec tag FFmpeg has no decoder for
    unknown.write_bytes(mpeg4.read_bytes().replace(b"FMP4", b"ZZZZ"))
    (tmp_path / "empty").mkdir()
    return {
        "not a video": (not_video, "notes.mp4 is not a video FFmpeg can read"),
        "truncated": (truncated, "truncated.mp4 looks like an MP4 but cannot be read, truncated"),
        "cut short": (cut, "cut.mp4 is corrupt or truncated at frame"),
        "zero frames": (no_frames, "empty.avi has no frames"),
        "no video stream": (write_video(tmp_path / "empty.mp4", []), "has no video stream"),
        "unknown codec": (unknown, "unknown.avi: its video codec is not supported"),
        "empty folder": (tmp_path / "empty", "holds no JPEG, PNG, WebP or BMP image"),
        "missing": (tmp_path / "missing.mp4", "is neither a video file nor a folder"),
    }


@pytest.mark.parametrize(
    "case",
    ["not a video", "truncated", "cut short", "zero frames", "no video stream", "unknown codec",
     "empty folder", "missing"],
)  # fmt: skip
def test_analyze_refuses_a_bad_input_with_one_line_and_exit_code_1(
    case: str,
    cvc_video: Path,
    detector_repo: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path, message = _bad_inputs(tmp_path, cvc_video)[case]
    out = tmp_path / "annotated.mp4"
    code = main(["analyze", str(path), "--out", str(out), "--models-dir", str(detector_repo)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("polypserve analyze: ") and err.count("\n") == 1, err
    assert message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("POLYPSERVE_MAX_VIDEO_PIXELS", "100000", "is 384x288, over the limit of 100000 pixels"),
        ("POLYPSERVE_MAX_VIDEO_DURATION_S", "0.5", "s, over the limit of 0.5 s"),
    ],
)
def test_analyze_refuses_a_video_over_the_limits(
    setting: str,
    value: str,
    message: str,
    cvc_video: Path,
    detector_repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(setting, value)
    assert main(["analyze", str(cvc_video), "--models-dir", str(detector_repo)]) == 1
    err = capsys.readouterr().err
    assert message in err and f"({setting})" in err and err.count("\n") == 1


def test_analyze_refuses_bad_parameters_and_a_model_it_cannot_find(
    cvc_video: Path, detector_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["analyze", str(cvc_video), "--models-dir", str(detector_repo)]
    assert main([*base, "--param", "min_hits"]) == 1
    assert "--param min_hits: expected NAME=VALUE" in capsys.readouterr().err
    assert main([*base, "--param", "colour=red"]) == 1
    assert "--param colour: Extra inputs are not permitted" in capsys.readouterr().err
    assert main([*base, "--param", "min_hits=9", "--param", "window=4"]) == 1
    assert "min_hits must not exceed window" in capsys.readouterr().err
    assert main([*base, "--model", "polyp-segmenter"]) == 1
    assert "no model 'polyp-segmenter' in the repository" in capsys.readouterr().err
    assert main([*base, "--out", str(cvc_video)]) == 1
    assert "--out would overwrite the input" in capsys.readouterr().err
    assert main([*base, "--url", "http://127.0.0.1:9"]) == 1
    assert "cannot open the stream at ws://127.0.0.1:9/v1/stream" in capsys.readouterr().err
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("POLYPSERVE_MAX_VIDEO_PIXELS", "-1")
        assert main(base) == 1
    assert "setting max_video_pixels: Input should be greater than 0" in capsys.readouterr().err


def test_analyze_prints_the_report_and_a_summary_line(
    cvc_video: Path, detector_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "frames.jsonl"
    argv = ["analyze", str(cvc_video), "--models-dir", str(detector_repo), "--frames", str(frames)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert report["input"]["frames"] == 25 and report["output"] is None
    assert captured.err.startswith("25 frames in ") and "real time" in captured.err
    # one line a frame, in order, with what the stream would send; the tracks add up to the report
    results = [json.loads(line) for line in frames.read_text().splitlines()]
    assert [r["frame_index"] for r in results] == list(range(25))
    assert {"image", "detections", "tracks"} <= set(results[0])
    shown = {t["track_id"] for r in results for t in r["tracks"]}
    assert shown == {t["track_id"] for t in report["tracks"]}


def test_analyze_a_folder_writes_the_video_report_and_thumbnails(
    detector_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frames = tmp_path / "frames"
    frames.mkdir()
    for path in sequence_frames()[:12]:
        (frames / path.name).symlink_to(path)
    out, report, best = tmp_path / "a.mp4", tmp_path / "r.json", tmp_path / "best"
    outputs = ["--out", str(out), "--report", str(report), "--thumbnails", str(best)]
    assert (
        main(["analyze", str(frames), *outputs, "--fps", "25", "--models-dir", str(detector_repo)])
        == 0
    )
    assert f"wrote {out}, {report}, {best}" in capsys.readouterr().err
    written = json.loads(report.read_text())
    assert written["input"] | {"path": ""} == {"path": "", "kind": "images", "container": "images",
        "codec": "png", "width": 384, "height": 288, "fps": 25.0, "duration_s": 0.48,
        "frames": 12}  # fmt: skip
    stream, decoded = decode_video(out)
    assert stream.codec_context.name == "h264" and stream.average_rate == 25
    assert len(decoded) == 12 and decoded[0].shape == (288, 384, 3)
    assert written["tracks"] and sorted(p.name for p in best.iterdir()) == [
        f"track-{t['track_id']:03d}.jpg" for t in written["tracks"]
    ]
