"""The video job store: a folder per job under ``POLYPSERVE_VIDEO_JOBS_DIR``; the disk is the
truth, so every worker process of the service sees the same jobs.

    <dir>/.upload-<id>/        an upload arriving (renamed to <id>/ once its header checked out)
    <dir>/<id>/job.json        state, times, progress, error, parameters, model, owner
    <dir>/<id>/input/<name>    the upload, removed when the job ends
    <dir>/<id>/report.json     the report, once done
    <dir>/<id>/annotated.mp4   the annotated video, once done
    <dir>/<id>/cancel          a cancellation asked of the process running the job

``job.json`` is replaced whole (written beside, then renamed), so a reader never sees half of
it. Ids are 32 hex digits (a random UUID), checked before they become a path.

Restart: a job found ``queued`` or ``running`` whose owner (the process that accepted it) is
gone becomes ``failed`` with "interrupted", and its upload is removed. A job is never run again
behind its client's back: the client sees why and decides. Retention (``sweep``): finished jobs
past their time kept, past the count kept, or past the disk budget are removed, oldest first.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import ValidationError

from service.errors import NotFoundError
from service.schemas import VideoJobInfo

JOB_FILE, REPORT_FILE, VIDEO_FILE, CANCEL_FILE = (
    "job.json",
    "report.json",
    "annotated.mp4",
    "cancel",
)
UPLOAD_PREFIX = ".upload-"
INTERRUPTED = "interrupted: the service stopped while the job was {state}"
_ID = re.compile(r"[0-9a-f]{32}")


class JobRecord(VideoJobInfo):
    """What ``job.json`` holds: the job as clients see it, and what only the service needs."""

    owner: str  # the process running or about to run it (``process_token``)
    upload: str | None  # the upload's path in the job's folder, until the job ends

    def info(self) -> VideoJobInfo:
        return VideoJobInfo.model_validate(self.model_dump(exclude={"owner", "upload"}))


class JobGoneError(Exception):
    """The job's folder was removed (deleted, or swept) while its runner still had it."""


def now() -> datetime:
    return datetime.now(UTC)


def process_token(pid: int | None = None) -> str:
    """This process (or ``pid``), told apart from an earlier one with the same pid: its start
    time in clock ticks since boot, where Linux says it."""
    pid = os.getpid() if pid is None else pid
    try:
        started = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        started = "?"
    return f"{pid}:{started}"


def owner_alive(token: str) -> bool:
    pid = int(token.split(":")[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return process_token(pid) == token


class JobStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.owner = process_token()
        self._lock = threading.Lock()  # the runner's threads and the event loop's routes
        root.mkdir(parents=True, exist_ok=True)

    def folder(self, job_id: str) -> Path:
        if not _ID.fullmatch(job_id) or not (self.root / job_id / JOB_FILE).is_file():
            raise NotFoundError(f"no video job '{job_id[:64]}'")
        return self.root / job_id

    def new_upload(self) -> tuple[str, Path]:
        """A fresh id and the hidden folder its upload arrives in."""
        job_id = uuid.uuid4().hex
        folder = self.root / f"{UPLOAD_PREFIX}{job_id}"
        (folder / "input").mkdir(parents=True)
        return job_id, folder

    def publish(self, record: JobRecord, upload_folder: Path) -> None:
        """Write the job's first ``job.json`` and make the job visible, in one rename."""
        _write(upload_folder / JOB_FILE, record)
        upload_folder.rename(self.root / record.id)

    def load(self, job_id: str) -> JobRecord:
        try:
            return JobRecord.model_validate_json((self.folder(job_id) / JOB_FILE).read_bytes())
        except (OSError, ValidationError):  # removed meanwhile, or not ours to read
            raise NotFoundError(f"no video job '{job_id[:64]}'") from None

    def save(self, record: JobRecord) -> None:
        with self._lock:
            folder = self.root / record.id
            if not folder.is_dir():
                raise JobGoneError(record.id)
            _write(folder / JOB_FILE, record)

    def records(self) -> list[JobRecord]:
        """Every job, oldest first."""
        found = []
        for path in self.root.glob(f"*/{JOB_FILE}"):
            with contextlib.suppress(OSError, ValidationError):
                found.append(JobRecord.model_validate_json(path.read_bytes()))
        return sorted(found, key=lambda r: r.created_at)

    def remove(self, job_id: str) -> None:
        with self._lock:
            shutil.rmtree(self.root / job_id, ignore_errors=True)

    def ask_to_cancel(self, job_id: str) -> None:
        (self.folder(job_id) / CANCEL_FILE).touch()

    def cancel_asked(self, job_id: str) -> bool:
        return (self.root / job_id / CANCEL_FILE).exists()

    def recover(self) -> list[str]:
        """At start: jobs whose owner is gone fail as interrupted. Returns their ids."""
        failed = []
        for record in self.records():
            if record.state in ("queued", "running") and not owner_alive(record.owner):
                self.finish(record, INTERRUPTED.format(state=record.state))
                failed.append(record.id)
        return failed

    def remove_abandoned_uploads(self, upload_timeout_s: float) -> None:
        """Uploads older than an upload may take were cut off (by a crash): remove them."""
        stale = time.time() - upload_timeout_s
        for folder in self.root.glob(f"{UPLOAD_PREFIX}*"):
            with contextlib.suppress(OSError):
                if folder.stat().st_mtime < stale:
                    shutil.rmtree(folder, ignore_errors=True)

    def finish(self, record: JobRecord, error: str | None) -> JobRecord:
        """The job's last state: ``done``, or ``failed`` with ``error``; its upload goes."""
        state = "failed" if error is not None else "done"
        done = record.model_copy(update={"state": state, "error": error, "finished_at": now()})
        if record.upload is not None:
            with contextlib.suppress(OSError):
                shutil.rmtree((self.root / record.id / record.upload).parent)
            done.upload = None
        self.save(done)
        return done

    def usage_bytes(self) -> int:
        return _size(self.root)

    def sweep(self, keep_s: float, max_kept: int, max_bytes: int, room: int = 0) -> list[str]:
        """Remove finished jobs, oldest first: past ``keep_s``, beyond ``max_kept``, and while
        the store with ``room`` more bytes would be over ``max_bytes``. Returns their ids."""
        finished = [r for r in self.records() if r.state in ("done", "failed")]
        finished.sort(key=lambda r: r.finished_at or r.created_at)
        expired = now() - timedelta(seconds=keep_s)
        removed = []
        used = self.usage_bytes() + room
        for index, record in enumerate(finished):
            old = (record.finished_at or record.created_at) < expired
            if not (old or len(finished) - index > max_kept or used > max_bytes):
                break
            size = _size(self.root / record.id)
            self.remove(record.id)
            used -= size
            removed.append(record.id)
        return removed


def _size(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):  # removed meanwhile
            total += path.stat().st_size if path.is_file() else 0
    return total


def _write(path: Path, record: JobRecord) -> None:
    temporary = path.with_name(f".{path.name}.{threading.get_native_id()}")
    temporary.write_text(record.model_dump_json(indent=2))
    os.replace(temporary, path)
