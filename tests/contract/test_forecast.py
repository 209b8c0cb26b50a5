"""Contract tests of /v1/forecast against the tiny forecaster (window 8, horizon 4)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Literal

import httpx
import numpy as np
import pytest

from service.config import Settings
from service.dataplane.tasks import autoregressive, seasonal
from tests.conftest import app_client
from tests.model_factory import build_hybrid_forecaster

pytestmark = pytest.mark.anyio

SERIES = [float(v) for v in range(1, 21)]


async def test_forecast_returns_point_and_quantiles(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/forecast", json={"horizon": 3, "series": [{"id": "a", "values": SERIES}]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    (result,) = body["results"]
    std = float(np.std(SERIES[-8:]))
    assert result["id"] == "a"
    assert result["forecast"] == pytest.approx([20.0] * 3, abs=1e-4)
    assert result["quantiles"]["0.1"] == pytest.approx([20.0 - std] * 3, abs=1e-4)
    assert result["quantiles"]["0.9"] == pytest.approx([20.0 + std] * 3, abs=1e-4)
    assert body["model"]["name"] == "tiny-forecaster"


async def test_forecast_batch_scales_each_series(client: httpx.AsyncClient) -> None:
    big = [v * 1000 for v in SERIES]
    response = await client.post(
        "/v1/forecast",
        json={"horizon": 1, "quantiles": [0.5], "series": [{"values": SERIES}, {"values": big}]},
    )
    results = response.json()["results"]
    assert results[0]["forecast"] == pytest.approx([20.0], abs=1e-4)
    assert results[1]["forecast"] == pytest.approx([20000.0], rel=1e-5)
    assert set(results[1]["quantiles"]) == {"0.5"}


async def test_forecast_timestamps_follow_start_and_freq(client: httpx.AsyncClient) -> None:
    series = {"values": SERIES, "start": "2020-01-01T00:00:00", "freq": "MS"}
    response = await client.post("/v1/forecast", json={"horizon": 2, "series": [series]})
    assert response.json()["results"][0]["timestamps"] == [
        "2021-09-01T00:00:00",
        "2021-10-01T00:00:00",
    ]


async def test_forecast_missing_values_policies(client: httpx.AsyncClient) -> None:
    gappy = [*SERIES[:15], None, *SERIES[16:]]
    refused = await client.post(
        "/v1/forecast", json={"horizon": 1, "series": [{"values": SERIES}, {"values": gappy}]}
    )
    assert refused.status_code == 422
    assert refused.json()["error"].startswith("series 1 has 1 missing value;")
    filled = await client.post(
        "/v1/forecast",
        json={"horizon": 1, "series": [{"values": gappy, "missing": "interpolate"}]},
    )
    assert filled.status_code == 200
    assert filled.json()["results"][0]["filled_values"] == 1


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"horizon": 5, "series": [{"values": SERIES}]}, "horizon 5"),
        ({"horizon": 1, "series": [{"values": SERIES[:5]}]}, "at least 8"),
        ({"horizon": 1, "quantiles": [0.25], "series": [{"values": SERIES}]}, "quantile 0.25"),
        ({"horizon": 0, "series": [{"values": SERIES}]}, "horizon"),
        ({"horizon": 1, "series": []}, "series"),
        ({"horizon": 1, "series": [{"values": ["a", 1]}]}, "values"),
    ],
)
async def test_forecast_limits_are_clear_422s(
    client: httpx.AsyncClient, payload: dict[str, object], needle: str
) -> None:
    response = await client.post("/v1/forecast", json=payload)
    assert response.status_code == 422
    assert needle in response.json()["error"]


@pytest.mark.parametrize(
    "values",
    [[1e308] * 20, [1e200] * 19 + [-1e200], [1.5e308, -1.5e308] * 10],
    ids=["mean", "spread", "forecast"],
)
async def test_forecast_values_that_overflow_are_a_422(
    client: httpx.AsyncClient, values: list[float]
) -> None:
    await _refused_then_served(client, values, "overflows float64")


async def _refused_then_served(client: httpx.AsyncClient, values: list[float], needle: str) -> None:
    """``values`` get a 422 naming ``needle``, and the next good request is still served."""
    response = await client.post(
        "/v1/forecast", json={"horizon": 2, "series": [{"values": values}]}
    )
    assert response.status_code == 422, response.text
    assert needle in response.json()["error"]
    served = await client.post("/v1/forecast", json={"horizon": 1, "series": [{"values": SERIES}]})
    assert served.status_code == 200


async def test_forecast_limit_errors_state_the_limits(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/forecast", json={"horizon": 9, "series": [{"values": SERIES}]}
    )
    body = response.json()
    assert body["max_horizon"] == 4 and body["min_length"] == 8


@pytest.fixture
async def hybrid(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The tiny hybrid forecaster: it returns the AR(p) base forecast the service feeds it."""
    build_hybrid_forecaster(tmp_path)
    async with app_client(Settings(models_dir=tmp_path, intra_op_threads=1)) as http:
        yield http


