"""The seasonal base: the airline model's fit and forecast, and when a series gets it."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from service.dataplane.tasks import seasonal
from service.dataplane.tasks.forecasting import ar_base


def airline_series(theta: float, seasonal_theta: float, n: int, seed: int = 0) -> np.ndarray:
    """A series that follows ARIMA(0,1,1)(0,1,1)_12 exactly, around a level of 100."""
    rng = np.random.default_rng(seed)
    e = rng.normal(size=n + 13)
    w = e[13:] - theta * e[12:-1] - seasonal_theta * e[1:-12] + theta * seasonal_theta * e[:-13]
    z = np.zeros(n + 13)
    for t in range(13, n + 13):
        z[t] = w[t - 13] + z[t - 1] + z[t - 12] - z[t - 13]
    return 100.0 + z[13:]


@pytest.mark.parametrize(
    ("estimate", "seasonal_true", "n", "seed"),
    [
        (seasonal._estimate, 0.6, 600, 0),
        # a seasonal moving average near 1, where the conditional fit's zero start decays slowly
        (seasonal._estimate_exact, 0.9, 360, 5),
    ],
)
def test_the_fit_recovers_the_moving_average_coefficients(
    estimate: Callable[[np.ndarray, int], tuple[float, float]],
    seasonal_true: float,
    n: int,
    seed: int,
) -> None:
    y = airline_series(0.4, seasonal_true, n, seed)
    w = np.diff(y[12:] - y[:-12])
    theta, seasonal_theta = estimate(w, 12)
    assert theta == pytest.approx(0.4, abs=0.1)
    assert seasonal_theta == pytest.approx(seasonal_true, abs=0.1)


def test_a_trend_plus_a_fixed_season_is_carried_forward() -> None:
    t = np.arange(120, dtype=np.float64)
    season = 5.0 * np.sin(2 * np.pi * t / 12)
    y = 50.0 + 0.3 * t + season
    future = np.arange(120, 132)
    expected = 50.0 + 0.3 * future + 5.0 * np.sin(2 * np.pi * future / 12)
    fitted = seasonal.fit(y, 12, 12)  # on levels: both differences remove it exactly
    np.testing.assert_allclose(fitted.forecast, expected, atol=1e-6)
    assert fitted.scale < 1e-6


def test_seasonal_strength_separates_a_season_from_noise() -> None:
    t = np.arange(240, dtype=np.float64)
    rng = np.random.default_rng(1)
    seasonal_series = 10 + 0.05 * t + np.sin(2 * np.pi * t / 12) + 0.1 * rng.normal(size=240)
    assert seasonal.seasonal_strength(seasonal_series, 12) > 0.9
    assert seasonal.seasonal_strength(rng.normal(size=240), 12) < seasonal.STRENGTH_THRESHOLD
    assert seasonal.seasonal_strength(seasonal_series[:30], 12) == 0.0  # under three seasons
    assert seasonal.seasonal_strength(seasonal_series, 1) == 0.0


def test_the_base_is_seasonal_only_for_a_strong_season_of_the_posted_period() -> None:
    t = np.arange(144, dtype=np.float64)
    y = 100 + 0.5 * t + 10 * np.sin(2 * np.pi * t / 12)
    window = y[-48:]
    mean, std = float(window.mean()), float(window.std())
    with_season, _ = ar_base(y, mean, std, 12, 3072, 36, (), period=12)
    expected, _ = seasonal.forecast_and_scale(y / std, 12, 12)
    np.testing.assert_allclose(with_season, expected - mean / std)
    without, _ = ar_base(y, mean, std, 12, 3072, 36, (), period=0)
    assert not np.allclose(without, with_season)
    noise = np.random.default_rng(2).normal(size=144) + 50
    noisy, _ = ar_base(noise, 50.0, 1.0, 12, 3072, 36, (), period=12)  # no season: AR(p)
    plain, _ = ar_base(noise, 50.0, 1.0, 12, 3072, 36, (), period=0)
    np.testing.assert_allclose(noisy, plain)


def test_a_positive_series_is_fitted_on_its_log() -> None:
    y = airline_series(0.3, 0.5, 200, seed=3)
    logged = seasonal.fit(y, 12, 12, 0.0)
    forecast, scale = seasonal.forecast_and_scale(y, 12, 12)
    np.testing.assert_allclose(forecast, logged.forecast)
    assert scale == logged.scale
    shifted = y - y.min() - 1.0  # negative values: levels
    levels = seasonal.fit(shifted, 12, 12, 1.0)
    np.testing.assert_allclose(seasonal.forecast_and_scale(shifted, 12, 12)[0], levels.forecast)
