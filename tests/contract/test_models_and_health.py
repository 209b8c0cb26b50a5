"""Contract tests of the catalogue, health and metrics routes."""

from __future__ import annotations

import httpx
import pytest

from tests.images import encode, solid_rgb

pytestmark = pytest.mark.anyio


async def test_catalogue_lists_every_model_with_state_and_provider(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/v1/models")
    assert response.status_code == 200
    models = {m["name"]: m for m in response.json()["models"]}
    assert set(models) == {"tiny-classifier", "tiny-detector", "tiny-segmenter", "tiny-forecaster"}
    detector = models["tiny-detector"]
    assert detector["task"] == "detection" and detector["default_version"] == 1
    (version,) = detector["versions"]
    assert version["state"] == "ready" and version["reason"] is None
    assert version["providers"] == ["CPUExecutionProvider"]
    assert version["manifest"]["defaults"]["score_threshold"] == 0.4


async def test_model_metadata_publishes_forecast_limits(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/models/tiny-forecaster")
    assert response.status_code == 200
    assert response.json()["limits"] == {
        "min_length": 8,
        "max_horizon": 4,
        "quantiles": [0.1, 0.5, 0.9],
    }
    classifier = (await client.get("/v1/models/tiny-classifier")).json()
    assert classifier["metrics"] == {"synthetic": {"accuracy": 1.0}}


async def test_health_routes(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v2/health/live")).json() == {"live": True}
    assert (await client.get("/v2/health/ready")).json() == {"ready": True}


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    image = encode(solid_rgb(20, 20, (220, 0, 0)))
    await client.post("/v1/detect", content=image, headers={"content-type": "image/png"})
    text = (await client.get("/metrics")).text
    assert (
        'polypserve_requests_total{method="POST",model="tiny-detector",route="/v1/detect",'
        'status="200"}'
    ) in text
    assert 'polypserve_inference_duration_seconds_count{model="tiny-detector",version="1"}' in text
    assert 'polypserve_model_ready{model="tiny-detector",provider="CPUExecutionProvider"' in text


async def test_openapi_documents_the_routes(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()
    assert {"/v1/detect", "/v1/forecast", "/v1/models", "/v2/health/ready"} <= set(schema["paths"])
    body = schema["paths"]["/v1/detect"]["post"]["requestBody"]["content"]
    assert "image/jpeg" in body and "multipart/form-data" in body
    ids = [op["operationId"] for path in schema["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))  # client generators name their methods by them
