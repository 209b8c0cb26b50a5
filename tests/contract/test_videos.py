"""``/v1/videos``: recorded videos as jobs, through the real app with its lifespan.

Videos are made at test time: short clips of flat colours for the tiny detector (red frames get
its boxes), and a real CVC-ClinicDB sequence for the shipped one, whose report must equal what
``polypserve analyze`` writes for the same file and parameters.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.app import create_app
from service.cli import main
from service.config import Settings
from service.video.jobs import JOB_FILE, UPLOAD_PREFIX
from tests.conftest import LiveServer
from tests.images import encode, solid_rgb
from tests.service.video.conftest import (  # noqa: F401 - fixtures
    cvc_video,
    decode_video,
    detector_repo,
    gradient,
    write_video,
)

pytestmark = pytest.mark.anyio
MP4 = {"content-type": "video/mp4"}
KEY = "video-key-0123456789"


def clip(path: Path, frames: int = 12, green_first: int = 3) -> Path:
    """A 64x48 clip: green frames (no box), then red ones (the tiny detector's box)."""
    colours = [(0, 200, 0)] * green_first + [(220, 0, 0)] * (frames - green_first)
    return write_video(path, [solid_rgb(64, 48, c) for c in colours])


@asynccontextmanager
async def serving(
    repo: Path, jobs: Path, **settings: Any
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    app = create_app(Settings(models_dir=repo, intra_op_threads=1, video_jobs_dir=jobs, **settings))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            yield app, http


async def wait_for(http: httpx.AsyncClient, url: str, *states: str, **kw: Any) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        info: dict[str, Any] = (await http.get(url, **kw)).json()
        if info["state"] in (states or ("done", "failed")):
            return info
        await asyncio.sleep(0.02)
    raise TimeoutError(info)


async def post_video(
    http: httpx.AsyncClient, path: Path, query: str = "min_hits=1"
) -> httpx.Response:
    return await http.post(f"/v1/videos?{query}", content=path.read_bytes(), headers=MP4)


async def test_a_job_goes_from_upload_to_its_report_and_annotated_video(
    tiny_repo: Path, tmp_path: Path
) -> None:
    video = clip(tmp_path / "clip.mp4")
    async with serving(tiny_repo, tmp_path / "jobs") as (_, http):
        created = await post_video(http, video)
        assert created.status_code == 202, created.text
        job = created.json()
        assert created.headers["location"] == f"/v1/videos/{job['id']}"
        assert job["state"] in ("queued", "running") and job["params"] == {"min_hits": 1}
        assert job["model"] == {"name": "tiny-detector", "version": 1}
        assert job["input"] == {"filename": "upload", "bytes": video.stat().st_size,
                                "container": "mov", "codec": "h264", "width": 64, "height": 48,
                                "fps": 30.0, "duration_s": 0.4, "frames": 12}  # fmt: skip
        done = await wait_for(http, created.headers["location"])
        assert done["state"] == "done" and done["error"] is None
        assert done["progress"]["frames_done"] == done["progress"]["frames_total"] == 12
        assert done["progress"]["percent"] == 100.0 and done["progress"]["eta_s"] == 0.0
        assert done["started_at"] >= done["created_at"] and done["finished_at"]
        report = (await http.get(done["report_url"])).json()
        assert report["input"]["path"] == "upload" and report["totals"]["frames"] == 12
        assert report["output"]["path"] == done["video_url"]
        assert [(t["first_frame"], t["last_frame"]) for t in report["tracks"]] == [(3, 11)]

        head = await http.head(done["video_url"])
        assert head.status_code == 200 and head.content == b""
        assert (
            head.headers["accept-ranges"] == "bytes" and head.headers["content-type"] == "video/mp4"
        )
        report_head = await http.head(done["report_url"])
        assert report_head.status_code == 200 and report_head.content == b""
        part = await http.get(done["video_url"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100
        assert part.headers["content-type"] == "video/mp4"
        whole = await http.get(done["video_url"])
        assert whole.status_code == 200 and whole.content[:100] == part.content
        assert int(head.headers["content-length"]) == len(whole.content)
        (tmp_path / "annotated.mp4").write_bytes(whole.content)
        stream, frames = decode_video(tmp_path / "annotated.mp4")
        assert stream.codec_context.name == "h264" and len(frames) == 12

        listed = (await http.get("/v1/videos")).json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]]
        metrics = (await http.get("/metrics")).text
        assert 'polypserve_video_jobs_finished_total{state="done"} 1.0' in metrics
        assert (await http.delete(created.headers["location"])).status_code == 204
        gone = await http.get(created.headers["location"])
        assert gone.status_code == 404 and gone.json()["error"].startswith("no video job")
    assert list((tmp_path / "jobs").iterdir()) == []


async def test_a_multipart_upload_keeps_the_file_name_and_unknown_ids_are_404(
    tiny_repo: Path, tmp_path: Path
) -> None:
    video = clip(tmp_path / "clip.mp4")
    async with serving(tiny_repo, tmp_path / "jobs") as (_, http):
        files = {"video": ("../Procedure 1.mp4", video.read_bytes(), "video/mp4")}
        created = await http.post("/v1/videos", files=files, data={"note": "ignored"})
        assert created.status_code == 202, created.text
        assert created.json()["input"]["filename"] == "Procedure 1.mp4"
        done = await wait_for(http, created.headers["location"])
        report = (await http.get(done["report_url"])).json()
        assert report["input"]["path"] == "Procedure 1.mp4"
        for unknown in ("0" * 32, "..", "not-a-job", "%2e%2e%2fjob.json"):
            response = await http.get(f"/v1/videos/{unknown}")
            assert response.status_code == 404, unknown
            assert (await http.delete(f"/v1/videos/{unknown}")).status_code == 404


def _bad_files(tmp_path: Path) -> dict[str, Path]:
    small = clip(tmp_path / "small.mp4")
    not_video = tmp_path / "notes.mp4"
    not_video.write_text("minutes of the meeting\n" * 50)
    frames = [gradient(160, 120, 9 * i) for i in range(30)]
    whole = write_video(tmp_path / "whole.mp4", frames)
    truncated = tmp_path / "truncated.mp4"  # the index (moov) comes last: cut off
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    mpeg4 = write_video(tmp_path / "m.avi", [gradient(64, 48)], codec="mpeg4", container="avi")
    unknown = tmp_path / "unknown.avi"  # a codec tag FFmpeg has no decoder for
    unknown.write_bytes(mpeg4.read_bytes().replace(b"FMP4", b"ZZZZ"))
    return {
        "not a video": not_video,
        "truncated": truncated,
        "no video stream": write_video(tmp_path / "empty.mp4", []),
        "unknown codec": unknown,
        "over the frame size": small,
        "over the duration": small,
    }


BAD_AT_UPLOAD = {
    "not a video": (400, "upload is not a video FFmpeg can read"),
    "truncated": (400, "upload looks like an MP4 but cannot be read, truncated"),
    "no video stream": (400, "upload has no video stream"),
    "unknown codec": (415, "upload: its video codec is not supported"),
    "over the frame size": (413, "upload is 64x48, over the limit of 3000 pixels a frame"),
    "over the duration": (413, "upload lasts 0.4 s, over the limit of 0.2 s"),
}


@pytest.mark.parametrize("case", list(BAD_AT_UPLOAD))
async def test_a_bad_video_is_refused_at_upload_and_leaves_nothing(
    case: str, tiny_repo: Path, tmp_path: Path
) -> None:
    status, message = BAD_AT_UPLOAD[case]
    limits = {"over the frame size": {"max_video_pixels": 3000},
              "over the duration": {"max_video_duration_s": 0.2}}.get(case, {})  # fmt: skip
    async with serving(tiny_repo, tmp_path / "jobs", **limits) as (_, http):
        response = await post_video(http, _bad_files(tmp_path)[case])
        assert response.status_code == status and message in response.json()["error"]
        assert (await http.get("/v1/videos")).json() == {"jobs": []}
        image = encode(solid_rgb(32, 32, (9, 9, 9)))
        detect = await http.post("/v1/detect", content=image, headers={"content-type": "image/png"})
        assert detect.status_code == 200  # the service serves on
    assert list((tmp_path / "jobs").iterdir()) == []


async def test_a_body_of_the_wrong_kind_or_shape_is_refused(
    tiny_repo: Path, tmp_path: Path
) -> None:
    async with serving(tiny_repo, tmp_path / "jobs") as (_, http):
        text = await http.post(
            "/v1/videos", content=b"hello", headers={"content-type": "text/plain"}
        )
        assert text.status_code == 415 and "video/*" in text.json()["supported"]
        empty = await http.post("/v1/videos", content=b"", headers=MP4)
        assert empty.status_code == 400 and empty.json()["error"] == "the video is empty"
        form = await http.post("/v1/videos", files={"image": ("a.mp4", b"x", "video/mp4")})
        assert form.status_code == 400 and "no 'video' file field" in form.json()["error"]
        params = await http.post("/v1/videos?min_hit=2", content=b"x", headers=MP4)
        assert params.status_code == 422 and "min_hit" in params.json()["error"]
        smoothing = await http.post("/v1/videos?score_threshold=0.2&off_threshold=0.5",
                                    content=b"x", headers=MP4)  # fmt: skip
        assert smoothing.status_code == 422 and smoothing.json()["error"].startswith("smoothing")
        model = await http.post("/v1/videos?model=tiny-classifier", content=b"x", headers=MP4)
        assert model.status_code == 409  # a model of another task
    assert list((tmp_path / "jobs").iterdir()) == []


async def test_an_upload_over_the_size_limit_is_413_while_it_streams(
    tiny_repo: Path, tmp_path: Path
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"\0" * 4096

    async with serving(tiny_repo, tmp_path / "jobs", max_video_upload_bytes=20_000) as (_, http):
        streamed = await http.post("/v1/videos", content=chunks(), headers=MP4)
        assert streamed.status_code == 413
        assert "(POLYPSERVE_MAX_VIDEO_UPLOAD_BYTES)" in streamed.json()["error"]
        declared = await http.post("/v1/videos", content=b"\0" * 30_000, headers=MP4)
        assert declared.status_code == 413 and declared.json()["limit"] == 20_000
    assert list((tmp_path / "jobs").iterdir()) == []


@pytest.mark.parametrize(
    ("case", "reason"),
    [("cut short", "cut.mp4 is corrupt or truncated at frame"),
     ("zero frames", "empty.avi has no frames")],
)  # fmt: skip
async def test_what_shows_only_when_decoding_fails_the_job_with_the_reason(
    case: str, reason: str, tiny_repo: Path, tmp_path: Path
) -> None:
    if case == "cut short":  # the index first, then half the frames' data
        whole = write_video(tmp_path / "fast.mp4", [gradient(320, 240, 9 * i) for i in range(60)],
                            options={"movflags": "faststart"})  # fmt: skip
        video = tmp_path / "cut.mp4"
        video.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    else:
        video = write_video(tmp_path / "empty.avi", [], codec="mpeg4", container="avi")
    async with serving(tiny_repo, tmp_path / "jobs") as (_, http):
        files = {"video": (video.name, video.read_bytes(), "application/octet-stream")}
        created = await http.post("/v1/videos", files=files)
        assert created.status_code == 202, created.text
        failed = await wait_for(http, created.headers["location"])
        assert failed["state"] == "failed" and reason in failed["error"], failed
        for result in ("report", "annotated.mp4"):
            refused = await http.get(f"{created.headers['location']}/{result}")
            assert refused.status_code == 409 and refused.json()["state"] == "failed"
            assert reason in refused.json()["error"]
        job_folder = tmp_path / "jobs" / failed["id"]
        assert sorted(p.name for p in job_folder.iterdir()) == [JOB_FILE]  # upload removed


async def test_live_traffic_holds_jobs_back_and_a_full_queue_is_503(
    tiny_repo: Path, tmp_path: Path
) -> None:
    video = clip(tmp_path / "clip.mp4")
    async with serving(tiny_repo, tmp_path / "jobs", video_jobs_max_queued=1) as (app, http):
        app.state.live_work.add(1)  # a live frame in flight, for as long as the test says
        first = await post_video(http, video)
        running = await wait_for(http, first.headers["location"], "running")
        assert running["progress"]["frames_done"] == 0
        second = await post_video(http, video)
        assert second.status_code == 202 and second.json()["state"] == "queued"
        full = await post_video(http, video)
        assert full.status_code == 503 and full.headers["retry-after"] == "10"
        assert "POLYPSERVE_VIDEO_JOBS_MAX_QUEUED" in full.json()["error"]
        for result in ("report", "annotated.mp4"):
            early = await http.get(f"{first.headers['location']}/{result}")
            assert early.status_code == 409 and early.json()["state"] == "running"
        # REST is served while the job waits its turn
        detect = await http.post("/v1/detect", content=encode(solid_rgb(32, 32, (220, 0, 0))),
                                 headers={"content-type": "image/png"})  # fmt: skip
        assert detect.status_code == 200
        assert (await http.get(first.headers["location"])).json()["progress"]["frames_done"] == 0
        gauges = (await http.get("/metrics")).text
        assert 'polypserve_video_jobs{state="running"} 1.0' in gauges
        assert 'polypserve_video_jobs{state="queued"} 1.0' in gauges
        started = time.monotonic()
        assert (await http.delete(first.headers["location"])).status_code == 204
        assert time.monotonic() - started < 2.0  # a running job stops at its next frame
        assert (await http.get(first.headers["location"])).status_code == 404
        assert not (tmp_path / "jobs" / first.json()["id"]).exists()
        app.state.live_work.add(-1)
        assert (await wait_for(http, second.headers["location"]))["state"] == "done"
        metrics = (await http.get("/metrics")).text
        assert 'polypserve_video_jobs_finished_total{state="cancelled"} 1.0' in metrics


async def test_a_shutdown_fails_the_running_job_as_interrupted(
    tiny_repo: Path, tmp_path: Path
) -> None:
    video = clip(tmp_path / "clip.mp4")
    async with serving(tiny_repo, tmp_path / "jobs") as (app, http):
        app.state.live_work.add(1)
        job = (await post_video(http, video)).json()
        await wait_for(http, f"/v1/videos/{job['id']}", "running")
        queued = (await post_video(http, video)).json()
    for job_id in (job["id"], queued["id"]):
        record = json.loads((tmp_path / "jobs" / job_id / JOB_FILE).read_text())
        assert record["state"] == "failed", record
        assert record["error"] == "interrupted: the service shut down", record


async def test_after_a_restart_jobs_left_running_or_queued_are_failed_interrupted(
    tiny_repo: Path, tmp_path: Path
) -> None:
    video = clip(tmp_path / "clip.mp4")
    jobs = tmp_path / "jobs"
    async with serving(tiny_repo, jobs) as (_, http):
        job = (await post_video(http, video)).json()
        await wait_for(http, f"/v1/videos/{job['id']}")
    # as a process killed mid-job leaves it: running, owned by a process that is gone
    record = json.loads((jobs / job["id"] / JOB_FILE).read_text())
    record.update(state="running", finished_at=None, owner="999999999:0")
    (jobs / job["id"] / JOB_FILE).write_text(json.dumps(record))
    (jobs / f"{UPLOAD_PREFIX}{'c' * 32}").mkdir()  # an upload cut off: too new to remove yet
    async with serving(tiny_repo, jobs) as (_, http):
        after = (await http.get(f"/v1/videos/{job['id']}")).json()
        assert after["state"] == "failed"
        assert after["error"] == "interrupted: the service stopped while the job was running"
    assert (jobs / f"{UPLOAD_PREFIX}{'c' * 32}").is_dir()


async def test_jobs_need_the_api_key_and_the_video_takes_it_as_a_query_parameter(
    tiny_repo: Path, tmp_path: Path
) -> None:
    video = clip(tmp_path / "clip.mp4")
    async with serving(tiny_repo, tmp_path / "jobs", api_keys=[KEY]) as (_, http):
        assert (await post_video(http, video)).status_code == 401
        created = await http.post("/v1/videos", content=video.read_bytes(),
                                  headers={**MP4, "X-API-Key": KEY})  # fmt: skip
        assert created.status_code == 202
        url = created.headers["location"]
        assert (await http.get(url)).status_code == 401
        done = await wait_for(http, url, headers={"Authorization": f"Bearer {KEY}"})
        assert (await http.get(f"{url}?api_key={KEY}")).status_code == 401  # headers only
        assert (await http.get(f"{done['video_url']}?api_key={KEY}")).status_code == 200
        assert (await http.get(f"{done['video_url']}?api_key=guess")).status_code == 403
        assert (await http.delete(url)).status_code == 401


@pytest.fixture
def analyze_report(cvc_video: Path, detector_repo: Path, tmp_path: Path) -> dict[str, Any]:  # noqa: F811
    path = tmp_path / "analyze.json"
    argv = ["analyze", str(cvc_video), "--report", str(path), "--models-dir", str(detector_repo),
            "--param", "max_misses=3"]  # fmt: skip
    assert main(argv) == 0
    return dict(json.loads(path.read_text()))


async def test_a_job_reports_what_polypserve_analyze_reports_for_the_same_file(
    cvc_video: Path,  # noqa: F811
    detector_repo: Path,  # noqa: F811
    analyze_report: dict[str, Any],
    tmp_path: Path,
) -> None:
    async with serving(detector_repo, tmp_path / "jobs") as (_, http):
        created = await post_video(http, cvc_video, "max_misses=3")
        done = await wait_for(http, created.headers["location"])
        report = (await http.get(done["report_url"])).json()
    assert analyze_report["tracks"], "the detector shows no track on this sequence"
    for key in ("tracks", "totals", "smoothing", "model"):
        assert report[key] == analyze_report[key], key
    assert report["input"] == {**analyze_report["input"], "path": "upload"}
    assert report["processing"]["mode"] == "in-process"


def test_a_job_running_in_another_worker_process_is_cancelled_through_this_one(
    tiny_repo: Path, tmp_path: Path
) -> None:
    """Two service processes on one job store, as ``--workers 2`` runs them: a DELETE that
    reaches the process not running the job answers 202 and asks; the other stops the job at
    its next progress write, removes it and counts it cancelled."""
    video = clip(tmp_path / "long.mp4", frames=3000)
    jobs = {"POLYPSERVE_VIDEO_JOBS_DIR": str(tmp_path / "jobs")}
    runner, other = LiveServer(tiny_repo, **jobs), LiveServer(tiny_repo, **jobs)
    try:
        runner.wait_until_ready()
        other.wait_until_ready()
        created = httpx.post(f"{runner.url}/v1/videos", content=video.read_bytes(),
                             headers=MP4, timeout=30)  # fmt: skip
        location = created.headers["location"]
        deadline = time.monotonic() + 30
        while httpx.get(runner.url + location).json()["progress"]["frames_done"] == 0:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        asked = httpx.delete(other.url + location)
        assert asked.status_code == 202 and asked.json()["state"] == "running", asked.text
        while (gone := httpx.get(other.url + location)).status_code != 404:
            assert gone.json()["state"] == "running" and time.monotonic() < deadline
            time.sleep(0.05)
        assert not (tmp_path / "jobs" / created.json()["id"]).exists()
        metrics = httpx.get(f"{runner.url}/metrics").text
        assert 'polypserve_video_jobs_finished_total{state="cancelled"} 1.0' in metrics
    finally:
        runner.stop()
        other.stop()


def test_a_real_process_stopped_or_killed_mid_job_reports_it_interrupted_after_restart(
    tiny_repo: Path, tmp_path: Path
) -> None:
    """uvicorn as deployed: SIGTERM drains and marks the job; SIGKILL leaves it running, and
    the next start marks it."""
    video = clip(tmp_path / "long.mp4", frames=3000)  # long enough to be stopped mid-way
    jobs = {"POLYPSERVE_VIDEO_JOBS_DIR": str(tmp_path / "jobs")}
    ids = []
    for stop in (signal.SIGTERM, signal.SIGKILL):
        server = LiveServer(tiny_repo, **jobs)
        try:
            server.wait_until_ready()
            created = httpx.post(f"{server.url}/v1/videos", content=video.read_bytes(),
                                 headers=MP4, timeout=30)  # fmt: skip
            ids.append(created.json()["id"])
            deadline = time.monotonic() + 30
            while httpx.get(server.url + created.headers["location"]).json()["state"] != "running":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            server.process.send_signal(stop)
            server.process.wait(timeout=20)
        finally:
            server.stop()
    server = LiveServer(tiny_repo, **jobs)
    try:
        server.wait_until_ready()
        errors = [httpx.get(f"{server.url}/v1/videos/{i}").json()["error"] for i in ids]
    finally:
        server.stop()
    assert errors == ["interrupted: the service shut down",
                      "interrupted: the service stopped while the job was running"]  # fmt: skip


async def test_a_playlist_cannot_make_the_service_read_its_own_files(
    tiny_repo: Path, tmp_path: Path
) -> None:
    """FFmpeg reads the files an HLS or concat playlist names: an upload is read as a video
    container or stream only."""
    secret = write_video(tmp_path / "secret.ts", [gradient(64, 48)] * 5, container="mpegts")
    playlists = {
        "list.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\n{secret}\n#EXT-X-ENDLIST\n",
        "list.txt": "ffconcat version 1.0\nfile list.txt\n",
    }
    async with serving(tiny_repo, tmp_path / "jobs") as (_, http):
        for name, text in playlists.items():
            files = {"video": (name, text.encode(), "application/octet-stream")}
            refused = await http.post("/v1/videos", files=files)
            assert refused.status_code == 400, refused.text
            assert refused.json()["error"].startswith(f"{name} is not a video FFmpeg can read")
        mkv = write_video(tmp_path / "clip.mkv", [solid_rgb(64, 48, (220, 0, 0))] * 3,
                          container="matroska")  # fmt: skip
        files = {"video": ("clip.mkv", mkv.read_bytes(), "video/x-matroska")}
        assert (await http.post("/v1/videos", files=files)).status_code == 202
