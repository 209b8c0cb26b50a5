"""Health (Open Inference Protocol paths, so probes and load balancers need no special case)
and Prometheus metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.api.deps import MetricsDep
from service.api.errors import ERROR_RESPONSES
from service.errors import NotReadyError
from service.repository.registry import Registry
from service.server.lifecycle import LIFECYCLE

router = APIRouter(responses=ERROR_RESPONSES)


@router.get("/v2/health/live", tags=["health"])
async def live() -> dict[str, Any]:
    return {"live": True}


@router.get("/v2/health/ready", tags=["health"])
async def ready(request: Request) -> dict[str, Any]:
    registry: Registry = request.app.state.registry
    reason = "the service is shutting down" if LIFECYCLE.draining else registry.readiness()
    if reason is not None:
        raise NotReadyError(f"not ready: {reason}")
    return {"ready": True}


@router.get("/metrics", tags=["metrics"], response_class=Response)
async def metrics(request: Request, service_metrics: MetricsDep) -> Response:
    registry: Registry = request.app.state.registry
    for name, versions in registry.models.items():
        for model in versions.values():
            provider = model.session.providers[0] if model.session else "none"
            service_metrics.model_ready.labels(name, str(model.version), provider).set(
                1 if model.ready else 0
            )
    return Response(generate_latest(service_metrics.registry), media_type=CONTENT_TYPE_LATEST)
