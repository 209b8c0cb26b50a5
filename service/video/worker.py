"""Video jobs in the background: worker threads at a lower CPU priority, one job each at a
time, through the in-process analysis (``run_analysis`` with ``LocalAnalyzer``) on the model
version the service already loaded: the registry's session, shared with live traffic.

Live traffic comes first (``service.scheduling.priority``): before each frame is decoded,
inferred and encoded (the pipeline's ``pause``), the job waits while live requests or stream
frames are in flight, and the job's threads run at a lower niceness. Progress goes to
``job.json`` at most every PROGRESS_S. A cancellation (DELETE, or the service shutting down) is
seen at the next frame and stops every stage of the pipeline; a job stopped by the shutdown is
``failed``, "interrupted".
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from typing import Any

from service.config import Settings
from service.errors import PolypServeError
from service.metrics import ServiceMetrics
from service.repository.registry import Registry
from service.scheduling.priority import LiveWork, lower_thread_priority
from service.stream.params import StreamParams
from service.video.detector import LocalAnalyzer
from service.video.jobs import (
    REPORT_FILE,
    VIDEO_FILE,
    JobGoneError,
    JobRecord,
    JobStore,
    now,
)
from service.video.pipeline import run_analysis
from service.video.progress import Progress
from service.video.source import VideoLimits, open_source
from service.video.upload import FORMATS

logger = logging.getLogger(__name__)

PROGRESS_S = 0.5  # how often a running job's progress is written
SWEEP_S = 60.0  # an idle worker applies the retention limits this often
SHUTDOWN = "interrupted: the service shut down"


class JobCancelledError(Exception):
    """The job was cancelled; raised at a frame boundary to stop the pipeline."""


class _Running:
    def __init__(self) -> None:
        self.cancel, self.stopped = threading.Event(), threading.Event()


class JobRunner:
    def __init__(
        self,
        store: JobStore,
        registry: Registry,
        settings: Settings,
        live: LiveWork,
        metrics: ServiceMetrics,
    ) -> None:
        self.store, self.registry, self.settings = store, registry, settings
        self.live, self.metrics = live, metrics
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._running: dict[str, _Running] = {}
        self._threads: list[threading.Thread] = []
        self._closing = False
        metrics.video_jobs.labels("queued").set_function(self._queue.qsize)
        metrics.video_jobs.labels("running").set_function(lambda: len(self._running))

    def start(self) -> None:
        for index in range(self.settings.video_job_workers):
            thread = threading.Thread(target=self._work, name=f"video-job-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def submit(self, job_id: str) -> None:
        self._queue.put(job_id)

    def cancel(self, job_id: str) -> threading.Event | None:
        """Stop the job if this process runs it; returns the event set once it stopped."""
        running = self._running.get(job_id)
        if running is None:
            return None
        running.cancel.set()
        return running.stopped

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop the running jobs and fail the queued ones, both as interrupted (blocking)."""
        self._closing = True
        for running in list(self._running.values()):
            running.cancel.set()
        with contextlib.suppress(queue.Empty):
            while True:
                if (job_id := self._queue.get_nowait()) is not None:
                    self._fail_queued(job_id)
        for _ in self._threads:
            self._queue.put(None)
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def sweep(self, room: int = 0) -> list[str]:
        """Apply the retention limits, with ``room`` bytes to spare; returns the removed ids."""
        settings = self.settings
        self.store.remove_abandoned_uploads(settings.video_upload_timeout_s)
        return self.store.sweep(
            settings.video_jobs_keep_s,
            settings.video_jobs_max_kept,
            settings.video_jobs_max_bytes,
            room,
        )

    def _work(self) -> None:
        lower_thread_priority()  # and so every thread the analysis starts from here
        while True:
            try:
                job_id = self._queue.get(timeout=SWEEP_S)
            except queue.Empty:
                job_id = ""
            if job_id is None:
                return
            try:
                if job_id:
                    self._run(job_id)
                self.sweep()
            except Exception:  # the disk, say: the worker lives on for the next job
                logger.exception("video job worker: %s", job_id or "sweep")

    def _run(self, job_id: str) -> None:
        try:
            record = self.store.load(job_id)
        except PolypServeError:  # deleted while queued
            return
        if record.state != "queued":
            return
        running = self._running[job_id] = _Running()
        error: str | None = None
        try:
            record = record.model_copy(update={"state": "running", "started_at": now()})
            self.store.save(record)
            record = self._analyze(record, running)
        except JobCancelledError:
            if not self._closing:  # deleted: by the route here, or asked from elsewhere
                if self.store.cancel_asked(job_id):
                    self.store.remove(job_id)
                    self.metrics.video_jobs_finished.labels("cancelled").inc()
                return
            error = SHUTDOWN
        except JobGoneError:
            return
        except PolypServeError as exc:
            error = exc.message
        except Exception as exc:  # a failure of ours: the job says so, the log has the rest
            logger.exception("video job %s failed", job_id)
            error = f"internal error: {type(exc).__name__}"
        finally:
            del self._running[job_id]
            running.stopped.set()
        with contextlib.suppress(JobGoneError):
            self.store.finish(record, error)
            self.metrics.video_jobs_finished.labels("failed" if error else "done").inc()

    def _analyze(self, record: JobRecord, running: _Running) -> JobRecord:
        settings = self.settings
        model = self.registry.for_task("detection", record.model["name"], record.model["version"])
        limits = VideoLimits(settings.max_video_pixels, settings.max_video_duration_s)
        folder = self.store.root / record.id
        assert record.upload is not None
        source = open_source(folder / record.upload, limits, formats=FORMATS)
        partial = folder / f"{VIDEO_FILE}.part"
        progress = Progress(record.input.frames)
        written = time.monotonic()

        def on_frame(_result: dict[str, Any]) -> None:
            nonlocal record, written
            progress.tick()
            if time.monotonic() - written >= PROGRESS_S:
                written = time.monotonic()
                record = record.model_copy(update={"progress": progress.snapshot()})
                self.store.save(record)
                if self.store.cancel_asked(record.id):  # asked by another worker process
                    running.cancel.set()

        def pause() -> None:  # in every stage, before each frame: live work first
            self.live.wait_until_quiet(running.cancel)
            if running.cancel.is_set():
                raise JobCancelledError

        try:
            params = StreamParams.model_validate(record.params)
            analyzer = LocalAnalyzer(model, params, limits.max_pixels)
            report = run_analysis(source, analyzer, partial, None, on_frame, pause)
        finally:
            source.close()
        report["input"]["path"] = record.input.filename
        report["output"]["path"] = f"/v1/videos/{record.id}/{VIDEO_FILE}"
        (folder / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
        partial.rename(folder / VIDEO_FILE)
        progress.total = progress.done
        return record.model_copy(update={"progress": progress.snapshot()})

    def _fail_queued(self, job_id: str) -> None:
        with contextlib.suppress(PolypServeError, JobGoneError):
            record = self.store.load(job_id)
            if record.state == "queued":
                self.store.finish(record, SHUTDOWN)
                self.metrics.video_jobs_finished.labels("failed").inc()
