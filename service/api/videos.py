"""``/v1/videos``: recorded videos analysed as background jobs (``service.video.intake``).

``POST`` takes the video (the raw body, or a multipart ``video`` field) and the stream's query
parameters and answers 202 with the job and its ``Location``; ``GET /v1/videos/{id}`` gives its
state and progress; the report and the annotated video (with ranges) once it is done;
``DELETE`` cancels a job that waits or runs, or removes a finished one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import ValidationError

from service.api.deps import RegistryDep, VideoJobsDep, media_type_of
from service.api.errors import ERROR_RESPONSES
from service.errors import ConflictError, InvalidParameterError, NotReadyError
from service.schemas import VideoJobInfo, VideoJobList
from service.server.lifecycle import LIFECYCLE
from service.stream.params import StreamParams, resolve_options
from service.video.intake import VideoJobs
from service.video.jobs import REPORT_FILE, VIDEO_FILE, JobRecord
from service.video.upload import FIELD

router = APIRouter(prefix="/v1", tags=["videos"], responses=ERROR_RESPONSES)
VIDEOS = "/videos"
PATH = router.prefix + VIDEOS

_BINARY = {"schema": {"type": "string", "format": "binary"}}
VIDEO_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "video/mp4": _BINARY,
            "application/octet-stream": _BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {FIELD: _BINARY},
                    "required": [FIELD],
                }
            },
        },
    }
}


def job_url(job_id: str) -> str:
    return f"{PATH}/{job_id}"


def _info(record: JobRecord) -> dict[str, Any]:
    info = record.info()
    if info.state == "done":
        info.report_url = f"{job_url(info.id)}/report"
        info.video_url = f"{job_url(info.id)}/{VIDEO_FILE}"
    return info.model_dump(mode="json")


@router.post(VIDEOS, status_code=202, response_model=VideoJobInfo, openapi_extra=VIDEO_BODY)
async def create_video_job(
    request: Request,
    params: Annotated[StreamParams, Query()],
    registry: RegistryDep,
    jobs: VideoJobsDep,
) -> JSONResponse:
    if LIFECYCLE.draining:
        raise NotReadyError("the service is shutting down: no new video job")
    model = registry.for_task("detection", params.model, params.version)
    assert model.manifest is not None
    try:
        resolve_options(params, model.manifest.defaults)
    except ValidationError as exc:
        raise InvalidParameterError(f"smoothing: {exc.errors()[0]['msg']}") from None
    record = await jobs.accept(request, media_type_of(request), params, model)
    return JSONResponse(_info(record), status_code=202, headers={"Location": job_url(record.id)})


@router.get(VIDEOS, response_model=VideoJobList)
async def list_video_jobs(jobs: VideoJobsDep) -> dict[str, Any]:
    records = await to_thread.run_sync(jobs.store.records)
    return {"jobs": [_info(record) for record in records]}


@router.get(VIDEOS + "/{job_id}", response_model=VideoJobInfo)
async def get_video_job(job_id: str, jobs: VideoJobsDep) -> dict[str, Any]:
    return _info(await to_thread.run_sync(jobs.store.load, job_id))


@router.get(VIDEOS + "/{job_id}/report", responses={200: {"content": {"application/json": {}}}})
@router.head(VIDEOS + "/{job_id}/report")
async def get_video_report(job_id: str, jobs: VideoJobsDep) -> FileResponse:
    path = await _result(jobs, job_id, REPORT_FILE)
    return FileResponse(path, media_type="application/json")


# One route a method: a route of two methods gives both the same OpenAPI operation id.
@router.get(
    VIDEOS + "/{job_id}/" + VIDEO_FILE,
    responses={200: {"content": {"video/mp4": {}}}, 206: {"description": "a range of it"}},
)
@router.head(VIDEOS + "/{job_id}/" + VIDEO_FILE)
async def get_annotated_video(job_id: str, jobs: VideoJobsDep) -> FileResponse:
    """The annotated H.264 MP4; ``Range`` requests are answered 206 (players seek with them),
    and ``HEAD`` gives its length and ``Accept-Ranges`` without the body (download managers
    and players ask first)."""
    path = await _result(jobs, job_id, VIDEO_FILE)
    return FileResponse(path, media_type="video/mp4")


@router.delete(
    VIDEOS + "/{job_id}",
    status_code=204,
    responses={202: {"model": VideoJobInfo, "description": "another process stops it"}},
)
async def delete_video_job(job_id: str, jobs: VideoJobsDep) -> Response:
    if await jobs.remove(job_id):
        return Response(status_code=204)
    return JSONResponse(_info(await to_thread.run_sync(jobs.store.load, job_id)), 202)


async def _result(jobs: VideoJobs, job_id: str, name: str) -> Path:
    record = await to_thread.run_sync(jobs.store.load, job_id)
    if record.state != "done":
        reason = f": {record.error}" if record.error else ""
        raise ConflictError(
            f"video job {job_id} is {record.state}{reason}; its results come once it is done",
            state=record.state,
        )
    return jobs.store.folder(job_id) / name
