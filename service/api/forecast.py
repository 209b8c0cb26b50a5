"""``POST /v1/forecast``: one or more series in, forecasts with quantiles out."""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from service.api.deps import RegistryDep, SettingsDep, holding_place, media_type_of
from service.api.errors import ERROR_RESPONSES
from service.dataplane.forecast import finish_forecast, prepare_series
from service.dataplane.predict import infer
from service.dataplane.timing import StageTimer, complete
from service.errors import InvalidParameterError, PayloadTooLargeError, UnsupportedMediaTypeError
from service.repository.model_version import ModelVersion
from service.schemas import ForecastRequest, ForecastResponse


class JsonBodyRoute(APIRoute):
    """A route whose body is JSON: any other content type is a 415, as on the image routes,
    before FastAPI would read the body as bytes and answer 422 on its fields."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def checked(request: Request) -> Response:
            media_type = media_type_of(request)
            if media_type != "application/json" and not media_type.endswith("+json"):
                raise UnsupportedMediaTypeError(
                    f"unsupported content type '{media_type or 'none'}'",
                    supported=["application/json"],
                )
            return await handler(request)

        return checked


router = APIRouter(prefix="/v1", tags=["v1"], responses=ERROR_RESPONSES, route_class=JsonBodyRoute)
FORECAST = "/forecast"
PATH = router.prefix + FORECAST


@router.post(FORECAST, response_model=ForecastResponse)
async def forecast_series(
    request: ForecastRequest, http_request: Request, registry: RegistryDep, settings: SettingsDep
) -> dict[str, Any]:
    if len(request.series) > settings.max_series_per_request:
        raise InvalidParameterError(
            f"{len(request.series)} series is over the limit of {settings.max_series_per_request}"
        )
    values = sum(len(series.values) for series in request.series)
    if values > settings.max_forecast_values:
        raise PayloadTooLargeError(
            f"{values} values in the request's series, over the limit of "
            f"{settings.max_forecast_values} (POLYPSERVE_MAX_FORECAST_VALUES)",
            limit=settings.max_forecast_values,
        )
    model = registry.for_task("forecasting", request.model, request.version)
    assert model.batcher is not None
    deadline = time.monotonic() + model.batcher.config.timeout_ms / 1000.0
    with holding_place(http_request, model):
        return await _forecast(model, request, settings.max_series_length, deadline)


async def _forecast(
    model: ModelVersion, request: ForecastRequest, max_length: int, deadline: float
) -> dict[str, Any]:
    assert model.manifest is not None and model.manifest.forecasting is not None
    decoding = model.manifest.forecasting
    timer = StageTimer()
    with timer.stage("preprocess"):
        # a hybrid's AR(p) fits take milliseconds per series: off the event loop, like images
        prepared = await to_thread.run_sync(prepare_series, decoding, request, max_length, deadline)
    feeds = {decoding.series_input: prepared.batch, **prepared.base_feeds}
    outputs = await infer(model, feeds, timer)
    with timer.stage("postprocess"):
        results = finish_forecast(decoding, request, prepared, outputs[decoding.forecast_output])
    return {
        "model": {"name": model.name, "version": model.version},
        "results": results,
        "timing_ms": complete(model, timer),
    }
