"""Taking a video job in, and taking one out: what ``POST`` and ``DELETE /v1/videos`` do.

An upload is refused before its body is read when the queue is full or the store has no room
for its declared length (503 with Retry-After: both clear as jobs end); it is streamed to a
hidden folder, its header is read and checked against the limits (a file that is not a video,
has no video stream, a codec without a decoder, a frame size or a duration over the limits:
the client's 4xx, and nothing is kept), and only then does the job appear, ``queued``.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from anyio import to_thread
from starlette.requests import Request

from service.config import Settings
from service.errors import OverloadedError
from service.metrics import ServiceMetrics
from service.parsing import is_whole_number
from service.repository.model_version import ModelVersion
from service.schemas import VideoInputInfo, VideoJobProgress
from service.stream.params import StreamParams
from service.video.jobs import JobRecord, JobStore, now, owner_alive
from service.video.source import InputInfo, VideoLimits, open_source
from service.video.upload import FORMATS, receive_video
from service.video.worker import JobRunner

RETRY_AFTER_S = 10  # a queued job or a full store clears as jobs end: a few seconds at least
STOP_WAIT_S = 10.0  # how long a DELETE waits for a running job to stop


@dataclass
class VideoJobs:
    """The store and the runner of this process, as the routes use them."""

    store: JobStore
    runner: JobRunner
    settings: Settings
    metrics: ServiceMetrics

    async def accept(
        self, request: Request, media_type: str, params: StreamParams, model: ModelVersion
    ) -> JobRecord:
        declared = request.headers.get("content-length", "")
        room = int(declared) if is_whole_number(declared) else 0
        await to_thread.run_sync(self._check_room, room)
        job_id, folder = self.store.new_upload()
        try:
            path = await receive_video(
                request, media_type, folder / "input", self.settings.max_form_fields
            )
            info = await to_thread.run_sync(self._probe, path)
            await to_thread.run_sync(self._check_room, 0)
            record = JobRecord(
                id=job_id,
                state="queued",
                created_at=now(),
                model={"name": model.name, "version": model.version},
                params=params.model_dump(exclude_none=True, exclude={"model", "version"}),
                input=_input_info(path, info),
                progress=VideoJobProgress(
                    frames_total=info.frames, percent=0.0 if info.frames else None
                ),
                owner=self.store.owner,
                upload=str(path.relative_to(folder)),
            )
            self.store.publish(record, folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        self.runner.submit(job_id)
        return record

    async def remove(self, job_id: str) -> bool:
        """Cancel the job if it runs or waits, and remove it; False when another process runs
        it and was only asked to stop (it removes the job once stopped)."""
        record = self.store.load(job_id)
        stopped = self.runner.cancel(job_id)
        if stopped is not None:
            await to_thread.run_sync(stopped.wait, STOP_WAIT_S)
        elif (
            record.state == "running"
            and record.owner != self.store.owner
            and owner_alive(record.owner)
        ):
            self.store.ask_to_cancel(job_id)
            return False
        if record.state in ("queued", "running"):
            self.metrics.video_jobs_finished.labels("cancelled").inc()
        await to_thread.run_sync(self.store.remove, job_id)
        return True

    def _check_room(self, room: int) -> None:
        settings = self.settings
        queued = sum(r.state == "queued" for r in self.store.records())
        if queued >= settings.video_jobs_max_queued:
            raise OverloadedError(
                f"{queued} video jobs are queued, the limit (POLYPSERVE_VIDEO_JOBS_MAX_QUEUED)",
                retry_after_s=RETRY_AFTER_S,
                limit=settings.video_jobs_max_queued,
            )
        self.runner.sweep(room)
        used = self.store.usage_bytes()
        if used + room > settings.video_jobs_max_bytes:
            raise OverloadedError(
                f"the video job store holds {used} bytes; this upload would take it over its "
                f"budget of {settings.video_jobs_max_bytes} (POLYPSERVE_VIDEO_JOBS_MAX_BYTES) "
                "until running jobs end",
                retry_after_s=RETRY_AFTER_S,
                limit=settings.video_jobs_max_bytes,
            )

    def _probe(self, path: Path) -> InputInfo:
        limits = VideoLimits(self.settings.max_video_pixels, self.settings.max_video_duration_s)
        source = open_source(path, limits, formats=FORMATS)
        source.close()
        return source.info


def _input_info(path: Path, info: InputInfo) -> VideoInputInfo:
    return VideoInputInfo(
        filename=path.name,
        bytes=path.stat().st_size,
        container=info.container,
        codec=info.codec,
        width=info.width,
        height=info.height,
        fps=round(float(info.rate), 3),
        duration_s=None if info.duration_s is None else round(info.duration_s, 3),
        frames=info.frames,
    )
