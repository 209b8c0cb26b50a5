"""The video job store on disk: ids, publishing, recovery after a stop, retention; progress;
upload names."""

from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings
from service.errors import NotFoundError
from service.schemas import VideoInputInfo, VideoJobProgress
from service.video.jobs import (
    CANCEL_FILE,
    JOB_FILE,
    UPLOAD_PREFIX,
    JobGoneError,
    JobRecord,
    JobStore,
    now,
    owner_alive,
    process_token,
)
from service.video.progress import Progress
from service.video.upload import safe_name

DEAD_OWNER = "999999999:0"  # no such pid


def _record(job_id: str, state: str = "queued", owner: str | None = None) -> JobRecord:
    return JobRecord(
        id=job_id,
        state=state,  # type: ignore[arg-type]
        created_at=now(),
        model={"name": "tiny-detector", "version": 1},
        params={},
        input=VideoInputInfo(
            filename="v.mp4",
            bytes=10,
            container="mov",
            codec="h264",
            width=64,
            height=48,
            fps=30.0,
            duration_s=1.0,
            frames=30,
        ),
        progress=VideoJobProgress(frames_total=30),
        owner=owner or process_token(),
        upload="input/v.mp4",
    )


def _publish(store: JobStore, state: str = "queued", owner: str | None = None) -> JobRecord:
    job_id, folder = store.new_upload()
    (folder / "input" / "v.mp4").write_bytes(b"x" * 10)
    record = _record(job_id, state, owner)
    store.publish(record, folder)
    return record


def test_a_job_appears_once_published_and_ids_never_leave_the_store(tmp_path: Path) -> None:
    store = JobStore(tmp_path / "jobs")
    job_id, folder = store.new_upload()
    assert folder.name == UPLOAD_PREFIX + job_id and len(job_id) == 32
    with pytest.raises(NotFoundError):  # arriving: not a job yet
        store.load(job_id)
    store.publish(_record(job_id), folder)
    assert store.load(job_id).state == "queued" and not folder.exists()
    assert [r.id for r in store.records()] == [job_id]
    for bad in ("../jobs", job_id.upper(), job_id + "0", "", "." * 32, "0" * 32):
        with pytest.raises(NotFoundError, match="no video job"):
            store.load(bad)


def test_saving_a_removed_job_says_it_is_gone(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    record = _publish(store)
    store.remove(record.id)
    with pytest.raises(JobGoneError):
        store.save(record.model_copy(update={"state": "running"}))


def test_finishing_removes_the_upload_and_keeps_the_reason(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    record = _publish(store)
    failed = store.finish(record, "v.mp4 has no frames")
    assert (failed.state, failed.error, failed.upload) == ("failed", "v.mp4 has no frames", None)
    assert failed.finished_at is not None and not (tmp_path / record.id / "input").exists()
    assert store.load(record.id).info().model_dump()["error"] == "v.mp4 has no frames"


def test_after_a_stop_jobs_of_a_gone_process_fail_as_interrupted(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    running = _publish(store, "running", DEAD_OWNER)
    queued = _publish(store, "queued", DEAD_OWNER)
    mine = _publish(store, "running")  # this process is alive: another worker's job
    done = store.finish(_publish(store, "running", DEAD_OWNER), None)
    stale = tmp_path / f"{UPLOAD_PREFIX}{'a' * 32}"
    fresh = tmp_path / f"{UPLOAD_PREFIX}{'b' * 32}"
    stale.mkdir(), fresh.mkdir()
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert sorted(store.recover()) == sorted([running.id, queued.id])
    store.remove_abandoned_uploads(upload_timeout_s=600)
    assert (
        store.load(running.id).error == "interrupted: the service stopped while the job was running"
    )
    assert (
        store.load(queued.id).error == "interrupted: the service stopped while the job was queued"
    )
    assert store.load(mine.id).state == "running" and store.load(done.id).state == "done"
    assert not stale.exists() and fresh.exists()
    assert owner_alive(process_token()) and not owner_alive(DEAD_OWNER)
    assert not owner_alive(f"{os.getpid()}:0")  # the same pid, another process


def test_sweep_removes_finished_jobs_oldest_first(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    finished = []
    for age_h in (30, 3, 2, 1):  # hours since each finished
        record = store.finish(_publish(store), None)
        record.finished_at = now() - timedelta(hours=age_h)
        store.save(record)
        finished.append(record.id)
    waiting = _publish(store)
    (tmp_path / finished[3] / "annotated.mp4").write_bytes(b"v" * 5000)
    assert store.sweep(keep_s=24 * 3600, max_kept=100, max_bytes=10**9) == finished[:1]
    assert store.sweep(keep_s=24 * 3600, max_kept=2, max_bytes=10**9) == finished[1:2]
    # Room for more than the older job frees: both go, the one with the video too.
    used = store.usage_bytes()
    older = sum(p.stat().st_size for p in (tmp_path / finished[2]).rglob("*") if p.is_file())
    assert store.sweep(24 * 3600, 2, max_bytes=used, room=older) == finished[2:3]
    assert store.sweep(24 * 3600, 2, max_bytes=used, room=older + 1) == finished[3:]
    assert [r.id for r in store.records()] == [waiting.id]  # never a job that waits or runs


def test_a_cancel_asked_from_another_process_is_a_file(tmp_path: Path) -> None:
    store = JobStore(tmp_path)
    record = _publish(store, "running")
    assert not store.cancel_asked(record.id)
    store.ask_to_cancel(record.id)
    assert store.cancel_asked(record.id) and (tmp_path / record.id / CANCEL_FILE).exists()
    assert (tmp_path / record.id / JOB_FILE).exists()


def test_progress_reports_speed_over_the_last_seconds_and_the_time_left() -> None:
    clock = [0.0]
    progress = Progress(100, clock=lambda: clock[0])
    for _ in range(20):  # 20 frames a second for 5 s
        clock[0] += 0.25
        for _ in range(5):
            progress.tick()
    first = progress.snapshot()
    assert (first.frames_done, first.frames_total, first.percent) == (100, 100, 100.0)
    assert first.fps == 20.0 and first.eta_s == 0.0
    slow = Progress(1000, clock=lambda: clock[0])
    for _ in range(10):  # 10 fps for 10 s, snapshots every second
        clock[0] += 1.0
        for _ in range(10):
            slow.tick()
        snapshot = slow.snapshot()
    assert snapshot.fps == 10.0 and snapshot.eta_s == 90.0 and snapshot.percent == 10.0
    unknown = Progress(None, clock=lambda: clock[0]).snapshot()
    assert (unknown.frames_total, unknown.percent, unknown.eta_s) == (None, None, None)


@pytest.mark.parametrize(
    ("given", "name"),
    [
        ("procedure.mp4", "procedure.mp4"),
        ("../../etc/passwd", "passwd"),
        ("C:\\videos\\day 1.mov", "day 1.mov"),
        (".hidden.mp4", "hidden.mp4"),
        ("Darmspiegelung-ä.mp4", "Darmspiegelung-_.mp4"),
        ("..", "upload"),
        (None, "upload"),
    ],
)
def test_upload_names_are_plain_and_stay_in_their_folder(given: str | None, name: str) -> None:
    assert safe_name(given) == name


def test_an_upload_must_fit_the_job_store() -> None:
    with pytest.raises(ValidationError, match="MAX_VIDEO_UPLOAD_BYTES must not be over"):
        Settings(max_video_upload_bytes=2000, video_jobs_max_bytes=1000)
