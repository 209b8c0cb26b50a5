"""``create_app(settings)``: builds the service; nothing heavy happens at import.

Models load in the lifespan, in a worker thread, and are warmed up before readiness turns true.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from anyio import CapacityLimiter, to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline

from service import __version__
from service.api import (
    forecast,
    health,
    images,
    models,
    stream,
    v2_models,
    v2_repository,
    videos,
    viewer,
)
from service.api.auth import ApiKeyMiddleware
from service.api.errors import install_error_handlers
from service.api.limits import BodyLimitMiddleware, InFlightLimitMiddleware, UploadLimit
from service.config import Settings
from service.logs import RequestIdMiddleware, configure_logging
from service.metrics import MetricsMiddleware, ServiceMetrics, observe_batches
from service.repository.model_version import ModelVersion
from service.repository.registry import Registry
from service.scheduling.pixel_budget import RELEASE_OVER_PIXELS, PixelBudget
from service.scheduling.priority import LiveWork
from service.server.lifecycle import LIFECYCLE
from service.server.memory import keep_freed_memory
from service.video.intake import VideoJobs
from service.video.jobs import JobStore
from service.video.worker import JobRunner

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = ServiceMetrics()

    def on_loaded(model: ModelVersion) -> None:
        providers = model.session.providers if model.session else []
        logger.info("model %s/%s %s %s", model.name, model.version, model.state, providers)
        if model.batcher is not None:
            model.batcher.observers.append(observe_batches(metrics, model.name, model.version))

    registry = Registry(settings, on_loaded)
    live = LiveWork()

    async def close_streams() -> None:
        await stream.close_all(app.state.stream_sessions, "server shutting down")

    async def stop_video_jobs() -> None:
        jobs: VideoJobs | None = app.state.video_jobs
        if jobs is not None:
            await to_thread.run_sync(jobs.runner.close)

    def start_video_jobs() -> VideoJobs | None:
        try:
            store = JobStore(settings.video_jobs_dir)
        except OSError as exc:  # live traffic serves all the same; the job routes say why
            app.state.video_jobs_error = f"the video job store cannot be used: {exc}"
            logger.error("%s", app.state.video_jobs_error)
            return None
        interrupted = store.recover()
        if interrupted:
            logger.warning("video jobs interrupted by the last stop: %s", ", ".join(interrupted))
        runner = JobRunner(store, registry, settings, live, metrics)
        runner.sweep()
        runner.start()
        return VideoJobs(store, runner, settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.decode_limiter = CapacityLimiter(settings.decode_threads)
        app.state.pixel_budget = PixelBudget(
            settings.max_request_pixels, settings.max_decoded_pixels, RELEASE_OVER_PIXELS
        )
        await to_thread.run_sync(registry.load_all)
        app.state.video_jobs = await to_thread.run_sync(start_video_jobs)
        LIFECYCLE.hooks.extend((close_streams, stop_video_jobs))
        try:
            yield
        finally:
            LIFECYCLE.hooks.remove(close_streams)
            LIFECYCLE.hooks.remove(stop_video_jobs)
            await close_streams()
            await stop_video_jobs()
            await registry.close()

    # /docs and /redoc load Swagger UI and ReDoc from the service, not a CDN: hospital networks
    # are often offline. Their assets sit under /static/docs, mounted before the viewer's
    # /static (so they match first) and open like it.
    app = FastAPIOffline(
        title="polypserve",
        version=__version__,
        description="Inference for endoscopy and forecasting ONNX models.",
        lifespan=lifespan,
        static_url="/static/docs",
    )
    app.state.settings = settings
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.stream_sessions = set()
    app.state.live_work = live
    app.state.video_jobs = None
    app.state.video_jobs_error = "video jobs start once the models are loaded"
    app.state.control_lock = asyncio.Lock()
    install_error_handlers(app)
    for router in (
        images.router,
        forecast.router,
        models.router,
        health.router,
        v2_repository.router,
        v2_models.router,
        stream.router,
        videos.router,
        viewer.router,
    ):
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=viewer.STATIC_DIR), name="static")
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(
        BodyLimitMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.body_timeout_s,
        send_timeout_s=settings.send_timeout_s,
        json_limit=settings.max_json_body_bytes,
        uploads={
            videos.PATH: UploadLimit(
                settings.max_video_upload_bytes,
                settings.video_upload_timeout_s,
                "POLYPSERVE_MAX_VIDEO_UPLOAD_BYTES",
            )
        },
    )
    app.add_middleware(InFlightLimitMiddleware, max_in_flight=settings.max_in_flight, live=live)
    app.add_middleware(ApiKeyMiddleware, settings=settings)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],  # DELETE: a video job
            allow_headers=["Authorization", "X-API-Key", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Location"],  # Location: a new video job's
        )
    app.add_middleware(RequestIdMiddleware)
    return app


def app_from_environment() -> FastAPI:
    """The factory uvicorn calls (``--factory``): settings from ``POLYPSERVE_*``."""
    settings = Settings()
    configure_logging(settings)
    keep_freed_memory(settings.malloc_keep_bytes)
    return create_app(settings)
