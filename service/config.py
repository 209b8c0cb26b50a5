"""Settings, read once at start-up from ``POLYPSERVE_*`` environment variables or ``.env``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from service.repository.manifest import Task


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="POLYPSERVE_", env_file=".env", extra="ignore")

    # Where the model repository lives: <models_dir>/<name>/<version>/{model.onnx,manifest.json}.
    models_dir: Path = Path("models")
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # json: one JSON object per line with the request id; text: for a terminal.
    log_format: Literal["json", "text"] = "json"
    # After SIGTERM: seconds of draining (readiness 503, still serving) before shutting down.
    shutdown_grace_s: float = Field(5.0, ge=0.0)

    # "auto" takes CUDA when a CUDA session can really be created, else CPU; or a comma-separated
    # list of ONNX Runtime provider names, tried in order.
    providers: str = "auto"
    # Refuse readiness (with the reason) rather than serve on CPU when CUDA is unavailable.
    require_gpu: bool = False
    # GPU provider options: device, CUDA memory arena limit (0: none), cuDNN convolution
    # algorithm search, IO binding, and the TensorRT provider (opt-in) with FP16 and an engine
    # cache.
    cuda_device_id: int = Field(0, ge=0)
    cuda_memory_limit_bytes: int = Field(0, ge=0)
    cudnn_conv_algo_search: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "EXHAUSTIVE"
    cuda_io_binding: bool = True
    tensorrt: bool = False
    tensorrt_fp16: bool = True
    tensorrt_cache_dir: Path = Path(".trt-cache")
    # Measured on 2 cores (python -m tests.perf.bench --threading): one intra-op thread per
    # session leaves the other core to decoding and beats ONNX Runtime's default of one per
    # core under concurrent load. 0 lets ONNX Runtime choose.
    intra_op_threads: int = Field(1, ge=0)
    inter_op_threads: int = Field(0, ge=0)
    warmup: bool = True
    # Ready only when every discovered model is ready (Triton's strict readiness); otherwise
    # ready once loading finished and at least one model serves.
    strict_readiness: bool = False
    # Task -> model name used when a request names none; unset tasks use their only model.
    default_models: dict[Task, str] = Field(default_factory=dict)

    # Dynamic batching defaults; models/<name>/config.json may override them per model, and the
    # batch size defaults to the manifest's.
    max_queue_delay_ms: float = Field(0.0, ge=0.0)
    # Requests admitted per model (decoding, queued or running); more get 503 at once.
    max_queue_size: int = Field(32, gt=0)
    # A request whose expected latency (requests admitted before it / measured throughput) is
    # over this is refused with 503 at once; 0 turns the budget off (service.scheduling.admission).
    latency_budget_ms: float = Field(0.0, ge=0.0)
    request_timeout_ms: float = Field(10_000.0, gt=0.0)
    batch_instances: int = Field(1, gt=0)

    # Authentication: with no key configured every route is open. Health routes and the viewer
    # page are always open; /metrics only unless auth_metrics is set.
    api_keys: list[SecretStr] = Field(default_factory=list)
    api_keys_file: Path | None = None
    auth_metrics: bool = False
    # Origins allowed to call the API from a browser (CORS); none by default.
    cors_origins: list[str] = Field(default_factory=list)

    # Loading and unloading models over /v2/repository/models/*: off unless an operator turns
    # it on (Triton's default control mode is "none"), and then only with an admin key, which
    # must differ from every inference key. The read-only index is an inference route.
    model_control: bool = False
    admin_keys: list[SecretStr] = Field(default_factory=list)
    admin_keys_file: Path | None = None

    # Freed memory the C allocator keeps for the next request instead of page-faulting it in
    # again (service.server.memory; glibc only); 0 leaves the allocator's defaults.
    malloc_keep_bytes: int = Field(64 * 1024 * 1024, ge=0)
    # ONNX Runtime's CPU memory arena keeps the largest working set any run needed, the sum of
    # concurrent runs', for good: a 4-client burst of 8-image segmentations left ~100 MB resident
    # and warm-up at the largest batch ~170 MB. Off, runs allocate from the C allocator, which
    # reuses freed blocks as fast (service.server.memory) and gives them back when idle.
    cpu_memory_arena: bool = False
    # Threads decoding images at once; beyond the cores they only slow each other down.
    decode_threads: int = Field(2, gt=0)
    # Inference requests in flight in this process, all models together; more get 503.
    max_in_flight: int = Field(128, gt=0)

    # Input limits: a request over them is refused before any decoding work.
    max_body_bytes: int = Field(20 * 1024 * 1024, gt=0)
    # Bodies parsed into Python objects (forecasts, v2 tensors as JSON numbers): each number
    # of a few bytes costs tens once parsed, so these get a smaller limit than images.
    max_json_body_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # The request line and headers together (431 past it; uvicorn's httptools has no limit).
    max_header_bytes: int = Field(64 * 1024, gt=0)
    # Seconds for a whole request body to arrive (408 after): slow uploads cannot hold on.
    body_timeout_s: float = Field(30.0, gt=0.0)
    # Seconds for each piece of a response to be taken by the client (it is cut off after).
    send_timeout_s: float = Field(30.0, gt=0.0)
    max_image_pixels: int = Field(40_000_000, gt=0)
    # Decoded pixels per request (all its images together) and in the whole process at once
    # (service.scheduling.pixel_budget): memory follows pixels, not bytes. A request over the
    # first is 413; one that finds no room in the second before its deadline is 503.
    max_request_pixels: int = Field(40_000_000, gt=0)
    max_decoded_pixels: int = Field(48_000_000, gt=0)
    max_images_per_request: int = Field(32, gt=0)
    max_form_fields: int = Field(64, gt=0)
    max_series_per_request: int = Field(256, gt=0)
    max_series_length: int = Field(100_000, gt=0)
    # Values per forecast request, all series together: a hybrid model's AR(p) fit costs time
    # in proportion (256 series of 256 values: 2.4 s at 4 clients, python -m tests.perf.memory).
    max_forecast_values: int = Field(65_536, gt=0)
    # The stream: concurrent WebSocket sessions, and bytes per frame message.
    max_stream_sessions: int = Field(8, gt=0)
    max_frame_bytes: int = Field(8 * 1024 * 1024, gt=0)
    # Seconds a session may go without a message from its client (a ping answered is not one)
    # before it gets its report and a 1001 close: idle clients cannot hold the sessions.
    stream_idle_timeout_s: float = Field(60.0, gt=0.0)
    # Recorded videos (polypserve analyze, video jobs): pixels per frame (4K UHD) and length. A
    # colonoscopy recording lasts well under an hour; the work and the annotated copy grow
    # with both, so a file past them is refused before any frame is decoded.
    max_video_pixels: int = Field(3840 * 2160, gt=0)
    max_video_duration_s: float = Field(2 * 3600.0, gt=0.0)
    # Video jobs (POST /v1/videos): each job is a folder here with its upload, job.json, the
    # report and the annotated video. Mount a volume on it to keep jobs across containers.
    video_jobs_dir: Path = Path(tempfile.gettempdir()) / "polypserve-jobs"
    # An upload is streamed to disk and refused (413) the moment it passes this, and must
    # arrive within the timeout (408): a recording is far larger than an image.
    max_video_upload_bytes: int = Field(2 * 1024**3, gt=0)
    video_upload_timeout_s: float = Field(900.0, gt=0.0)
    # Jobs analysed at once (each in its own threads, below live traffic), jobs waiting (503
    # with Retry-After past it), and what is kept of finished jobs: the oldest go first once
    # past the count, the age or the disk budget (all of the store, uploads included).
    video_job_workers: int = Field(1, gt=0)
    video_jobs_max_queued: int = Field(8, gt=0)
    video_jobs_max_kept: int = Field(100, gt=0)
    video_jobs_keep_s: float = Field(24 * 3600.0, gt=0.0)
    video_jobs_max_bytes: int = Field(20 * 1024**3, gt=0)

    @model_validator(mode="after")
    def _an_upload_fits_the_job_store(self) -> Settings:
        if self.max_video_upload_bytes > self.video_jobs_max_bytes:
            raise ValueError(
                "POLYPSERVE_MAX_VIDEO_UPLOAD_BYTES must not be over POLYPSERVE_VIDEO_JOBS_MAX_BYTES"
            )
        return self

    @model_validator(mode="after")
    def _model_control_needs_an_admin_key(self) -> Settings:
        if self.model_control and not (self.admin_keys or self.admin_keys_file):
            raise ValueError(
                "POLYPSERVE_MODEL_CONTROL needs an admin key: set POLYPSERVE_ADMIN_KEYS "
                "or POLYPSERVE_ADMIN_KEYS_FILE"
            )
        return self
