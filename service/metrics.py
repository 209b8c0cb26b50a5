"""Prometheus metrics, on a registry per app so that several apps (tests) never collide."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

BatchObserver = Callable[[int, list[float], float], None]
_LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "polypserve_requests_total",
            "HTTP requests by route template, model (inference routes), method and status.",
            ["route", "model", "method", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "polypserve_request_duration_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "polypserve_inference_duration_seconds",
            "ONNX Runtime session.run time per batch, by model and version.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_seconds = Histogram(
            "polypserve_queue_duration_seconds",
            "Time a request waited in its model's batch queue.",
            ["model", "version"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "polypserve_batch_size",
            "Rows per batch run, by model and version.",
            ["model", "version"],
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )
        self.stream_sessions = Gauge(
            "polypserve_stream_sessions",
            "Open WebSocket stream sessions.",
            registry=self.registry,
        )
        self.stream_frames = Counter(
            "polypserve_stream_frames_total",
            "Stream frames by outcome: processed, dropped (replaced while waiting) or error.",
            ["outcome"],
            registry=self.registry,
        )
        self.stream_latency_seconds = Histogram(
            "polypserve_stream_latency_seconds",
            "Stream frame latency from arrival to result sent.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.video_jobs = Gauge(
            "polypserve_video_jobs",
            "Video jobs of this process queued or running.",
            ["state"],
            registry=self.registry,
        )
        self.video_jobs_finished = Counter(
            "polypserve_video_jobs_finished_total",
            "Video jobs by how they ended: done, failed or cancelled.",
            ["state"],
            registry=self.registry,
        )
        self.model_ready = Gauge(
            "polypserve_model_ready",
            "1 when the model version serves, else 0; labelled with its execution provider.",
            ["model", "version", "provider"],
            registry=self.registry,
        )


class MetricsMiddleware:
    """Counts every HTTP request by the route template it matched (not the raw path)."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            # Inference routes name their model on the request's state (service.api.deps).
            model = scope.get("state", {}).get("model", "")
            self.metrics.requests.labels(template, model, scope["method"], str(status)).inc()
            self.metrics.request_seconds.labels(template).observe(time.perf_counter() - start)


def observe_batches(metrics: ServiceMetrics, model: str, version: int) -> BatchObserver:
    """A batcher observer feeding this model's queue, compute and batch-size metrics."""
    labels = (model, str(version))

    def observe(rows: int, queue_seconds: list[float], compute_seconds: float) -> None:
        metrics.batch_size.labels(*labels).observe(rows)
        metrics.inference_seconds.labels(*labels).observe(compute_seconds)
        for waited in queue_seconds:
            metrics.queue_seconds.labels(*labels).observe(waited)

    return observe


def observe_stream_message(metrics: ServiceMetrics, message: dict[str, Any]) -> None:
    """Count a message a stream session sends: its frame's outcome and latency."""
    if message.get("type") == "result":
        metrics.stream_frames.labels("processed").inc()
        if message.get("dropped"):
            metrics.stream_frames.labels("dropped").inc(message["dropped"])
        metrics.stream_latency_seconds.observe(message["timing_ms"]["total"] / 1000.0)
    elif message.get("type") == "error":
        metrics.stream_frames.labels("error").inc()
