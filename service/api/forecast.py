"""``POST /v1/forecast``: one or more series in, forecasts with quantiles out."""

from __future__ import annotations

from typing import Any

from anyio import to_thread
from fastapi import APIRouter

from service.api.deps import MetricsDep, RegistryDep, SettingsDep
from service.errors import InvalidParameterError
from service.forecast import run_forecast
from service.schemas import ErrorResponse, ForecastRequest, ForecastResponse

router = APIRouter(prefix="/v1", tags=["v1"])


@router.post(
    "/forecast",
    response_model=ForecastResponse,
    responses={status: {"model": ErrorResponse} for status in (400, 404, 409, 413, 422, 503)},
)
async def forecast_series(
    request: ForecastRequest, registry: RegistryDep, settings: SettingsDep, metrics: MetricsDep
) -> dict[str, Any]:
    if len(request.series) > settings.max_series_per_request:
        raise InvalidParameterError(
            f"{len(request.series)} series is over the limit of {settings.max_series_per_request}"
        )
    model = registry.for_task("forecasting", request.model, request.version)
    results, timing = await to_thread.run_sync(
        run_forecast, model, request, settings.max_series_length
    )
    metrics.inference_seconds.labels(model.name, str(model.version)).observe(
        timing.get("inference", 0.0) / 1000.0
    )
    return {
        "model": {"name": model.name, "version": model.version},
        "results": results,
        "timing_ms": timing,
    }