async def test_a_hybrid_model_gets_the_ar_forecast_of_the_series_latest_history(
    hybrid: httpx.AsyncClient,
) -> None:
    rng = np.random.default_rng(0)
    seasonal = 50.0 + 10.0 * np.sin(np.arange(100) * 2 * np.pi / 12) + rng.normal(0, 1, 100)
    response = await hybrid.post(
        "/v1/forecast", json={"horizon": 4, "series": [{"values": seasonal.tolist()}]}
    )
    assert response.status_code == 200, response.text
    (result,) = response.json()["results"]
    # base_history is 64: the AR(p) is fitted on the last 64 values, and mapped back to units
    expected, scale = autoregressive.forecast_and_scale(seasonal[-64:], 4)
    assert result["forecast"] == pytest.approx(expected.tolist(), abs=1e-3)
    assert 0.5 < scale < 2.0  # the noise's standard deviation is 1
    assert result["quantiles"]["0.9"] == pytest.approx((expected + scale).tolist(), abs=1e-3)
    assert abs(expected[0] - autoregressive.forecast(seasonal, 4)[0]) > 1e-3  # the cap matters
    metadata = (await hybrid.get("/v1/models/tiny-hybrid-forecaster")).json()
    manifest = metadata["versions"][0]["manifest"]
    assert [tensor["name"] for tensor in manifest["inputs"]] == ["series", "base", "base_scale"]
    assert manifest["forecasting"]["base"] == "ar_aic"


async def test_a_hybrid_base_is_fitted_to_the_manifests_box_cox_powers(tmp_path: Path) -> None:
    """With ``base_powers`` the service fits the AR(p) to the log of a series whose log is
    autoregressive, and the model gets that forecast, not the levels'."""
    build_hybrid_forecaster(tmp_path, base_powers=(0.5, 0.0))
    rng = np.random.default_rng(5)
    log_values = np.zeros(100)
    for t in range(1, len(log_values)):
        log_values[t] = 0.9 * log_values[t - 1] + 0.4 * rng.standard_normal()
    values = np.exp(3.0 + log_values)
    expected, _ = autoregressive.forecast_and_scale(values[-64:], 4, powers=(0.5, 0.0))
    np.testing.assert_allclose(expected, np.exp(autoregressive.forecast(np.log(values[-64:]), 4)))
    assert np.abs(expected - autoregressive.forecast(values[-64:], 4)).max() > 0.1
    async with app_client(Settings(models_dir=tmp_path, intra_op_threads=1)) as http:
        response = await http.post(
            "/v1/forecast", json={"horizon": 4, "series": [{"values": values.tolist()}]}
        )
        assert response.status_code == 200, response.text
        (result,) = response.json()["results"]
        assert result["forecast"] == pytest.approx(expected.tolist(), abs=1e-3)
        metadata = (await http.get("/v1/models/tiny-hybrid-forecaster")).json()
    assert metadata["versions"][0]["manifest"]["forecasting"]["base_powers"] == [0.5, 0.0]


@pytest.mark.parametrize("fit", ["conditional", "exact"])
async def test_a_seasonal_series_posted_with_its_freq_gets_the_airline_model(
    tmp_path: Path, fit: Literal["conditional", "exact"]
) -> None:
    """A manifest's ``base_seasonal_periods`` maps the posted freq to a season length: a series
    with a strong season of that length gets the airline model as its base, fitted by the
    manifest's ``base_seasonal_fit``; posted without freq (or with one the manifest does not
    map), the same values get AR(p)."""
    build_hybrid_forecaster(tmp_path, seasonal_periods={"MS": 12}, seasonal_fit=fit)
    t = np.arange(100, dtype=np.float64)
    noise = np.random.default_rng(3).normal(0, 0.3, 100)
    values = 50.0 + 0.2 * t + 5.0 * np.sin(2 * np.pi * t / 12) + noise
    airline_model, _ = seasonal.forecast_and_scale(values[-64:], 12, 4, fit)
    other_fit, _ = seasonal.forecast_and_scale(
        values[-64:], 12, 4, "exact" if fit == "conditional" else "conditional"
    )
    ar_p, _ = autoregressive.forecast_and_scale(values[-64:], 4)
    assert np.abs(airline_model - ar_p).max() > 0.1
    assert np.abs(airline_model - other_fit).max() > 1e-3
    async with app_client(Settings(models_dir=tmp_path, intra_op_threads=1)) as http:
        for freq, expected in (("MS", airline_model), (None, ar_p), ("QS", ar_p)):
            series = {"values": values.tolist()} | ({"freq": freq} if freq else {})
            response = await http.post("/v1/forecast", json={"horizon": 4, "series": [series]})
            assert response.status_code == 200, response.text
            (result,) = response.json()["results"]
            assert result["forecast"] == pytest.approx(expected.tolist(), abs=1e-3), freq


async def test_a_hybrid_base_that_overflows_is_a_422(hybrid: httpx.AsyncClient) -> None:
    """A history far off the window's scale overflows the AR(p) fit, not the window."""
    values = [1e307] + [1.0 + 0.01 * (i % 2) for i in range(20)]  # 1e307 / 0.005 > float64
    await _refused_then_served(hybrid, values, "autoregressive base forecast overflows float64")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_a_forecast_in_another_content_type_is_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    body = json.dumps({"horizon": 1, "series": [{"values": SERIES}]}).encode()
    headers = {"content-type": content_type} if content_type else {}
    response = await client.post("/v1/forecast", content=body, headers=headers)
    assert response.status_code == 415
    assert response.json()["supported"] == ["application/json"]
